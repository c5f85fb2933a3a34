"""The one place where stages are connected: Source -> Segmenter -> Stylizer -> Compositor -> Sink(s).

Two ways to run, chosen by the outputs:
- file mode (only video files): ordered, every frame, nothing dropped; a tqdm bar with FPS and ETA.
- live mode (window and/or virtual camera): the source delivers the newest frame (a camera's capture
  thread, or `LatestFrame` around a paced clip), compute runs on this thread (OpenCV's window wants
  it), the virtual camera has its own paced sender thread. Frames that compute cannot keep up with are
  dropped at the source, never queued.
In both, segmentation of a frame runs on a worker thread while the same frame is stylized (MediaPipe
and PyTorch both release the GIL). Ctrl-C sets a stop flag: the frame in flight finishes, sinks close,
files stay valid; a second Ctrl-C raises KeyboardInterrupt. SIGTERM and SIGHUP do the same.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from realtime.composite import Compositor
from realtime.config import AppConfig
from realtime.errors import StyleCamError, WorkerError
from realtime.frames import Frame
from realtime.segment import Segmenter
from realtime.sinks import OrderedWorkerSink, VideoFileSink, VirtualCameraSink
from realtime.sources import LatestFrame, open_source
from realtime.stylize import Stylizer
from realtime.window import WindowSink

log = logging.getLogger(__name__)


class Meter:
    """Output FPS and capture-to-output latency over the last `window` frames."""

    def __init__(self, window: int = 60):
        self.window = window
        self.t_out: list[float] = []
        self.latency: list[float] = []  # seconds, every frame (for the summary)

    def tick(self, t_capture: float) -> None:
        now = time.perf_counter()
        self.t_out = (self.t_out + [now])[-self.window :]
        self.latency.append(now - t_capture)

    @property
    def fps(self) -> float:
        n = len(self.t_out)
        return (n - 1) / (self.t_out[-1] - self.t_out[0]) if n > 1 and self.t_out[-1] > self.t_out[0] else 0.0

    def latency_ms(self, q: float = 50, last: int | None = None) -> float:
        values = self.latency[-last:] if last else self.latency
        return float(np.percentile(values, q) * 1000) if values else 0.0


def count_frames(n: int) -> str:
    return f"{n} frame" + ("" if n == 1 else "s")


@dataclass
class Summary:
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    dropped: int = 0
    stopped_by: str = ""  # "Ctrl-C", "SIGTERM", "SIGHUP": the signal that ended the run early; "" = ran out
    files: dict[str, int] = field(default_factory=dict)  # output path -> frames written (a file with none is removed)
    # virtual camera device -> (frames it was sent, frames its newest-wins queue dropped); the two add
    # up to `frames`
    virtual: dict[str, tuple[int, int]] = field(default_factory=dict)

    def line(self) -> str:
        where = ", ".join(f"{p} ({count_frames(n)})" for p, n in self.files.items() if n)
        unwritten = ", ".join(p for p, n in self.files.items() if not n)
        cams = ", ".join(f"{d} ({count_frames(n)}" + (f", {k} dropped)" if k else ")") for d, (n, k) in self.virtual.items())
        return (f"{count_frames(self.frames)} in {self.seconds:.1f} s: {self.fps:.1f} FPS, latency p50 "
                f"{self.latency_p50_ms:.0f} ms / p95 {self.latency_p95_ms:.0f} ms"
                + (f", {self.dropped} dropped" if self.dropped else "")
                + (f" (stopped by {self.stopped_by})" if self.stopped_by else "") + (f"; wrote {where}" if where else "")
                + (f"; no frame reached {unwritten}, so it was not written" if unwritten else "")
                + (f"; virtual camera {cams}" if cams else ""))


class Pipeline:
    def __init__(self, config: AppConfig, *, source=None, sinks: list | None = None):
        """Builds every stage from `config`. `source`/`sinks` given here replace the configured ones."""
        self.config = config
        self.live = config.output.live
        self.stop = threading.Event()
        self.meter = Meter()
        self._opened: list = []  # everything to close, in order
        try:
            self.source, self.note = (source, None) if source else open_source(config.source, live=self.live)
            self._opened.append(self.source)
            if self.live and not self.source.live:
                self.source = LatestFrame(self.source)
                self._opened.insert(0, self.source)
            self.stylizer = Stylizer(config=config.style)
            self.compositor = Compositor(mode=config.mode)
            needs_seg = self.live or self.compositor.needs_mask  # live: modes switch by hotkey
            self.segmenter = Segmenter(config=config.segment) if needs_seg else None
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="segment") if needs_seg else None
            self.sinks = sinks if sinks is not None else self._make_sinks()
        except BaseException:
            self.close(ok=False)
            raise

    def _make_sinks(self) -> list:
        out, size, fps = self.config.output, self.source.size, self.source.fps
        sinks = []
        try:
            if out.window:
                sinks.append(WindowSink(on_action=self.handle, hud=self.hud, snapshot_dir=out.snapshot_dir))
            if out.virtual:
                sinks.append(VirtualCameraSink(size=size, fps=fps, device=out.virtual_device,
                                               backend=out.virtual_backend))
            audio = getattr(self.source, "path", None) if getattr(self.source, "has_audio", False) else None
            paced = getattr(self.source, "source", None)  # a file shown live (LatestFrame drops frames)
            if out.files and getattr(paced, "has_audio", False):
                log.warning("The audio of %s is not copied into %s: shown live, frames are dropped and the sound "
                            "would drift. Leave out --output window/virtual to write every frame with the audio.",
                            paced.path, ", ".join(out.files))
            for path in out.files:
                # encoded on a thread of its own, in order: overlaps the next frame's compute
                sinks.append(OrderedWorkerSink(sink=VideoFileSink(path=path, fps=fps, audio_from=audio,
                                                                  threads=out.encoder_threads)))
        except BaseException:
            for sink in sinks:
                getattr(sink, "abort", sink.close)()
            raise
        return sinks

    # --- controls (window hotkeys) ---
    def handle(self, action: str) -> None:
        st = self.stylizer
        if action == "next_style":
            st.step_style(1)
        elif action == "prev_style":
            st.step_style(-1)
        elif action == "cycle_mode":
            self.compositor.cycle()
        elif action == "strength_up":
            st.strength += 0.1
        elif action == "strength_down":
            st.strength -= 0.1
        elif action == "quit":
            self.stop.set()

    def hud(self) -> list[str]:
        st = self.stylizer
        return [f"{st.label(st.active)}  mode {self.compositor.mode}  strength {st.strength:.1f}",
                f"{self.meter.fps:.1f} FPS  latency {self.meter.latency_ms(50, last=30):.0f} ms"]

    # --- one frame ---
    def process(self, frame: Frame) -> Frame:
        st, comp = self.stylizer, self.compositor
        pending = self._pool.submit(self.segmenter, frame) if comp.needs_mask else None
        x = st.to_tensor(frame.image)  # (1, 3, H, W)
        a = st.stylize(x)
        b = st.stylize(x, st.second) if comp.mode == "split" else None
        mask = st.mask_tensor(self._mask(pending)) if pending else None  # (1, 1, H, W)
        return frame.with_image(st.to_image(comp(x, a, mask, b)))

    @staticmethod
    def _mask(pending) -> np.ndarray:
        try:
            return pending.result()
        except StyleCamError:
            raise
        except Exception as exc:  # a segmentation-thread failure reaches the user as one line
            raise WorkerError(f"Segmentation failed: {exc.__class__.__name__}: {exc}") from exc

    # --- the loop ---
    def run(self) -> Summary:
        summary = Summary()
        total = getattr(self.source, "frame_count", None)
        if self.config.max_frames:
            total = min(total or self.config.max_frames, self.config.max_frames)
        bar = tqdm(total=total, unit="frame", disable=self.live, dynamic_ncols=True, leave=False)
        restore = self._install_stop_signals()
        ok = False
        t0 = time.perf_counter()
        dropped_at_start = 0
        try:
            self.stylizer.warmup(self.source.size)
            # A live source captures from the moment it opens; what it replaced while the stages loaded
            # and warmed up is start-up, not frames the loop was too slow for.
            dropped_at_start = getattr(self.source, "dropped", 0)
            t0 = time.perf_counter()
            while not self.stop.is_set():
                if self.config.max_frames and summary.frames >= self.config.max_frames:
                    break
                frame = self.source.read()
                if frame is None:
                    break
                out = self.process(frame)
                for sink in self.sinks:
                    sink.send(out)
                self.meter.tick(frame.t_capture)
                summary.frames += 1
                bar.update(1)
            ok = True
        finally:
            bar.close()
            restore()
            summary.stopped_by = self._stopped_by
            summary.seconds = time.perf_counter() - t0
            self.close(ok=ok)
        summary.fps = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
        summary.latency_p50_ms, summary.latency_p95_ms = self.meter.latency_ms(50), self.meter.latency_ms(95)
        summary.dropped = getattr(self.source, "dropped", 0) - dropped_at_start
        summary.files = {str(s.path): s.frames_written for s in self.sinks if isinstance(_inner(s), VideoFileSink)}
        summary.virtual = {s.device: (s.frames_sent, s.dropped) for s in self.sinks if isinstance(s, VirtualCameraSink)}
        return summary

    _stopped_by = ""  # set by a stop signal

    def _install_stop_signals(self):
        """Ctrl-C, `kill` (SIGTERM) and a closed terminal (SIGHUP) end the run the same way: the frame in
        flight finishes and the files are closed valid. A second signal raises KeyboardInterrupt."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        names = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
        if hasattr(signal, "SIGHUP"):  # POSIX only
            names[signal.SIGHUP] = "SIGHUP"
        previous = {signum: signal.getsignal(signum) for signum in names}

        def on_stop_signal(signum, _frame):
            if self.stop.is_set():
                raise KeyboardInterrupt  # the second one: stop now
            self._stopped_by = names[signum]
            self.stop.set()

        for signum in names:
            signal.signal(signum, on_stop_signal)
        return lambda: [signal.signal(signum, handler) for signum, handler in previous.items()]

    def close(self, ok: bool = True) -> None:
        """Close sinks (files renamed into place when ok, removed otherwise), then stages. Safe twice.
        One failing close (a file that cannot be finished) does not leave the others open: every stage
        is closed, then the first error is raised."""
        first: BaseException | None = None
        for sink in getattr(self, "sinks", []):
            try:
                if not ok and isinstance(_inner(sink), VideoFileSink) and not self._stopped_by:
                    sink.abort()
                else:
                    sink.close()
            except Exception as exc:  # re-raised below, once everything is closed
                first = first or exc
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for stage in (getattr(self, "segmenter", None), getattr(self, "stylizer", None), *self._opened):
            if stage is not None:
                try:
                    stage.close()
                except Exception as exc:  # re-raised below
                    first = first or exc
        self._opened = []
        if first is not None:
            raise first


def _inner(sink):
    """The sink itself, or the one an OrderedWorkerSink runs."""
    return sink.sink if isinstance(sink, OrderedWorkerSink) else sink
