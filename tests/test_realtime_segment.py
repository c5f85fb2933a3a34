"""Segmentation without its optional native pieces: OpenCV without contrib (the guided filter from box
filters) and no MediaPipe at all (one clear line; full mode still runs)."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from realtime import segment
from realtime.cli import main
from realtime.config import SegmentConfig
from realtime.errors import SegmentError
from realtime.sources import VideoFileSource


@pytest.fixture()
def frame_and_mask(carphone):
    src = VideoFileSource(carphone).start()
    try:
        image = src.read().image
    finally:
        src.close()
    seg = segment.Segmenter(config=SegmentConfig(smoothing=0, refine=False, feather=0))
    try:
        mask = seg(image).copy()
    finally:
        seg.close()
    return image, mask


def test_the_box_filter_guided_filter_matches_contrib(frame_and_mask, monkeypatch):
    image, mask = frame_and_mask
    guide = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    contrib = segment.guided_filter(guide, mask, 4, 1e-3)
    monkeypatch.delattr(cv2, "ximgproc")
    ours = segment.guided_filter(guide, mask, 4, 1e-3)
    assert 0.05 < mask.mean() < 0.95  # a real person mask, with edges to refine
    assert np.abs(ours - contrib).max() < 1e-4
    assert np.abs(ours - mask).max() > 0.01  # and it did refine something


def test_without_mediapipe_segmentation_is_one_line_and_full_mode_still_runs(carphone, style_name, tmp_path,
                                                                               monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe now raises ImportError
    with pytest.raises(SegmentError, match="MediaPipe cannot be imported"):
        segment.Segmenter()
    out = tmp_path / "bg.mp4"
    assert main(["--source", str(carphone), "--style", style_name, "--mode", "background", "--output", str(out)]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: MediaPipe cannot be imported"), err
    assert not out.exists()
    out = tmp_path / "full.mp4"
    assert main(["--source", str(carphone), "--style", style_name, "--mode", "full", "--output", str(out),
                 "--max-frames", "3"]) == 0
    assert out.is_file()
