"""Training photos: a folder's readable images split into a fixed validation set and the rest, random
crops of them as a dataset, and batches epoch after epoch. Shared by the per-style trainer
(`nets.train`) and the AdaIN decoder's (`nets.adain_train`)."""
from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from nets.images import ImageError, load_rgb, readable_images

log = logging.getLogger(__name__)


class ContentPhotos(torch.utils.data.Dataset):
    """Random `size` crops (after a random rescale of the short side to 1..1.25 x size) with flips."""

    def __init__(self, paths: list[Path], size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        rgb = load_rgb(self.paths[i])
        h, w = rgb.shape[:2]
        short = random.uniform(1.0, 1.25) * self.size
        scale = short / min(h, w)
        rgb = cv2.resize(rgb, (max(self.size, round(w * scale)), max(self.size, round(h * scale))), interpolation=cv2.INTER_AREA)
        y = random.randint(0, rgb.shape[0] - self.size)
        x = random.randint(0, rgb.shape[1] - self.size)
        crop = rgb[y:y + self.size, x:x + self.size]
        if random.random() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255.0)  # (3, S, S)


def split_photos(content_dir: Path, val_count: int, batch: int = 1) -> tuple[list[Path], list[Path]]:
    """A fixed validation set: evenly spaced files of the sorted listing of readable photos, never trained on.
    Unreadable files are left out with one warning (not found at a random step of the first epoch);
    ImageError when fewer than `batch` photos are left to train on (a loader dropping its last incomplete
    batch would then yield nothing)."""
    paths, unreadable = readable_images(Path(content_dir))
    if unreadable:
        more = ", ..." if len(unreadable) > 3 else ""
        log.warning("skipping %d unreadable photo(s) in %s: %s%s", len(unreadable), content_dir,
                    ", ".join(unreadable[:3]), more)
    if len(paths) < val_count + 1:
        raise ImageError(f"{content_dir} holds {len(paths)} readable images; training needs at least {val_count + 1}.")
    step = len(paths) // val_count
    val = paths[step // 2::step][:val_count]
    val_set = set(val)
    train = [p for p in paths if p not in val_set]
    if len(train) < batch:
        raise ImageError(f"{len(train)} training photos after {len(val)} kept for validation, fewer than --batch {batch}; "
                         "add photos or lower --batch or --val-count.")
    return train, val


def endless(loader) -> Iterator[torch.Tensor]:
    """The loader's batches, epoch after epoch; ImageError if an epoch yields none (`while step < steps: for
    batch in loader` would spin there forever)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ImageError("The photos make no training batch; add photos or lower --batch.")


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    rgb = cv2.resize(rgb, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_AREA)
    y, x = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
    return rgb[y:y + size, x:x + size]
