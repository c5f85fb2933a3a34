"""Image files in and out. In memory: uint8 (H, W, 3) RGB, C-contiguous; as tensors (B, 3, H, W) 0..1."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

MAX_PIXELS = 40_000_000  # ~ 8K x 5K; larger inputs are refused rather than exhausting memory


class ImageError(ValueError):
    """A file that is missing, not an image, or too large."""


def load_rgb(path: str | Path, max_side: int | None = None) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"No such image file: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ImageError(f"{path} is empty (0 bytes), not an image.")
    header = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8)  # cheap size check before a full decode
    if header is None:
        raise ImageError(f"{path} is not an image OpenCV can read.")
    if header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        raise ImageError(f"{path} is too large (about {header.shape[1] * 8}x{header.shape[0] * 8}); "
                         f"the limit is {MAX_PIXELS // 1_000_000} megapixels. Downscale it first.")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    return resize_max(rgb, max_side) if max_side else rgb


def resize_max(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most `max_side` (never upscales)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def save_rgb(path: str | Path, rgb: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise ImageError(f"Could not write {path} (unsupported extension or unwritable folder).")
    return path


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) 0..1."""
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) 0..1 -> uint8 (H, W, 3)."""
    image = image.detach().float().squeeze(0).clamp(0, 1).mul(255).round().byte()
    return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
