"""Render the pictures in docs/realtime.md from the bundled sample clip, through the real stages.

    python -m realtime.gallery docs/img [--style lite.starry_night] [--style2 lite.great_wave_off_kanagawa]

Writes `modes.png`: one frame of the sample (after 40 frames, so the mask smoothing has settled) as
the original, the person mask, and the four modes, each labelled.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from realtime.cli import build_config, build_parser
from realtime.config import MODES
from realtime.pipeline import Pipeline

TILE = (320, 240)


def short(name: str) -> str:
    """lite.great_wave_off_kanagawa -> great_wave"""
    return "_".join(name.split(".")[-1].split("_")[:2])


def label(image: np.ndarray, text: str) -> np.ndarray:
    tile = cv2.resize(image, TILE, interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (TILE[0], 24), (0, 0, 0), -1)
    cv2.putText(tile, text, (8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def render(out_dir: Path, style: str | None, style2: str | None, at: int = 40) -> Path:
    args = ["--source", "sample", "--mode", "background", "--output", str(out_dir / "unused.mp4"),
            "--device", "cpu"] + (["--style", style] if style else []) + (["--style2", style2] if style2 else [])
    config = build_config(build_parser().parse_args(args))
    pipeline = Pipeline(config, sinks=[])
    try:
        for _ in range(at):  # let temporal smoothing settle, as it would be mid-call
            frame = pipeline.source.read()
            pipeline.segmenter(frame)
        mask = pipeline.segmenter(frame).copy()
        st = pipeline.stylizer
        tiles = [label(frame.image, "original"),
                 label(np.repeat((mask[..., None] * 255).astype(np.uint8), 3, axis=2), "person mask (MediaPipe)")]
        for mode in MODES:
            pipeline.compositor.mode = mode
            text = {"full": f"full: {st.active}", "background": "background (person stays real)",
                    "person": "person (background stays real)",
                    "split": f"split: {short(st.active)} / {short(st.second)}"}[mode]
            tiles.append(label(pipeline.process(frame).image, text))
    finally:
        pipeline.close()
    sheet = np.concatenate([np.concatenate(tiles[i : i + 3], axis=1) for i in (0, 3)], axis=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "modes.png"
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--style")
    p.add_argument("--style2")
    a = p.parse_args()
    print(render(a.out_dir, a.style, a.style2))


if __name__ == "__main__":
    main()
