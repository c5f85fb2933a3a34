"""The real-time pipeline, timed through the product's own stages (`realtime/`), never a copy of them.

- `stages`: one frame at a time through the real stage objects, each stage synchronized and timed on
  its own: decode (PyAV `VideoFileSource`), segment (MediaPipe `Segmenter`, modes that need a mask),
  upload (`Stylizer.to_tensor`), style (`Stylizer.stylize`), composite (`Stylizer.mask_tensor` +
  `Compositor`), download (`Stylizer.to_image`), encode (`VideoFileSink.send`, H.264). Their sum is the
  serial cost of a frame; the largest is the stage that limits it.
- `file`: `realtime.pipeline.Pipeline` in file mode (ordered, nothing dropped; segmentation overlaps
  stylization on a worker thread): throughput in frames per second, and on Linux the CPU time a frame by
  thread and how many cores that keeps busy (`benchmarks.threads`).
- `live`: the same `Pipeline` in live mode, its source a clip paced at 30 or 60 FPS like a camera
  (wrapped in the pipeline's own latest-frame reader); a recording sink stores output time minus
  capture time per frame (added latency), and the output FPS.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import media, threads
from benchmarks.config import BenchConfig
from benchmarks.harness import StageClock, peak_memory, reset_peak_memory, summarize
from benchmarks.network import devices
from benchmarks.styles import style_name
from realtime.composite import Compositor
from realtime.config import (AppConfig, OutputConfig, SegmentConfig, SourceConfig, StyleConfig, resolve_backend,
                             resolve_cuda_graphs, resolve_device, resolve_encoder_threads, resolve_subpixel)
from realtime.frames import Frame
from realtime.pipeline import Pipeline
from realtime.segment import Segmenter
from realtime.sinks import VideoFileSink
from realtime.sources import VideoFileSource
from realtime.stylize import Stylizer

log = logging.getLogger(__name__)
WARM_FRAMES = 3  # frames dropped from every timing (MediaPipe graph start, oneDNN primitives, cuDNN)


class RecordingSink:
    """A sink (the `realtime.sinks` interface) that keeps (output time, capture time) per frame and
    stops the pipeline once `seconds` of output have passed and at least `min_frames` were output.
    `threads`: also snapshots every thread's CPU time after the warm-up frames and every
    `SNAPSHOT_EVERY` frames after (the last one while the pipeline's threads are still alive)."""

    SNAPSHOT_EVERY = 8  # a snapshot reads two /proc files a thread: ~0.2 ms (15 threads), 0.03 ms a frame here

    def __init__(self, *, seconds: float, min_frames: int, threads: bool = False, last: int | None = None):
        """`last`: the frame count the run stops at, where the final snapshot is taken."""
        self.seconds, self.min_frames, self.threads, self.last = seconds, min_frames, threads, last
        self.times: list[tuple[float, float]] = []
        self.stop = None  # the pipeline's stop Event, bound after the pipeline is built
        self._deadline: float | None = None
        self.snapshots: list[tuple[int, float, dict | None]] = []  # (frames output, time, snapshot)

    def send(self, frame: Frame) -> None:
        now = time.perf_counter()
        self.times.append((now, frame.t_capture))
        n = len(self.times)
        stopping = n == self.last
        if self._deadline is None:
            self._deadline = now + self.seconds
        elif now >= self._deadline and n >= self.min_frames and self.stop is not None:
            self.stop.set()
            stopping = True
        if self.threads and n > WARM_FRAMES and (stopping or (n - WARM_FRAMES - 1) % self.SNAPSHOT_EVERY == 0):
            self.snapshots.append((n, now, threads.snapshot()))

    def cpu_by_thread(self) -> dict | None:
        """`benchmarks.threads.per_frame` between the first and the last snapshot."""
        if len(self.snapshots) < 2:
            return None
        (n0, t0, first), (n1, t1, last) = self.snapshots[0], self.snapshots[-1]
        return threads.per_frame(first, last, n1 - n0, (t1 - t0) * 1000 / (n1 - n0))

    def close(self) -> None:
        pass


def style_config(name: str, device: str, scale: float = 1.0, threads: int = 0) -> StyleConfig:
    """What the CLI would build for `--device device --backend auto` (realtime.config decides dtype and
    runtime: ONNX Runtime on the CPU when installed)."""
    dev, dtype, channels_last = resolve_device(device)
    return StyleConfig(styles=(name,), device=dev, dtype=dtype, channels_last=channels_last, scale=scale,
                       threads=threads if dev == "cpu" else 0, backend=resolve_backend("auto", dev),
                       subpixel=resolve_subpixel(dev), cuda_graphs=resolve_cuda_graphs(dev))


def stages(cfg: BenchConfig, clip: Path, style: StyleConfig, mode: str, tmp: Path) -> dict:
    source = VideoFileSource(clip).start()
    comp = Compositor(mode=mode)
    seg = Segmenter(config=SegmentConfig()) if comp.needs_mask else None
    st = Stylizer(config=style)
    sink = VideoFileSink(path=tmp / f"stages-{mode}.mp4", fps=source.fps,
                         threads=resolve_encoder_threads(style.device))
    clock = StageClock(style.device)
    st.warmup(source.size)
    t_end = time.perf_counter() + cfg.seconds
    n = 0
    try:
        while n < WARM_FRAMES + cfg.min_iters or (n < WARM_FRAMES + cfg.pipeline_frames and time.perf_counter() < t_end):
            with clock("decode"):
                frame = source.read()
            if frame is None:
                break
            if seg is not None:
                with clock("segment"):
                    mask = seg(frame)
            with clock("upload"):
                x = st.to_tensor(frame.image)
            with clock("style"):
                a = st.stylize(x)
            with clock("composite"):
                y = comp(x, a, st.mask_tensor(mask) if seg is not None else None)
            with clock("download"):
                out = st.to_image(y)
            with clock("encode"):
                sink.send(frame.with_image(out))
            n += 1
    finally:
        sink.close()
        for stage in (seg, st, source):
            if stage is not None:
                stage.close()
    clock.drop_first(WARM_FRAMES)
    per_stage = clock.summary()
    medians = {k: v["median_ms"] for k, v in per_stage.items() if v.get("n")}
    limiting = max(medians, key=medians.get)
    total = sum(medians.values())
    return {"stages": per_stage, "serial_ms": round(total, 3), "serial_fps": round(1000 / total, 2),
            "limiting_stage": limiting, "limiting_ms": medians[limiting],
            "limiting_share": round(medians[limiting] / total, 3)}


def _app(clip: Path, style: StyleConfig, mode: str, output: OutputConfig, max_frames: int) -> AppConfig:
    return AppConfig(source=SourceConfig(spec=str(clip)), segment=SegmentConfig(), style=style, output=output,
                     mode=mode, max_frames=max_frames)


def _warm_segmenter(pipe: Pipeline, clip: Path) -> None:
    """MediaPipe builds its graph on the first call; do that before the clock starts."""
    if pipe.segmenter is not None:
        src = VideoFileSource(clip)
        try:
            pipe.segmenter(src.read())
        finally:
            src.close()


def file_mode(cfg: BenchConfig, clip: Path, style: StyleConfig, mode: str, tmp: Path) -> dict:
    out = tmp / f"file-{mode}.mp4"
    frames = max(cfg.pipeline_frames, WARM_FRAMES + cfg.min_iters + 1)
    stopper = RecordingSink(seconds=cfg.seconds * 2, min_frames=WARM_FRAMES + cfg.min_iters + 1, threads=True,
                            last=frames)
    output = OutputConfig(files=(str(out),), encoder_threads=resolve_encoder_threads(style.device))
    pipe = Pipeline(_app(clip, style, mode, output, frames), source=VideoFileSource(clip))
    pipe.sinks.append(stopper)  # beside the real VideoFileSink: stops a slow configuration early
    stopper.stop = pipe.stop
    _warm_segmenter(pipe, clip)
    windowed = reset_peak_memory(style.device)
    summary = pipe.run()
    t = np.array([o for o, _ in stopper.times])
    steady = (len(t) - 1 - WARM_FRAMES) / (t[-1] - t[WARM_FRAMES]) if len(t) > WARM_FRAMES + 1 else summary.fps
    return {"frames": summary.frames, "seconds": round(summary.seconds, 3), "fps": round(summary.fps, 2),
            "fps_after_warmup": round(float(steady), 2), "frame_ms": round(1000 / steady, 3) if steady else None,
            "written": sum(summary.files.values()), "cpu_by_thread": stopper.cpu_by_thread(),
            **peak_memory(style.device, windowed)}


def live_mode(cfg: BenchConfig, clip: Path, style: StyleConfig, mode: str, fps: float) -> dict:
    sink = RecordingSink(seconds=cfg.live_seconds, min_frames=WARM_FRAMES + cfg.min_iters + 1)
    app = _app(clip, style, mode, OutputConfig(virtual=True), None)  # virtual=True: live semantics
    source = VideoFileSource(clip, loop=True, pace=True)  # paced at the clip's fps, like a camera
    pipe = Pipeline(app, source=source, sinks=[sink])
    sink.stop = pipe.stop
    _warm_segmenter(pipe, clip)
    windowed = reset_peak_memory(style.device)
    summary = pipe.run()
    times = sink.times[WARM_FRAMES:]
    latency = summarize([(o - c) * 1000 for o, c in times])
    out_fps = (len(times) - 1) / (times[-1][0] - times[0][0]) if len(times) > 1 else 0.0
    return {"source_fps": fps, "frames": summary.frames, "dropped": summary.dropped,
            "fps": round(out_fps, 2), "latency_ms": {k: latency.get(k) for k in ("n", "median_ms", "p95_ms", "mean_ms")},
            "pipeline_summary": {"fps": round(summary.fps, 2), "latency_p50_ms": round(summary.latency_p50_ms, 2),
                                 "latency_p95_ms": round(summary.latency_p95_ms, 2)},
            **peak_memory(style.device, windowed)}


def run(cfg: BenchConfig, errors: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """lite on every device; full only on CUDA (~47 GMAC a 640x480 frame is not a CPU pipeline). A
    configuration that raises goes to `errors` (its key and the error) and the others still run."""
    ok, skipped = devices(cfg)
    records: list[dict] = []
    errors = [] if errors is None else errors

    def attempt(kind: str, key: dict, measure) -> None:
        try:
            records.append({"kind": kind, **key, **measure()})
        except Exception as exc:  # noqa: BLE001 - recorded, with its traceback in the log
            log.exception("pipeline %s %s failed", kind, key)
            errors.append({"kind": kind, **key, "error": f"{type(exc).__name__}: {exc}"})

    with tempfile.TemporaryDirectory(prefix="stylecam-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for size in cfg.resolutions:
            w, h = size
            clips = {fps: media.write_clip(tmp / f"clip-{w}x{h}-{fps:g}.mp4", size,
                                           max(cfg.pipeline_frames, WARM_FRAMES + cfg.min_iters + 1), fps)
                     for fps in sorted({30.0, *cfg.live_fps})}
            for arch in cfg.nets:
                with style_name(arch) as name:
                    for device in ok:
                        if device == "cpu" and arch != "lite":
                            skipped.append({"net": arch, "device": device, "size": list(size),
                                            "skipped": "pipeline on the CPU runs the lite net only"})
                            continue
                        scales = (1.0, *cfg.extra_scales) if tuple(size) == tuple(cfg.cpu_path_size) else (1.0,)
                        for scale, mode in ((sc, m) for sc in scales for m in cfg.modes):
                            style = style_config(name, device, scale, cfg.threads)
                            key = {"device": device, "dtype": style.dtype, "size": list(size), "mode": mode,
                                   "style": name, "scale": scale, "backend": style.backend}
                            what = f"{name} {mode} {device} {w}x{h} scale {scale:g}"
                            log.info("pipeline stages %s", what)
                            attempt("stages", key, lambda: stages(cfg, clips[30.0], style, mode, tmp))
                            log.info("pipeline file mode %s", what)
                            attempt("file", key, lambda: file_mode(cfg, clips[30.0], style, mode, tmp))
                            for fps in cfg.live_fps:
                                log.info("pipeline live %g FPS %s", fps, what)
                                attempt("live", key, lambda: live_mode(cfg, clips[fps], style, mode, fps))
    return records, skipped
