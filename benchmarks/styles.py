"""Which weights a benchmark runs. Speed does not depend on weight values, so when no style of an
architecture is registered (a fresh checkout before training), a seeded random-init network stands in
and every record says so in its `weights` field. Precision (fp16 vs fp32) is only meaningful on real
styles, and is labelled the same way."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch

from nets import registry
from nets.transformer_net import TransformerNet, build

RANDOM = "random-init"


def registered(arch: str | None = None) -> list[str]:
    return [n for n in registry.list_styles() if arch is None or n.startswith(arch + ".")]


def load_net(arch: str) -> tuple[TransformerNet, str]:
    """(fp32 CPU eval net, label): the first registered `arch.*` style, else a seeded random init."""
    names = registered(arch)
    if names:
        return registry.load(names[0]), names[0]
    torch.manual_seed(0)
    return build(arch).eval(), f"{RANDOM}.{arch}"


@contextlib.contextmanager
def style_name(arch: str):
    """A registry name of an `arch` style the real-time `Stylizer` can load. Without a registered one, a
    random-init net is registered in a temporary weights folder (STYLECAM_WEIGHTS, restored after)."""
    names = registered(arch)
    if names:
        yield names[0]
        return
    old = os.environ.get("STYLECAM_WEIGHTS")
    with tempfile.TemporaryDirectory(prefix="stylecam-bench-") as tmp:
        net, _ = load_net(arch)
        registry.register(net, arch, RANDOM.replace("-", "_"), folder=Path(tmp))
        os.environ["STYLECAM_WEIGHTS"] = tmp
        try:
            yield f"{arch}.{RANDOM.replace('-', '_')}"
        finally:
            if old is None:
                os.environ.pop("STYLECAM_WEIGHTS", None)
            else:
                os.environ["STYLECAM_WEIGHTS"] = old
