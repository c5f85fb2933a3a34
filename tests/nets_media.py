"""Real media for the nets/ tests: scikit-image's bundled photos and a generated 'painting'.

Never files from ../shared: CI has only the repository and its installed packages.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from nets.images import resize_max, save_rgb

@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Import into a test module to run it on one intra-op thread. These tensors are small, and on a
    shared 2-core machine two OpenMP threads spin against other processes: a 64 px training step took
    3.1 s on 2 threads and 0.1 s on 1 while a background training job ran."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def photo(name: str = "astronaut", side: int | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB photo from scikit-image, optionally downscaled to a longer side of `side`."""
    rgb = np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])
    return resize_max(rgb, side) if side else rgb


def painting(side: int = 128, seed: int = 0) -> np.ndarray:
    """A bold synthetic 'painting': saturated swirling bands with brush-like noise, uint8 (side, side, 3).
    Its Grams are far from any photo's, so a style loss against it has room to fall."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    swirl = np.sin(14 * x + 5 * np.sin(9 * y)) + np.cos(11 * y + 4 * np.sin(7 * x))
    hue = ((swirl + 2) * 45).astype(np.uint8)  # OpenCV hue 0..180
    hsv = np.stack([hue, np.full_like(hue, 230), (160 + 60 * np.sin(23 * x * y + swirl)).astype(np.uint8)], axis=-1)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.int16)
    rgb += rng.integers(-25, 25, size=rgb.shape, dtype=np.int16)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_photo(path: Path, name: str = "astronaut", side: int | None = None) -> Path:
    return save_rgb(path, photo(name, side))


def write_painting(path: Path, side: int = 128, seed: int = 0) -> Path:
    return save_rgb(path, painting(side, seed))


def content_folder(folder: Path, side: int = 96) -> Path:
    """The scikit-image photos, downscaled, one PNG each: a small content set for training tests."""
    for name in PHOTOS:
        write_photo(folder / f"{name}.png", name, side)
    return folder
