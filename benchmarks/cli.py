"""The edge of the benchmark commands (`python -m benchmarks`, `.quality`, `.gallery`, `.any_painting`).

Flag types refuse a bad value in the parser (one line, exit 2); the checks that can be made before
measuring (an output folder that cannot be written, a paintings folder that is missing or incomplete) are
made before measuring; `run` turns every expected error into one line on stderr (exit 1) and Ctrl-C into
one line (exit 130), as `stylecam` (nets/cli.py) and `run_cam.py` (realtime/cli.py) do.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import torch

from nets import registry
from nets.args import Parser, int_range  # noqa: F401 (the benchmark commands' parser and flag type)
from nets.images import ImageError
from nets.vgg import VGGWeightsError


class BenchError(Exception):
    """An expected problem of a benchmark command (a missing folder, an unwritable output): one line, exit 1."""


threads = int_range(1)  # torch.set_num_threads(0) raises a RuntimeError deep in a run


def seconds(text: str) -> float:
    """An argparse type: a finite, positive number of seconds (nan and -1 used to reach the JSON)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def device(text: str) -> str:
    """An argparse type: auto, cpu, cuda or cuda:N ("auto" is resolved by `resolve_device`)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use auto, cpu or cuda[:N]")
    return text


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {name} was asked for but CUDA is not available; use --device cpu.")
    return name


def writable_dir(folder: Path, flag: str = "--out") -> Path:
    """`folder`, made if needed, once a file could be created in it: checked before measuring, not after."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
        why = f"{blocking} is a file" if blocking and not blocking.is_dir() else exc.strerror or str(exc)
        raise BenchError(f"Cannot write to {folder} ({why}); choose another {flag}.") from exc
    return folder


def scratch_dir(what: str) -> Path:
    """A new temporary folder for a run whose results must not land in the checkout."""
    return Path(tempfile.mkdtemp(prefix=f"stylecam-{what}-"))


def check_paintings(styles_dir: Path, names: Iterable[str]) -> None:
    """Raise BenchError unless `styles_dir` holds the painting of every style in `names`."""
    if not styles_dir.is_dir():
        what = "is not a folder" if styles_dir.exists() else "does not exist"
        raise BenchError(f"The paintings folder {styles_dir} {what}; give --styles-dir the folder of the "
                         "paintings (../shared/data/styles).")
    wanted = set()
    for name in names:
        painting = registry.info(name).recipe.get("style_image")
        if not painting:
            raise BenchError(f"{name} names no painting in its recipe (style_image), so it cannot be scored.")
        wanted.add(painting)
    missing = sorted(p for p in wanted if not (styles_dir / p).is_file())
    if missing:
        listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise BenchError(f"The paintings folder {styles_dir} lacks {len(missing)} of the {len(wanted)} paintings "
                         f"needed ({listed}); give --styles-dir the folder of the paintings.")


def run(body: Callable[[], int], interrupted: Callable[[], str] | None = None) -> int:
    """`body()`'s exit status; an expected error is one line on stderr and 1, Ctrl-C one line and 130
    (`interrupted()` says what was kept). SIGTERM keeps Python's default, an immediate end: the GPU session
    bounds `python -m benchmarks` with `timeout`, and a KeyboardInterrupt could be taken by a pipeline's
    clean stop and let the run go on past it."""
    try:
        return body()
    except KeyboardInterrupt:
        note = interrupted() if interrupted else ""
        print(f"interrupted{'; ' + note if note else ''}", file=sys.stderr)
        return 130
    except (BenchError, ImageError, registry.StyleError, VGGWeightsError) as exc:
        message = str(exc)
    except torch.cuda.OutOfMemoryError:
        message = "out of GPU memory; lower --size, or use --device cpu."
    except OSError as exc:  # a full disk, a folder made unwritable during the run
        message = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    except Exception as exc:  # last resort, as run_cam's: a bug or an error nobody named is still one line
        if os.environ.get("STYLECAM_DEBUG") == "1":
            raise
        message = f"unexpected {exc.__class__.__name__}: {exc} (set STYLECAM_DEBUG=1 for the traceback)"
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return 1
