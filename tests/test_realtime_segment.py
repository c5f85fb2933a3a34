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


@pytest.mark.parametrize("size", [(1920, 1080), (640, 480)])
def test_a_frame_gets_its_mask_computed_at_half_size_and_upscaled(frame_and_mask, size):
    """A 1080p or 640x480 frame is segmented at half its size (960x540, 320x240) and the mask scaled
    back: same shape and range, within a few hundredths of the mask computed at the frame's own size
    (it costs a third to two thirds as much)."""
    image, _ = frame_and_mask
    big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    masks = {}
    for side in (0, 960):
        seg = segment.Segmenter(config=SegmentConfig(work_side=side))
        try:
            assert seg.work_size(size[1], size[0]) == (None if side == 0 else (size[0] // 2, size[1] // 2))
            for _ in range(3):  # smoothing settles
                masks[side] = seg(big).copy()
        finally:
            seg.close()
    assert masks[960].shape == size[::-1] and masks[960].dtype == np.float32
    assert masks[960].min() >= 0 and masks[960].max() <= 1 and masks[960].max() > 0.9  # a person was found
    diff = np.abs(masks[960] - masks[0])
    assert diff.mean() < 0.01 and np.percentile(diff, 99) < 0.1


def test_a_mask_is_computed_at_half_size_within_the_work_side_and_never_below_320_px():
    seg = segment.Segmenter.__new__(segment.Segmenter)  # work_size needs only the config
    seg.config = SegmentConfig(work_side=960)
    assert seg.work_size(480, 640) == (320, 240) and seg.work_size(720, 1280) == (640, 360)
    assert seg.work_size(1080, 1920) == (960, 540) and seg.work_size(1920, 1080) == (540, 960)
    assert seg.work_size(2160, 3840) == (960, 540)  # at most the work side
    assert seg.work_size(240, 320) is None and seg.work_size(600, 636) is None  # a half under 320 px: own size
    seg.config = SegmentConfig(work_side=0)
    assert seg.work_size(1080, 1920) is None
