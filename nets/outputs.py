"""Where a training run writes, checked before it trains: its checkpoint folder and the weights folder it
exports into must take files, the manifest there must be readable, and a style another run registered
under the same name is not replaced without --replace."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nets import registry

if TYPE_CHECKING:
    from nets.train import TrainConfig


class OutputError(RuntimeError):
    """A folder a run cannot write into, or a weights folder that cannot take its export."""


def writable(folder: Path, flag: str) -> None:
    """OutputError unless `folder` is, or can be made, a folder this process can write files into."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"{flag} {folder} is not a writable folder ({exc.strerror or exc}); choose another.") from exc


def checkpoint_path(cfg: "TrainConfig") -> Path:
    return Path(cfg.out_dir) / f"{cfg.arch}.{cfg.name}.ckpt.safetensors"


def export_folder(cfg: "TrainConfig") -> Path:
    return Path(cfg.weights_dir) if cfg.weights_dir else registry.weights_dir()


def check_outputs(cfg: "TrainConfig", resume: bool, export: bool, replace: bool) -> None:
    """Before any training: the out and weights folders writable, the manifest readable, and the name not
    registered there by another run. A registered style of this name is replaced with `replace`; by the run
    that resumes this name's checkpoint (rerunning a command continues and re-exports it); or by a fine-tune
    of that very entry into the folder it comes from (`--init-from lite.udnie` on udnie.jpg)."""
    writable(Path(cfg.out_dir), "--out-dir")
    if not export:
        return
    folder, name = export_folder(cfg), f"{cfg.arch}.{cfg.name}"
    writable(folder, "--weights-dir")
    entry = registry.read_manifest(folder).get(name)  # a damaged manifest: StyleError now, not after training
    if entry is None or replace or (resume and checkpoint_path(cfg).is_file()):
        return
    from_itself = cfg.init_from and registry.info(cfg.init_from).name == name  # the registry's entry, fine-tuned
    if from_itself and folder.resolve() == registry.weights_dir().resolve():
        return
    credit = ", ".join(x for x in (entry.painting, entry.artist) if x)
    raise OutputError(f"{name} is already registered in {folder}" + (f" ({credit})" if credit else "") +
                      "; train under another --name, or pass --replace to replace it.")
