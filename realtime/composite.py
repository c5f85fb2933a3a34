"""Soft-mask alpha blending of the original and stylized frames.

Works on the stylizer's tensors (so on the GPU when the stylizer is): x, a, b are (1, 3, H, W) and the
mask (1, 1, H, W), all on one device and dtype, 1 = person.
- full:       a everywhere
- background: a on the background, the person stays real        x*m + a*(1-m)
- person:     a on the person, the background stays real        a*m + x*(1-m)
- split:      a on the person, b on the background (targeted style transfer)

Every mode is one `blend(bottom, top, mask)`. On the CPU in fp32 OpenCV blends the frames' (H, W, 3)
views: measured at 640x480 on one thread, 0.35 ms against 2.6 ms for `torch.lerp` with the mask
broadcast over channels, the same values to 1e-5.
"""
from __future__ import annotations

import cv2
import numpy as np
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
            return blend(a, x, mask)  # a + m*(x - a)
        if self._mode == "person":
            return blend(x, a, mask)
        if b is None:
            raise ValueError("split mode needs a second stylized frame")
        return blend(b, a, mask)

    def close(self) -> None:
        pass


def blend(bottom: torch.Tensor, top: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """bottom + mask * (top - bottom): (1, 3, H, W) frames, (1, 1, H, W) mask, one device and dtype."""
    if bottom.device.type == "cpu" and bottom.dtype == top.dtype == mask.dtype == torch.float32 and bottom.shape[0] == 1:
        m = np.ascontiguousarray(mask[0, 0].numpy())
        out = cv2.blendLinear(hwc(top), hwc(bottom), m, 1.0 - m)  # (top*m + bottom*(1-m)) / (m + 1-m)
        return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W), channels_last strides
    return torch.lerp(bottom, top, mask)


def hwc(t: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) CPU tensor -> C-contiguous (H, W, 3) array: a view when `t` has channels_last strides."""
    return np.ascontiguousarray(t.detach()[0].permute(1, 2, 0).numpy())
