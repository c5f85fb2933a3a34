"""Soft-mask alpha blending of the original and stylized frames.

Works on the stylizer's tensors (so on the GPU when the stylizer is): x, a, b are (1, 3, H, W) and the
mask (1, 1, H, W), all on one device and dtype, 1 = person.
- full:       a everywhere
- background: a on the background, the person stays real        x*m + a*(1-m)
- person:     a on the person, the background stays real        a*m + x*(1-m)
- split:      a on the person, b on the background (targeted style transfer)
"""
from __future__ import annotations

import torch

from realtime.config import MODES
from realtime.errors import ConfigError


class Compositor:
    def __init__(self, *, mode: str = "full"):
        self.mode = mode

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ConfigError(f"Unknown mode {mode!r}; known: {', '.join(MODES)}.")
        self._mode = mode

    @property
    def needs_mask(self) -> bool:
        return self._mode != "full"

    def cycle(self) -> str:
        self.mode = MODES[(MODES.index(self._mode) + 1) % len(MODES)]
        return self._mode

    def __call__(self, x: torch.Tensor, a: torch.Tensor, mask: torch.Tensor | None = None,
                 b: torch.Tensor | None = None) -> torch.Tensor:
        if self._mode == "full":
            return a
        if mask is None:
            raise ValueError(f"mode {self._mode!r} needs a mask")
        if self._mode == "background":
            return torch.lerp(a, x, mask)  # a + m*(x - a)
        if self._mode == "person":
            return torch.lerp(x, a, mask)
        if b is None:
            raise ValueError("split mode needs a second stylized frame")
        return torch.lerp(b, a, mask)

    def close(self) -> None:
        pass
