"""Sources on real media: the sample, files, stills, and a capture device that goes away mid-stream
(OpenCV's capture opened on a file that is then deleted: the same code path as an unplugged camera)."""
from __future__ import annotations

import shutil
import time

import cv2
import numpy as np
import pytest

from conftest import read_video
from realtime.cli import build_config, build_parser
from realtime.config import SourceConfig
from realtime.pipeline import Pipeline
from realtime.sources import CameraSource, ImageSource, LatestFrame, VideoFileSource, open_source


def test_sample_is_upscaled_and_in_the_frame_format():
    source, note = open_source(SourceConfig(spec="sample", size=(320, 240)), live=False)
    frames = []
    while (f := source.read()) is not None:
        frames.append(f)
    source.close()
    assert note is None and len(frames) == 120
    img = frames[0].image
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert [f.index for f in frames] == list(range(120))
    assert all(a.t_capture <= b.t_capture for a, b in zip(frames, frames[1:]))


def test_auto_falls_back_to_the_sample_with_one_note(monkeypatch):
    monkeypatch.setattr("realtime.sources.cameras_present", lambda: False)
    source, note = open_source(SourceConfig(spec="auto"), live=False)
    assert "No camera found: using the bundled sample clip" in note and source.size == (640, 480)
    source.close()


def test_still_image_once_in_file_mode(tmp_path, carphone):
    frame = read_video(carphone)[0][10]
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    src = ImageSource(path)
    first = src.read()
    assert np.array_equal(first.image, frame) and src.read() is None


def test_latest_frame_drops_instead_of_queueing(carphone):
    """A paced clip read slower than it plays: old frames are dropped, what arrives is recent."""
    live = LatestFrame(VideoFileSource(carphone, pace=True))
    got = []
    for _ in range(4):
        got.append(live.read())
        time.sleep(0.2)  # compute much slower than 30 FPS
    live.close()
    assert live.dropped >= 8
    assert got[-1].index - got[0].index >= 12  # skipped ahead, not 1, 2, 3


def test_lost_camera_reopens_a_bounded_number_of_times_then_stops_with_output_kept(carphone, style_name, tmp_path):
    device = tmp_path / "camera.mp4"
    shutil.copy(carphone, device)
    camera = CameraSource(str(device), size=(176, 144), reopen_attempts=2, reopen_delay=0.05)
    device.unlink()  # the camera is unplugged: the open capture plays out, then every reopen fails
    out = tmp_path / "kept.mp4"
    args = ["--source", "sample", "--style", style_name, "--output", str(out), "--max-frames", "500"]
    summary = Pipeline(build_config(build_parser().parse_args(args)), source=camera).run()
    assert 0 < summary.frames <= 120
    assert len(read_video(out)[0]) == summary.frames == summary.files[str(out)]
