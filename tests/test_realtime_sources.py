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
from realtime.orientation import Orientation
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


def test_a_file_source_gives_the_decoders_own_rgb_pixels(carphone):
    """The source's own conversion settings (one libswscale thread, for speed) must not change a pixel:
    every one equals PyAV's default conversion. Guards the colours, not the thread count (a speed
    matter, measured by the benchmark's thread table)."""
    import av

    with av.open(str(carphone)) as container:
        expected = [f.to_ndarray(format="rgb24") for _, f in zip(range(12), container.decode(video=0))]
    source = VideoFileSource(carphone)
    got = [source.read().image for _ in expected]
    source.close()
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert all(a.flags.c_contiguous for a in got)  # PyAV 18.1.1 hands out the decoder's padded rows
    assert len({a.tobytes() for a in got}) > 1  # real, moving frames


@pytest.mark.parametrize("rotate, hflip, vflip", [(-90, False, False), (90, False, False), (180, False, False),
                                                   (0, True, False), (0, False, True), (90, True, False),
                                                   (-90, False, True), (180, True, False)])
def test_a_phone_video_stored_sideways_or_mirrored_comes_out_as_players_show_it(rotate, hflip, vflip, tmp_path):
    """The display matrix (what players turn the picture by, degrees counter-clockwise, then mirror; a
    phone held upright stores its frames sideways with -90, some front cameras store them mirrored) is
    applied: the frames, the size, and the person segmentation sees are as a player shows them. A mirror
    alone reads as `VideoFrame.rotation` -180; turning by that showed it upside down."""
    import av

    stored = np.zeros((48, 64, 3), np.uint8)
    stored[:12, :16] = (255, 0, 0)  # a red block in the stored picture's top-left corner
    path = tmp_path / f"rotated{rotate}{'h' * hflip}{'v' * vflip}.mp4"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv444p"
        video.set_display_rotation(rotate, hflip=hflip, vflip=vflip)
        for i in range(3):
            vf = av.VideoFrame.from_ndarray(stored, format="rgb24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
    source = VideoFileSource(path)
    image = source.read().image
    source.close()
    expected = np.rot90(stored, rotate // 90)  # FFmpeg's av_display_matrix_flip: mirrors after the turn
    expected = expected[:, ::-1] if hflip else expected
    expected = expected[::-1] if vflip else expected
    assert source.size == (expected.shape[1], expected.shape[0])
    assert image.shape == expected.shape and image.flags.c_contiguous
    assert np.abs(image.astype(int) - expected).mean() < 8  # the red corner where a player shows it


@pytest.mark.parametrize("turns", range(4))
def test_orientation_from_quarter_turns_is_np_rot90(turns):
    image = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    assert np.array_equal(Orientation.from_turns(turns).apply(image), np.rot90(image, turns))


def test_a_matroska_file_without_a_frame_count_still_gives_the_progress_bar_a_total(tmp_path):
    """Matroska and WebM store no frame count; the progress bar had no total and no ETA."""
    import av

    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            vf = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
    with av.open(str(path)) as c:
        assert not c.streams.video[0].frames  # the container really keeps none
    source = VideoFileSource(path)
    decoded = 0
    while source.read() is not None:
        decoded += 1
    source.close()
    assert decoded == 30 and source.frame_count == pytest.approx(30, abs=1)


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


class ZeroSizeCapture:
    """OpenCV's capture with a driver that reports 0x0 (some V4L2 and DirectShow drivers do until the
    first frame): the only faked part is the size it reports; the frames are the clip's."""

    def __init__(self, cap: cv2.VideoCapture):
        self._cap = cap

    def get(self, prop: int) -> float:
        if prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
            return 0.0
        return self._cap.get(prop)

    def __getattr__(self, name):
        return getattr(self._cap, name)


@pytest.mark.parametrize("driver", ["grants another size", "reports 0x0"])
def test_camera_size_is_the_size_of_the_frames_it_delivers(carphone, monkeypatch, driver):
    """Sinks are built from `source.size`: it must match the frames even when the driver does not give
    the requested mode. OpenCV's capture over the 176x144 clip ignores the 320x240 request, as a camera
    without that mode does."""
    if driver == "reports 0x0":
        real = cv2.VideoCapture
        monkeypatch.setattr(cv2, "VideoCapture", lambda device: ZeroSizeCapture(real(device)))
    camera = CameraSource(str(carphone), size=(320, 240), reopen_delay=0.01)  # loops at the end
    granted = (camera._cap.get(cv2.CAP_PROP_FRAME_WIDTH), camera._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    try:
        frames = [camera.read() for _ in range(3)]
    finally:
        camera.close()
    assert granted == ((176, 144) if driver == "grants another size" else (0, 0))  # not what was asked
    assert camera.size == (320, 240)
    assert all(f is not None and f.size == camera.size for f in frames)


def test_a_still_photo_over_8k_is_painted_at_8k_not_refused_late(tmp_path, monkeypatch, caplog):
    """A phone's 50-200 MP photo went through at full size and failed after half a minute with OpenCV's
    allocation message; it is painted at the 8K pixel budget (here made small), its shape kept."""
    import cv2

    monkeypatch.setattr("realtime.sources.MAX_PIXELS", 40 * 30)
    photo = tmp_path / "big.png"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8))
    source = ImageSource(photo)
    w, h = source.size
    assert w * h <= 40 * 30 and abs(w / h - 160 / 120) < 0.05
    assert "160x120" in caplog.text and f"{w}x{h}" in caplog.text
    assert ImageSource(photo, size=(80, 60)).size == (80, 60)  # an asked size is kept


def test_an_animated_gif_is_read_as_a_video(tmp_path):
    """It was refused as 'an image, not a video', with advice (rename it .png) that did not work either."""
    from PIL import Image

    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    frames = [Image.fromarray(np.full((48, 64, 3), c, np.uint8)) for c in colours]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    source = VideoFileSource(path)
    got = [source.read() for _ in range(4)]
    source.close()
    assert got[3] is None and source.size == (64, 48)
    for frame, colour in zip(got, colours):
        assert np.abs(frame.image.reshape(-1, 3).mean(axis=0) - colour).max() < 20
