"""Command-line pieces shared by the commands (`stylecam`, `nets.adain_train`, the benchmarks): one-line
parse errors, the device resolved once, and the flag types."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch


class CLIError(Exception):
    """A problem with the command line itself (bad device, missing folder, output onto an input)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise CLIError(f"Unknown device {name!r}; use auto, cpu or cuda[:N].") from exc
    if device.type not in ("cpu", "cuda"):  # torch.device takes mps, xpu, meta... that this build cannot run
        raise CLIError(f"Unsupported device {name!r}; use auto, cpu or cuda[:N].")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name} was asked for but no CUDA GPU is available; use --device cpu or auto.")
    return device


def guard_outputs(outputs: list[Path], inputs: list[Path]) -> None:
    ins = {Path(p).resolve() for p in inputs}
    for out in outputs:
        if Path(out).resolve() in ins:
            raise CLIError(f"Output {out} would overwrite an input; choose another --out.")


def side(text: str) -> int:
    """--max-side: a whole number of pixels, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use 0 (full size) or a side in pixels")
    return value


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`); the benchmark commands use it too."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}; use {low} or more")
        return value
    return parse


positive = int_range(1)  # --steps, --batch, --val-count, --val-every, --checkpoint-every


def style_name(text: str) -> str:
    """--name names files (ARCH.NAME.safetensors, its checkpoint): a file stem, no folder in it."""
    if text.startswith(".") or len(text) > 200 or any(c in text for c in "/\\\0"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name; use letters, digits, _ or - (no / or leading .)")
    return text


def layer_names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def weighted_layers(text: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """"relu1_1,relu2_1" or "relu1_1:2,relu2_1:0.5" -> (names, weights); weights () when none given."""
    names, weights = [], []
    for item in layer_names(text):
        name, _, weight = item.partition(":")
        names.append(name)
        try:
            weights.append(float(weight) if weight else 1.0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad layer weight in {item!r}; use NAME:WEIGHT") from None
    return tuple(names), (tuple(weights) if ":" in text else ())
