"""Styles registered by name, `arch.style` (e.g. `lite.starry_night`), like timm's `arch.tag` weights.

`weights/manifest.json` holds one frozen `StyleInfo` per style (file, sha256, input range, painting,
artist, year, licence, recipe, measured metrics). Weights load through safetensors only: a pickle file
(.pt/.pth/.ckpt) is refused, never unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from nets.filelock import exclusive
from nets.transformer_net import NetConfig, TransformerNet

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
INPUT_RANGE = "RGB 0..1 in, RGB 0..1 out"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".bin")


# What a net's recipe trains it towards, and so what the quality benchmark scores it against (its Gatys ceiling).
OBJECTIVE_FIELDS = ("style_size", "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers")


def objective_of(recipe: dict) -> dict:
    """The perceptual objective of a recipe: its own fields, or for a net distilled from a teacher without a
    perceptual term of its own (`nets.train`, `--teacher`), the teacher's, recorded as "objective" at export."""
    return recipe.get("objective") or {k: recipe[k] for k in OBJECTIVE_FIELDS}


class StyleError(LookupError):
    """Unknown style name or a weight file that cannot be used."""


@dataclass(frozen=True)
class StyleInfo:
    name: str  # "arch.style"
    arch: str
    file: str  # relative to the weights folder
    sha256: str
    net: dict  # NetConfig.to_dict()
    painting: str = ""
    artist: str = ""
    year: str = ""
    licence: str = ""
    input_range: str = INPUT_RANGE
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


def weights_dir() -> Path:
    return Path(os.environ.get("STYLECAM_WEIGHTS", WEIGHTS_DIR))


def _manifest_path(folder: Path) -> Path:
    return folder / "manifest.json"


def _parse_manifest(path: Path) -> dict[str, StyleInfo]:
    """The entries of a manifest file; StyleError in one line when it is damaged or wrongly hand-edited."""
    fix = "restore it (git checkout, or a backup) or correct it by hand"
    try:
        entries = json.loads(path.read_text())["styles"]
        known = {f.name for f in fields(StyleInfo)}
        styles = {}
        for name, entry in sorted(entries.items()):
            unknown = sorted(set(entry) - known) if isinstance(entry, dict) else []
            if unknown:
                raise StyleError(f"{path}: style {name!r} has unknown field(s) {', '.join(unknown)}; {fix}.")
            styles[name] = StyleInfo(**entry)
        return styles
    except json.JSONDecodeError as exc:
        raise StyleError(f"{path} is not valid JSON ({exc}); {fix}.") from exc
    except (KeyError, TypeError, AttributeError) as exc:  # no "styles", an entry not an object, a field missing
        raise StyleError(f"{path} is not a StyleCam manifest ({type(exc).__name__}: {exc}); {fix}.") from exc


def read_manifest(folder: Path | None = None) -> dict[str, StyleInfo]:
    path = _manifest_path(folder or weights_dir())
    return _parse_manifest(path) if path.is_file() else {}


def list_styles(folder: Path | None = None) -> list[str]:
    return list(read_manifest(folder))


def info(name: str, folder: Path | None = None) -> StyleInfo:
    styles = read_manifest(folder)
    if name not in styles:
        # Let a bare painting name through when exactly one arch has it ("starry_night" -> "lite.starry_night").
        matches = [n for n in styles if n.split(".", 1)[1] == name]
        if len(matches) == 1:
            return styles[matches[0]]
        if matches:
            raise StyleError(f"Style {name!r} is registered as {' and '.join(matches)}; name one of them.")
        manifest = _manifest_path(folder or weights_dir())
        known = ", ".join(styles) or f"none ({manifest} {'lists none' if manifest.is_file() else 'does not exist'})"
        raise StyleError(f"Unknown style {name!r}. Known styles: {known}.")
    return styles[name]


def resolve(name: str, device: str, folder: Path | None = None) -> str:
    """A registered name ("lite.starry_night") as it is; a bare painting ("starry_night") as its `full` net
    on CUDA and its `lite` net elsewhere, whichever is registered. StyleError for an unknown name."""
    known = list_styles(folder)
    if name in known:
        return name
    prefer = ("full", "lite") if device.startswith("cuda") else ("lite", "full")
    for arch in prefer:
        if f"{arch}.{name}" in known:
            return f"{arch}.{name}"
    return info(name, folder).name  # raises: unknown, listing the known styles


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write a safetensors file with Python's open, so it gets the usual mode (0o666 less the umask: 0644 as the
    shipped weights), where `safetensors.torch.save_file` creates files 0600, unreadable to other users and
    tools. An unwritable path raises OSError."""
    Path(path).write_bytes(save(tensors, metadata=metadata))
    return Path(path)


def file_problem(path: Path, digest: str) -> str:
    """What is wrong with a registered weight file of sha256 `digest`: "missing file", "damaged: sha256
    differs" (truncated, replaced, changed), or ""."""
    if not path.is_file():
        return "missing file"
    return "damaged: sha256 differs" if sha256(path) != digest else ""


def state_mismatch(state: dict[str, torch.Tensor], net: torch.nn.Module) -> str:
    """The first difference between a weight file's tensors and the network's, in words ("" when they fit)."""
    expected = net.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            return f"the file has no {key}"
        if state[key].shape != tensor.shape:
            return f"{key} is {list(state[key].shape)} in the file, {list(tensor.shape)} in the network"
    extra = sorted(set(state) - set(expected))
    return f"the file has {extra[0]}, which the network lacks" if extra else ""


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; refuse pickles and report damage in one line."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise StyleError(f"{path.name} is a pickle-based file; StyleCam loads only .safetensors weights.")
    if not path.is_file():
        raise StyleError(f"Weight file {path} is missing.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StyleError(f"Weight file {path} is not a valid safetensors file ({exc}).") from exc


def load(name: str, folder: Path | None = None) -> TransformerNet:
    """Build the network of a registered style and load its weights strictly (fp32, CPU, eval mode).
    The caller moves it to its device and dtype."""
    folder = folder or weights_dir()
    entry = info(name, folder)
    path = folder / entry.file
    if path.is_file() and sha256(path) != entry.sha256:
        raise StyleError(f"Weight file {path} does not match its sha256 in the manifest (corrupt or replaced).")
    state = load_state(path)
    net = TransformerNet(NetConfig.from_dict(entry.net))
    mismatch = state_mismatch(state, net)  # torch's message lists every tensor, over many lines
    if mismatch:
        raise StyleError(f"Weight file {path} does not fit the {entry.arch} network: {mismatch}.")
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return net.eval()


def register(net: TransformerNet, arch: str, style: str, folder: Path | None = None, **meta) -> StyleInfo:
    """Save `net` as fp16 safetensors `arch.style.safetensors` and add/replace its manifest entry. The weights
    go to a temporary file first, moved into place with the manifest: a damaged manifest (StyleError) or a
    failed write leaves both the old file and the old entry as they were."""
    folder = folder or weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{arch}.{style}"
    path = folder / f"{name}.safetensors"
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().half().contiguous().cpu() for k, v in net.state_dict().items()}
    try:
        write_safetensors(tmp, state, {"name": name, "input_range": INPUT_RANGE})
        entry = StyleInfo(name=name, arch=arch, file=path.name, sha256=sha256(tmp), net=net.config.to_dict(), **meta)
        _edit_manifest(folder, lambda styles: styles.__setitem__(name, asdict(entry)), moves=[(tmp, path)])
    finally:
        tmp.unlink(missing_ok=True)
    return entry


def update_metrics(name: str, metrics: dict, folder: Path | None = None) -> None:
    """Merge `metrics` into a registered style's measured metrics (e.g. benchmarks.quality's scores)."""
    folder = folder or weights_dir()
    name = info(name, folder).name  # unknown name -> StyleError listing the known ones

    def merge(styles: dict) -> None:
        styles[name]["metrics"] = {**styles[name]["metrics"], **metrics}
    _edit_manifest(folder, merge)


def _edit_manifest(folder: Path, change, moves: list[tuple[Path, Path]] = ()) -> None:
    """Read the manifest, let `change` edit its {name: entry dict}, write it back atomically; `moves`
    (temporary file, destination) are renamed into place just before it, once its new text is written.
    Several training runs (and the quality benchmark) may write at once: the read-modify-write holds a lock."""
    manifest_path = _manifest_path(folder)
    with exclusive(folder / ".manifest.lock"):
        styles = {n: asdict(s) for n, s in read_manifest(folder).items()}  # a damaged manifest: StyleError, untouched
        change(styles)
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"styles": dict(sorted(styles.items()))}, indent=2) + "\n")
        for source, destination in moves:
            source.replace(destination)
        tmp.replace(manifest_path)
