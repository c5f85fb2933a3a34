"""Sinks, one interface (modelled on pyvirtualcam's `Camera`): keyword-only constructor, `send(frame)`,
`close()` safe to call twice, context manager. Window, virtual camera and file are interchangeable and
run together.

- `VideoFileSink`: H.264 mp4 through PyAV (odd frame sides cropped to even); the input's audio stream
  copied, or re-encoded as AAC where the output's container cannot hold it (PCM in .mp4, Opus in .mov:
  `audio_copy_fits`); written to a hidden temporary file beside the target and renamed on `close()`, so an
  interrupted run still leaves a valid file of the frames done, and `abort()` (an error) leaves nothing.
- `VirtualCameraSink`: pyvirtualcam, fed by a sender thread that paces with `sleep_until_next_frame()`;
  a one-slot queue, newest frame wins (compute never waits for the camera). Every frame given to
  `send` is either sent or counted: `frames_sent + dropped` equals the frames sent to the sink.
- `WindowSink` lives in `realtime/window.py`.
"""
from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pyvirtualcam

from realtime.errors import SinkError, WorkerError
from realtime.frames import Frame, check_image

log = logging.getLogger(__name__)


# AAC takes up to 8 channels; its encoder wants a named layout
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def audio_copy_fits(source: str | os.PathLike, suffix: str) -> bool:
    """Whether the first audio stream of `source` can be copied as it is into a file ending in `suffix`.
    Tried on a few packets in a scratch file: a container's codec list is not the answer (FFmpeg's mp4
    muxer takes PCM's header and fails at the trailer; the m4v one refuses it when the stream is added)."""
    with tempfile.TemporaryDirectory() as scratch, av.open(str(source)) as source_in:
        out = av.open(os.path.join(scratch, f"probe{suffix}"), "w")
        try:
            stream = source_in.streams.audio[0]
            copy = out.add_stream_from_template(stream)
            for n, packet in enumerate(p for p in source_in.demux(stream) if p.dts is not None):
                packet.stream = copy
                out.mux(packet)
                if n == 3:
                    break
            out.close()
            return True
        except (av.FFmpegError, ValueError):
            try:
                out.close()
            except av.FFmpegError:
                pass
            return False


class _Sink:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


class VideoFileSink(_Sink):
    def __init__(self, *, path: str | os.PathLike, fps: float, audio_from: str | os.PathLike | None = None,
                 crf: int = 20, preset: str = "superfast", threads: int = 0):
        """`threads`: libx264 threads; 0 = x264's own choice (see realtime.config.resolve_encoder_threads).
        `preset`: superfast, measured against veryfast on 2 cores (300 stylized frames, CRF 20, one thread):
        at 640x480 3.6 against 6.5 ms a frame, PSNR 41.4 against 41.0 dB, the file 52% larger; at
        1920x1080 (x264's threads) 20.8 against 33.4 ms, 43.1 against 42.4 dB, 83% larger. The same
        quality from less CPU, which the style net and segmentation share: file mode on the sample at
        640x480, `background`, 58.3 against 54.1 FPS (medians of 3 interleaved runs)."""
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv"):
            raise SinkError(f"Output {self.path} must end in .mp4, .mov or .mkv (H.264 video).")
        if not self.path.parent.is_dir():
            raise SinkError(f"Output folder {self.path.parent} does not exist.")
        if self.path.is_dir():
            raise SinkError(f"Output {self.path} is a folder; give a file name such as {self.path / 'painted.mp4'}.")
        self.temp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        self.rate = Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001 exactly
        self.options = {"crf": str(crf), "preset": preset} | ({"threads": str(threads)} if threads else {})
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # fixed by the first frame
        self.encoded_size: tuple[int, int] | None = None  # `size` rounded down to even sides
        self._audio_in = None
        # The audio input is opened first: if it fails, no temporary file has been created to leave behind.
        if audio_from is not None:
            try:
                self._audio_in = av.open(str(audio_from))
            except (av.FFmpegError, UnicodeDecodeError) as exc:
                raise SinkError(f"Cannot read the audio of {audio_from} to copy it into {self.path}: {exc}") from exc
        try:
            # FFmpeg creates the file only when it writes the header, at the first frame: creating it
            # here finds an unwritable place (a read-only folder, /proc) before any work is done
            self.temp.touch()
        except OSError as exc:
            if self._audio_in is not None:
                self._audio_in.close()
            raise SinkError(f"Cannot write {self.path}: {exc.strerror or exc}") from exc
        try:
            self._out = av.open(str(self.temp), "w")
        except av.FFmpegError as exc:
            if self._audio_in is not None:
                self._audio_in.close()
            self.temp.unlink(missing_ok=True)
            raise SinkError(f"Cannot write {self.path}: {exc}") from exc
        self._audio_out, self.audio_reencoded = None, False
        if self._audio_in is not None and self._audio_in.streams.audio:
            self._add_audio(audio_from)
        self._video = None
        self._closed = False

    def _add_audio(self, source: str | os.PathLike) -> None:
        audio = self._audio_in.streams.audio[0]
        if audio_copy_fits(source, self.path.suffix):
            self._audio_out = self._out.add_stream_from_template(audio)
            return
        layout = AAC_LAYOUTS.get(audio.channels)
        if layout is None:
            log.warning("The audio of %s (%s, %d channels) cannot go into a %s file; the video is written "
                        "without it (use .mkv to keep it).", source, audio.codec_context.name, audio.channels,
                        self.path.suffix)
            return
        self._audio_out = self._out.add_stream("aac", rate=audio.rate, layout=layout)
        self.audio_reencoded = True
        log.warning("The audio of %s (%s) cannot be copied into a %s file; it is re-encoded as AAC "
                    "(use .mkv to copy it as it is).", source, audio.codec_context.name, self.path.suffix)

    def _open_video(self, width: int, height: int) -> None:
        # yuv420p (the pixel format players accept) halves the chroma both ways, so H.264 needs even
        # sides. Odd sizes are common (853x480 is 16:9 at 480 lines): encode at the even size below by
        # cropping the last column and/or row, one pixel of picture rather than a refused video.
        if min(width, height) < 2:
            raise SinkError(f"Frames of {width}x{height} are too small for {self.path} (H.264 needs at least 2x2 pixels).")
        self.encoded_size = (width - width % 2, height - height % 2)
        self._video = self._out.add_stream("libx264", rate=self.rate, options=self.options)
        self._video.width, self._video.height = self.encoded_size
        self._video.pix_fmt = "yuv420p"
        self._video.codec_context.time_base = 1 / self.rate  # pts counts frames
        self.size = (width, height)

    def send(self, frame: Frame) -> None:
        image = check_image(frame.image if isinstance(frame, Frame) else frame)
        if self._closed:
            raise SinkError(f"{self.path} is already closed.")
        size = (image.shape[1], image.shape[0])
        if self._video is None:
            self._open_video(*size)
        elif size != self.size:
            raise ValueError(f"frame size {size} differs from the first frame's {self.size}")
        if self.encoded_size != size:
            image = np.ascontiguousarray(image[: self.encoded_size[1], : self.encoded_size[0]])
        # RGB -> yuv420p (BT.601, limited range, as libswscale's default) in OpenCV, not in the encoder:
        # at 1920x1080 on the 2-core CPU 1.8 ms against swscale's 16.8, within 3 levels of it (mean 0.06);
        # `send` as a whole (x264 veryfast, sample clip, medians of 2-3 runs) 5.9 -> 5.0 ms at 640x480,
        # 42.7 -> 39.5 ms at 1920x1080
        vf = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        vf.pts = self.frames_written
        try:
            self._out.mux(self._video.encode(vf))
        except av.FFmpegError as exc:  # disk full, file system gone (av.error.OSError is one)
            raise SinkError(f"Cannot write {self.path} at frame {self.frames_written}: {exc}") from exc
        self.frames_written += 1

    def _copy_audio(self) -> None:
        """Copy the input's audio packets up to the video's duration (a --max-frames run stops early)."""
        if self._audio_out is None:
            return
        stream = self._audio_in.streams.audio[0]
        end = self.frames_written / self.rate  # seconds of video written
        if self.audio_reencoded:
            for frame in self._audio_in.decode(stream):
                if frame.time is not None and frame.time >= end:
                    break
                self._out.mux(self._audio_out.encode(frame))
            self._out.mux(self._audio_out.encode(None))
            return
        for packet in self._audio_in.demux(stream):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * stream.time_base >= end:
                break
            packet.stream = self._audio_out
            self._out.mux(packet)

    def close(self) -> None:
        """Flush, copy audio, and rename the temporary file into place. A file with no frame is removed."""
        if self._closed:
            return
        self._closed = True
        try:
            try:
                if self._video is not None:
                    self._out.mux(self._video.encode(None))  # flush the encoder's delayed frames
                    try:
                        self._copy_audio()
                    except (av.FFmpegError, ValueError) as exc:  # a damaged audio track costs the audio, not the video
                        log.warning("The audio could not be copied into %s (%s); the video is kept.", self.path, exc)
            finally:
                self._out.close()
                if self._audio_in is not None:
                    self._audio_in.close()
            if self.frames_written:
                self.temp.replace(self.path)
            else:
                self.temp.unlink(missing_ok=True)
        except (av.FFmpegError, OSError) as exc:  # a file that could not be finished is not playable
            self.temp.unlink(missing_ok=True)
            raise SinkError(f"Cannot finish {self.path}: {exc}") from exc

    def abort(self) -> None:
        """Stop after an error: leave no file behind."""
        if not self._closed:
            self._closed = True
            try:
                self._out.close()
            except av.FFmpegError:
                pass
            if self._audio_in is not None:
                self._audio_in.close()
        self.temp.unlink(missing_ok=True)


class OrderedWorkerSink(_Sink):
    """Runs another sink's `send` on a thread of its own, in order, losing nothing (files).

    The compute thread hands a frame over and goes on with the next one while this one is encoded:
    H.264 at 640x480 took ~6 ms of a ~38 ms CPU frame here, and overlapping it raised file mode from
    22 to 28 FPS on 2 cores (issue 5). The bounded queue is backpressure, never a drop: `send` waits
    when the encoder is `maxsize` frames behind. A failure in the worker is re-raised in the caller by
    the next `send` or by `close`; `close` drains every queued frame first, so an interrupted run keeps
    all the frames it reported done."""

    def __init__(self, *, sink: _Sink, maxsize: int = 4):
        self.sink = sink
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None  # raised once, in the caller
        self._failed = False  # the wrapped sink failed: close() aborts it rather than finishing it
        self._discard = False  # abort(): drop what is queued instead of encoding it
        self._thread = threading.Thread(target=self._run, name=f"sink-{type(sink).__name__}", daemon=True)
        self._thread.start()
        self._closed = False

    def __getattr__(self, name: str):  # path, frames_written, ... of the wrapped sink
        return getattr(self.__dict__["sink"], name)

    def _run(self) -> None:
        while (frame := self._queue.get()) is not None:
            if not self._failed and not self._discard:
                try:
                    self.sink.send(frame)
                except BaseException as exc:  # carried to the caller; keep draining so it never blocks
                    self._error, self._failed = exc, True

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def send(self, frame: Frame) -> None:
        self._raise()
        while True:
            try:
                self._queue.put(frame, timeout=0.1)
                return
            except queue.Full:
                self._raise()

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)  # the worker always drains, so this returns
            self._thread.join()

    def close(self) -> None:
        if self._closed:
            return
        self._stop()
        if self._failed:
            getattr(self.sink, "abort", self.sink.close)()
            self._raise()  # unless send() already raised it
            return
        self.sink.close()

    def abort(self) -> None:
        if self._closed:
            return
        self._discard = True
        self._stop()
        getattr(self.sink, "abort", self.sink.close)()


VIRTUAL_CAMERA_HELP = {
    "linux": "No virtual camera device. Load v4l2loopback: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
             "card_label=StyleCam (Chrome and Zoom need exclusive_caps=1).",
    "win32": "No virtual camera. Install OBS Studio (it ships the OBS Virtual Camera) and start it once, or "
             "install the Unity Capture driver.",
    "darwin": "No virtual camera. Install OBS Studio 30+ and click 'Start Virtual Camera' once to install it.",
}


class VirtualCameraSink(_Sink):
    def __init__(self, *, size: tuple[int, int], fps: float, device: str | None = None,
                 backend: str | None = None):
        import sys

        self.size, self.fps = tuple(size), fps
        try:
            self._cam = pyvirtualcam.Camera(size[0], size[1], fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                            device=device, backend=backend)
        except RuntimeError as exc:
            hint = VIRTUAL_CAMERA_HELP.get(sys.platform, "No virtual camera device.")
            # pyvirtualcam's own "no device" message repeats the modprobe advice; other failures (a busy
            # device, no permission) are worth their words
            said = "No v4l2 loopback device found" in str(exc) and sys.platform.startswith("linux")
            raise SinkError(hint if said else f"{hint} ({exc})") from exc
        self.device = self._cam.device
        self.frames_sent = 0
        self.dropped = 0
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="virtual-camera", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        try:
            while (frame := self._queue.get()) is not None:
                self._cam.send(frame.image)
                self.frames_sent += 1
                self._cam.sleep_until_next_frame()
        except BaseException as exc:  # carried to the compute thread by send()
            self._error = exc

    def send(self, frame: Frame) -> None:
        if self._error is not None:
            raise WorkerError(f"Virtual camera failed: {self._error!r}") from self._error
        check_image(frame.image)
        if (frame.image.shape[1], frame.image.shape[0]) != self.size:
            raise ValueError(f"frame size {frame.size} differs from the camera's {self.size}")
        try:
            self._queue.put_nowait(frame)
        except queue.Full:  # drop the older frame: the camera shows the newest
            try:
                self._queue.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            self._queue.put_nowait(frame)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while True:  # the end sentinel must get in even if a frame waits
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:  # the sender is stuck or gone: the waiting frame is dropped, and counted
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
        self._thread.join(timeout=2.0)
        self._cam.close()
