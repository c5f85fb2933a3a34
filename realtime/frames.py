"""The one frame format at every stage boundary.

`Frame.image` is uint8, shape (H, W, 3), RGB channel order, C-contiguous. Colour is converted once, in
the source (OpenCV's BGR never leaves `sources.py`, and is made again only inside `WindowSink`).
`index` counts frames delivered by the source (0, 1, 2, ...; a live camera may skip numbers it
dropped). `t_capture` is `time.perf_counter()` when the source got the frame, so capture-to-output
latency is `perf_counter() - t_capture` at the sink.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Raise TypeError/ValueError unless `image` is uint8 (H, W, 3) C-contiguous."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if not image.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    return image


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB, C-contiguous
    index: int
    t_capture: float  # time.perf_counter() at capture

    def __post_init__(self) -> None:
        check_image(self.image, "Frame.image")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.image.shape[1], self.image.shape[0]

    def with_image(self, image: np.ndarray) -> "Frame":
        """The same frame (index, capture time) carrying a processed picture."""
        return Frame(image, self.index, self.t_capture)
