"""Image files in and out. In memory: uint8 (H, W, 3) RGB, C-contiguous; as tensors (B, 3, H, W) 0..1."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import torch

MAX_PIXELS = 40_000_000  # ~ 8K x 5K; larger inputs are refused rather than exhausting memory
MIN_SIDE = 8  # the 1/8 header decode below fails on smaller sides; no network can use such an image anyway
SAVE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})  # what OpenCV reads here


class ImageError(ValueError):
    """A file that is missing, not an image, too large or too small, or an output name OpenCV cannot write."""


def _header(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The file's bytes and its 1/8-scale decode; ImageError for a missing, empty, unreadable or tiny file."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"No such image file: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ImageError(f"{path} is empty (0 bytes), not an image.")
    try:
        header = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8)  # cheap size check before a full decode
    except cv2.error as exc:  # the 1/8 resize asserts on a side under 8 px (damaged files return None instead)
        raise ImageError(f"{path} is too small (a side under {MIN_SIDE} px); use a larger image.") from exc
    if header is None:  # (OpenCV's imdecode refuses a JPEG cut short, where imread paints its missing rows grey)
        raise ImageError(f"{path} is cut short (a truncated JPEG); copy or download it again." if truncated_jpeg(data)
                         else f"{path} is not an image OpenCV can read.")
    return data, header


def truncated_jpeg(data: np.ndarray) -> bool:
    """Whether the file's bytes are a JPEG that stops before its picture does (a copy or download cut short):
    OpenCV decodes it anyway, the missing rows grey, and libjpeg only prints a warning. A whole JPEG ends
    with its end-of-image marker; one that does not (some cameras append data after it) is decoded by
    Pillow, which names a cut-short file, to be sure."""
    if data[:2].tobytes() != b"\xff\xd8" or data[-2:].tobytes() == b"\xff\xd9":
        return False
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):  # "image file is truncated", or damage Pillow words otherwise
        return True
    return False


def _too_large(path: str | Path, header: np.ndarray) -> ImageError:
    return ImageError(f"{path} is too large (about {header.shape[1] * 8}x{header.shape[0] * 8}); "
                      f"the limit is {MAX_PIXELS // 1_000_000} megapixels. Downscale it first.")


def probe(path: str | Path) -> np.ndarray:
    """The file's bytes once it passed `load_rgb`'s checks short of the full decode (it exists, is not empty,
    OpenCV reads it at 1/8 scale, it is neither too large nor too small); ImageError otherwise. Damaged
    files (truncated, empty, not images) fail the 1/8 decode too: 0.5 s for 1463 photos of 256 px."""
    data, header = _header(path)
    if header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        raise _too_large(path, header)
    return data


REDUCED = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))


def load_rgb(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """uint8 RGB. With `max_side` (downscaled to at most that), an image over MAX_PIXELS is decoded at the
    first of 1/2, 1/4, 1/8 that fits (a museum's 100-megapixel scan as a 512 px painting), still at least
    `max_side`; without it, or when even 1/8 does not fit, it is refused."""
    data, header = _header(path)
    flag = cv2.IMREAD_COLOR
    if header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        h, w = header.shape[0] * 8, header.shape[1] * 8
        fits = [f for r, f in REDUCED if max_side and (h // r) * (w // r) <= MAX_PIXELS and max(h, w) // r >= max_side]
        if not fits:
            raise _too_large(path, header)
        flag = fits[0]
    bgr = cv2.imdecode(data, flag)
    if bgr is None:  # its 1/8 decode worked, the full one did not
        raise ImageError(f"{path} is damaged; OpenCV cannot read it whole.")
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    return resize_max(rgb, max_side) if max_side else rgb


def readable_images(folder: Path) -> tuple[list[Path], list[str]]:
    """The sorted image files of `folder` that `probe` passes, and the names of those it does not (empty,
    truncated, not images)."""
    paths, unreadable = [], []
    previous = cv2.getLogLevel()
    cv2.setLogLevel(2)  # errors only: OpenCV warns twice about each truncated PNG
    try:
        for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                probe(path)
            except ImageError:
                unreadable.append(path.name)
            else:
                paths.append(path)
    finally:
        cv2.setLogLevel(previous)
    return paths, unreadable


def resize_max(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most `max_side` (never upscales)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def check_output(path: str | Path) -> Path:
    """Raise ImageError unless `path` names an image file `save_rgb` can write (checked before long work)."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"Output {path} is a folder; give a file name such as {path / 'out.png'}.")
    if path.suffix.lower() not in SAVE_SUFFIXES:
        raise ImageError(f"Cannot write {path}: unsupported extension {path.suffix or '(none)'}; "
                         f"use one of {', '.join(SAVE_SUFFIXES)}.")
    return path


def save_rgb(path: str | Path, rgb: np.ndarray) -> Path:
    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # OpenCV raises for a codec it lacks, returns False for an unwritable file
        written = cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    except cv2.error as exc:
        raise ImageError(f"OpenCV has no writer for {path} in this build; use a .png or .jpg name.") from exc
    if not written:
        raise ImageError(f"Could not write {path} (unwritable folder or full disk).")
    return path


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) 0..1."""
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) 0..1 -> uint8 (H, W, 3)."""
    image = image.detach().float().squeeze(0).clamp(0, 1).mul(255).round().byte()
    return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
