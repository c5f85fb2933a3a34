"""Virtual camera through pyvirtualcam's documented backend contract with a capturing backend (no
loopback device can exist in CI), and the sink interface shared by all sinks."""
from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import pyvirtualcam

from conftest import read_video
from realtime.cli import build_config, build_parser, main
from realtime.errors import SinkError
from realtime.frames import Frame
from realtime.pipeline import Pipeline
from realtime.sinks import OrderedWorkerSink, VideoFileSink, VirtualCameraSink
from realtime.sources import CameraSource


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


def virtual_config(args: list[str]):
    cfg = build_config(build_parser().parse_args(args + ["--output", "virtual"]))
    return dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, virtual_backend="stylecam-capture"))


def test_virtual_camera_receives_every_frame_in_rgb(capture_backend, style_name):
    """The sender paces at the clip's fps and its one-slot queue drops the older frame when compute runs
    ahead (the live policy), so how many frames reach the camera depends on timing; what does not is the
    accounting: the backend holds exactly the frames the summary says were sent, and sent + dropped
    is every frame the pipeline output."""
    cfg = virtual_config(["--source", "sample", "--style", style_name, "--size", "320x240", "--max-frames", "12",
                          "--mode", "background"])
    summary = Pipeline(cfg).run()
    backend = capture_backend.instances[0]
    assert summary.frames == 12 and backend.closed == 1
    assert (backend.width, backend.height) == (320, 240)
    assert backend.fourcc == int.from_bytes(pyvirtualcam.PixelFormat.RGB.value.encode(), "little")  # "raw " = RGB24
    sent, dropped = summary.virtual["capture"]
    assert len(backend.frames) == sent and sent + dropped == summary.frames and sent >= 1
    assert f"virtual camera capture ({sent} frames" in summary.line()
    for frame in backend.frames:
        assert frame.dtype == np.uint8 and frame.shape == (320 * 240 * 3,)
    assert backend.frames[-1].reshape(240, 320, 3).std() > 10  # a picture, not a blank


def test_camera_that_grants_another_size_feeds_the_virtual_camera(capture_backend, carphone, style_name):
    """The virtual camera is built from the source's size: a camera that cannot do the requested
    320x240 (OpenCV's capture over the 176x144 clip) must not make the first frame fail."""
    camera = CameraSource(str(carphone), size=(320, 240), reopen_delay=0.01)
    cfg = virtual_config(["--source", "sample", "--style", style_name, "--size", "320x240", "--max-frames", "4"])
    summary = Pipeline(cfg, source=camera).run()
    backend = capture_backend.instances[0]
    assert summary.frames == 4 and (backend.width, backend.height) == (320, 240)
    assert len(backend.frames) == summary.virtual["capture"][0] >= 1


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
    assert len(err.splitlines()) == 1 and err.count("modprobe") == 1  # pyvirtualcam's own advice is not repeated


def test_file_sink_fixes_size_on_first_frame_and_closes_twice(tmp_path):
    path = tmp_path / "x.mp4"
    sink = VideoFileSink(path=path, fps=25)
    sink.send(Frame(np.zeros((32, 48, 3), np.uint8), 0, 0.0))
    with pytest.raises(ValueError, match="differs"):
        sink.send(Frame(np.zeros((48, 48, 3), np.uint8), 1, 0.0))
    sink.close()
    sink.close()
    assert path.is_file() and sink.frames_written == 1


def test_file_sink_gives_x264_the_threads_it_is_told(tmp_path):
    """0 leaves x264 its own choice; a count reaches the encoder (realtime.config.resolve_encoder_threads)."""
    for threads in (0, 1, 3):
        path = tmp_path / f"t{threads}.mp4"
        with VideoFileSink(path=path, fps=25, threads=threads) as sink:
            sink.send(Frame(np.zeros((32, 48, 3), np.uint8), 0, 0.0))
            assert sink._video.codec_context.thread_count == threads
        assert len(read_video(path)[0]) == 1


def test_file_sink_encodes_odd_sides_at_the_even_size_below(tmp_path, carphone):
    """yuv420p needs even sides: a 175x143 picture is written as 174x142, the last column and row cut."""
    rgb = np.ascontiguousarray(read_video(carphone)[0][0][:143, :175])
    with VideoFileSink(path=tmp_path / "odd.mp4", fps=25) as sink:
        for i in range(3):
            sink.send(Frame(rgb, i, 0.0))
    assert sink.size == (175, 143) and sink.encoded_size == (174, 142)
    frames, _ = read_video(tmp_path / "odd.mp4")
    assert len(frames) == 3 and frames[0].shape == (142, 174, 3)
    assert np.abs(frames[0].astype(int) - rgb[:142, :174]).mean() < 6  # the picture, not shifted or scaled


def test_file_sink_keeps_the_colours_the_encoder_itself_would(tmp_path):
    """The sink converts RGB to yuv420p in OpenCV, not in the encoder: a colourful photo must come back
    with the colours, the range and the channel order that libswscale's own conversion gives."""
    import av
    from skimage import data

    rgb = np.ascontiguousarray(data.astronaut()[:256, :320])
    with VideoFileSink(path=tmp_path / "c.mp4", fps=25, crf=0) as sink:  # crf 0: the conversion's error alone
        sink.send(Frame(rgb, 0, 0.0))
    ours = read_video(tmp_path / "c.mp4")[0][0].astype(int)
    theirs = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray(format="rgb24")
    per_channel = (ours - theirs.astype(int)).reshape(-1, 3)
    assert np.abs(per_channel.mean(axis=0)).max() < 1.0  # no range or matrix shift, no swapped channels
    assert np.abs(per_channel).mean() < 2.0


def test_unreadable_audio_input_is_a_sink_error_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SinkError, match="Cannot read the audio of"):
        VideoFileSink(path=out / "x.mp4", fps=25, audio_from=tmp_path / "gone.mp4")
    assert list(out.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, a folder nothing can be created in")
def test_unwritable_output_is_refused_before_any_frame(tmp_path):
    """FFmpeg creates the file at the first frame's header; the sink must find the problem at once,
    not after the pipeline has loaded its nets and painted frames."""
    with pytest.raises(SinkError, match=r"Cannot write /proc/stylecam-\d+\.mp4"):
        VideoFileSink(path=f"/proc/stylecam-{os.getpid()}.mp4", fps=25)


def test_sink_closed_without_a_frame_leaves_no_file(tmp_path):
    VideoFileSink(path=tmp_path / "x.mp4", fps=25).close()
    assert list(tmp_path.iterdir()) == []


def _clip_with_pcm_audio(path, seconds=1.0):
    """A Matroska clip whose audio is 16-bit stereo PCM (as cameras and screen recorders write), which
    FFmpeg's mp4 muxer cannot take as it is (mono it can)."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=44100, layout="stereo")
        for i in range(int(25 * seconds)):
            vf = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 9 * i, np.uint8), format="rgb24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        tone = (3000 * np.sin(np.arange(int(44100 * seconds)) * 2 * np.pi * 440 / 44100)).astype(np.int16)
        for start in range(0, len(tone), 1024):
            chunk = np.repeat(tone[start : start + 1024], 2)[None]  # interleaved left, right
            af = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            af.sample_rate, af.pts = 44100, start
            out.mux(audio.encode(af))
        out.mux(audio.encode(None))
    return path


@pytest.mark.parametrize("suffix, codec", [(".mp4", "aac"), (".m4v", "aac"), (".mkv", "pcm_s16le")])
def test_audio_the_container_cannot_hold_is_reencoded_not_lost(suffix, codec, tmp_path):
    """PCM into .mp4 used to fail at the trailer and delete every encoded frame; .m4v refused it outright.
    Now it is re-encoded as AAC there, and copied as it is where it fits (.mkv)."""
    import av

    source = _clip_with_pcm_audio(tmp_path / "pcm.mkv")
    out = tmp_path / f"out{suffix}"
    with VideoFileSink(path=out, fps=25, audio_from=source) as sink:
        for i in range(25):
            sink.send(np.full((48, 64, 3), 9 * i, np.uint8))
    assert sink.audio_reencoded == (codec == "aac")
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == codec and c.streams.audio[0].rate == 44100
        samples = sum(f.samples for f in c.decode(audio=0))
    assert samples == pytest.approx(44100, abs=2100)  # the second of sound (AAC adds its priming frames)
    assert len(read_video(out)[0]) == 25


def test_audio_that_fails_at_the_end_costs_the_audio_not_the_video(tmp_path, monkeypatch, caplog):
    import av

    source = _clip_with_pcm_audio(tmp_path / "pcm.mkv")
    out = tmp_path / "out.mkv"
    sink = VideoFileSink(path=out, fps=25, audio_from=source)
    for i in range(10):
        sink.send(np.full((48, 64, 3), 9 * i, np.uint8))

    def damaged():
        raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(sink, "_copy_audio", damaged)
    sink.close()
    assert len(read_video(out)[0]) == 10
    assert "the video is kept" in caplog.text


def test_ordered_worker_sink_writes_every_frame_in_order_off_the_caller_thread(tmp_path, carphone):
    """The file encoder on its own thread: a real VideoFileSink behind it gets every frame, in order."""
    frames, _ = read_video(carphone)
    frames = frames[:20]
    path = tmp_path / "threaded.mp4"
    sink = OrderedWorkerSink(sink=VideoFileSink(path=path, fps=25), maxsize=2)
    for i, rgb in enumerate(frames):
        sink.send(Frame(rgb, i, 0.0))
    sink.close()
    sink.close()  # safe twice
    assert sink.frames_written == len(frames) and sink.path == path
    out, _ = read_video(path)
    assert len(out) == len(frames)
    # in order: each decoded frame is closest to the input frame of the same index
    for i in (0, 7, 19):
        errors = [np.abs(out[i].astype(int) - f.astype(int)).mean() for f in frames]
        assert int(np.argmin(errors)) == i


class _FailingSink:
    def __init__(self, fail_at: int):
        self.fail_at, self.sent, self.aborted, self.closed = fail_at, [], False, False

    def send(self, frame):
        if frame.index == self.fail_at:
            raise SinkError("disk full")
        self.sent.append(frame.index)

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True


def test_ordered_worker_sink_carries_the_worker_error_to_the_caller_and_aborts():
    inner = _FailingSink(fail_at=3)
    sink = OrderedWorkerSink(sink=inner, maxsize=1)
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(SinkError, match="disk full"):
        for i in range(200):  # the error surfaces at a later send (or at close), never lost
            sink.send(Frame(image, i, 0.0))
        sink.close()
    assert inner.sent == [0, 1, 2]
    sink.close()
    assert inner.aborted and not inner.closed  # a file that failed is not finished as if whole


def test_ordered_worker_sink_abort_discards_the_queue():
    inner = _FailingSink(fail_at=-1)
    sink = OrderedWorkerSink(sink=inner, maxsize=8)
    sink.abort()
    assert inner.aborted and not inner.closed


def test_frames_replaced_during_start_up_are_not_counted_as_dropped(capture_backend, style_name, monkeypatch):
    """The paced sample runs from the moment it opens; a slow start (here a 1 s warm-up, ~30 frames of
    the clip) must not show up as frames the loop dropped."""
    import time

    from realtime.stylize import Stylizer

    warmup = Stylizer.warmup
    monkeypatch.setattr(Stylizer, "warmup", lambda self, size: (time.sleep(1.0), warmup(self, size))[1])
    cfg = virtual_config(["--source", "sample", "--style", style_name, "--size", "160x128", "--max-frames", "6",
                          "--mode", "full"])
    pipe = Pipeline(cfg)
    summary = pipe.run()
    assert summary.frames == 6
    assert pipe.source.dropped >= 20  # the source did replace frames during the warm-up ...
    assert summary.dropped < 10  # ... and the summary leaves them out


def test_a_file_written_beside_a_live_output_says_why_it_has_no_audio(capture_backend, clip_with_audio, style_name,
                                                                       tmp_path, caplog):
    """Shown live, a video's frames are dropped to keep pace, so its audio cannot be copied in sync: the
    file came out silent without a word."""
    cfg = virtual_config(["--source", str(clip_with_audio), "--style", style_name, "--size", "160x120",
                          "--max-frames", "3", "--output", str(tmp_path / "live.mp4")])
    with caplog.at_level("WARNING"):
        Pipeline(cfg).run()
    assert f"The audio of {clip_with_audio} is not copied into {tmp_path / 'live.mp4'}" in caplog.text
