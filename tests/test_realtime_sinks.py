"""Virtual camera through pyvirtualcam's documented backend contract with a capturing backend (no
loopback device can exist in CI), and the sink interface shared by all sinks."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import pyvirtualcam

from realtime.cli import build_config, build_parser, main
from realtime.errors import SinkError
from realtime.frames import Frame
from realtime.pipeline import Pipeline
from realtime.sinks import VideoFileSink, VirtualCameraSink


class CaptureBackend:
    """A pyvirtualcam backend that keeps what it is sent (the contract: keyword-only constructor,
    send(1-D uint8), close() once, device(), native_fourcc())."""

    instances: list["CaptureBackend"] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw):
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self.frames: list[np.ndarray] = []
        self.closed = 0
        self.lock = threading.Lock()
        CaptureBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        with self.lock:
            self.frames.append(frame.copy())

    def close(self) -> None:
        self.closed += 1

    def device(self) -> str:
        return "capture"

    def native_fourcc(self):
        return None


@pytest.fixture
def capture_backend():
    CaptureBackend.instances.clear()
    pyvirtualcam.register_backend("stylecam-capture", CaptureBackend)
    yield CaptureBackend
    # With backend=None pyvirtualcam tries every registered backend: do not leak this one.
    pyvirtualcam.camera.BACKENDS.pop("stylecam-capture", None)


def test_virtual_camera_receives_every_frame_in_rgb(capture_backend, style_name):
    args = ["--source", "sample", "--style", style_name, "--output", "virtual", "--size", "320x240",
            "--max-frames", "12", "--mode", "background"]
    cfg = build_config(build_parser().parse_args(args))
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, virtual_backend="stylecam-capture"))
    pipeline = Pipeline(cfg)
    sink = pipeline.sinks[0]
    summary = pipeline.run()
    backend = capture_backend.instances[0]
    assert summary.frames == 12 and backend.closed == 1
    assert (backend.width, backend.height) == (320, 240)
    assert backend.fourcc == int.from_bytes(pyvirtualcam.PixelFormat.RGB.value.encode(), "little")  # "raw " = RGB24
    assert len(backend.frames) == sink.frames_sent == 12 - sink.dropped and sink.frames_sent >= 6
    for frame in backend.frames:
        assert frame.dtype == np.uint8 and frame.shape == (320 * 240 * 3,)
    assert backend.frames[-1].reshape(240, 320, 3).std() > 10  # a picture, not a blank


def test_virtual_camera_sink_contract(capture_backend):
    frame = Frame(np.full((48, 64, 3), 200, np.uint8), 0, 0.0)
    with VirtualCameraSink(size=(64, 48), fps=30, backend="stylecam-capture") as sink:
        sink.send(frame)
        with pytest.raises(ValueError, match="differs"):
            sink.send(Frame(np.zeros((32, 32, 3), np.uint8), 1, 0.0))
        with pytest.raises(TypeError):
            sink.send(Frame(np.zeros((48, 64, 3), np.float32), 2, 0.0))
    sink.close()  # safe twice
    assert capture_backend.instances[0].closed == 1


def test_no_loopback_device_names_the_fix(style_name, capsys):
    """Without v4l2loopback (as in CI) the default backend fails: one line with the modprobe fix."""
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("the Linux hint")
    code = main(["--source", "sample", "--style", style_name, "--output", "virtual", "--max-frames", "2"])
    err = capsys.readouterr().err.strip()
    if code == 0:
        pytest.skip("this machine has a loopback camera")
    assert code == 2 and "sudo modprobe v4l2loopback devices=1 exclusive_caps=1" in err
    assert len(err.splitlines()) == 1


def test_file_sink_fixes_size_on_first_frame_and_closes_twice(tmp_path):
    path = tmp_path / "x.mp4"
    sink = VideoFileSink(path=path, fps=25)
    sink.send(Frame(np.zeros((32, 48, 3), np.uint8), 0, 0.0))
    with pytest.raises(ValueError, match="differs"):
        sink.send(Frame(np.zeros((48, 48, 3), np.uint8), 1, 0.0))
    sink.close()
    sink.close()
    assert path.is_file() and sink.frames_written == 1
    with pytest.raises(SinkError, match="even"):
        VideoFileSink(path=tmp_path / "odd.mp4", fps=25).send(Frame(np.zeros((33, 48, 3), np.uint8), 0, 0.0))
