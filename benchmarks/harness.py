"""Timing and memory: warm up, synchronize, measure (STYLE.md point 10; the nanoGPT bench pattern).

`measure(fn, ...)` times whole calls; `StageClock` times named stages inside one loop. Both
synchronize CUDA before reading the clock, so asynchronous kernels are charged to the stage that
launched them. Peak RSS is per measurement on Linux (VmHWM is reset through /proc/self/clear_refs);
GPU memory is `torch.cuda.max_memory_allocated` after a reset.
"""
from __future__ import annotations

import contextlib
import resource
import time
from collections import defaultdict
from typing import Callable

import numpy as np
import torch


def sync(device: str | torch.device) -> None:
    """Wait for queued CUDA work; a no-op on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def summarize(samples_ms: list[float]) -> dict:
    """Median, p95, mean, min, n and FPS (1000 / median) of per-call milliseconds."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    med = float(np.median(a))
    return {"n": int(a.size), "median_ms": round(med, 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "mean_ms": round(float(a.mean()), 3), "min_ms": round(float(a.min()), 3),
            "fps": round(1000.0 / med, 2) if med > 0 else None}


# --- memory ---------------------------------------------------------------------------------------
def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_memory(device: str | torch.device = "cpu") -> bool:
    """Start a new peak-RSS window (Linux) and, on CUDA, a new peak-allocation window. Returns whether
    RSS peaks are per window (False: the process-lifetime peak is reported instead)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_memory(device: str | torch.device = "cpu", windowed: bool = True) -> dict:
    hwm = _status_kib("VmHWM")
    if hwm is None:  # not Linux: ru_maxrss is KiB on Linux, bytes on macOS; both are lifetime peaks
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        windowed = False
    out = {"peak_rss_mib": round(hwm / 1024, 1), "peak_rss_scope": "measurement" if windowed else "process"}
    if torch.device(device).type == "cuda":
        out["gpu_peak_alloc_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        out["gpu_peak_reserved_mib"] = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
    return out


# --- timing ---------------------------------------------------------------------------------------
def time_calls(fn: Callable[[], object], n: int, device: str | torch.device = "cpu") -> list[float]:
    """Milliseconds of `n` synchronized calls (no warm-up: the caller has done it)."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def measure(fn: Callable[[], object], *, device: str | torch.device = "cpu", warmup: int = 2, iters: int = 20,
            min_iters: int = 3, seconds: float = 4.0) -> dict:
    """Call `fn` `warmup` times untimed, then time up to `iters` calls (at least `min_iters`, stopping
    once `seconds` are spent). Returns `summarize(...)` plus peak memory of the timed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    windowed = reset_peak_memory(device)
    samples: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(samples) < iters and (len(samples) < min_iters or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        sync(device)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return {**summarize(samples), **peak_memory(device, windowed)}


class StageClock:
    """Per-stage milliseconds inside a loop: `with clock("segment"): ...`; `clock.summary()`."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = device
        self.samples: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.samples[stage].append((time.perf_counter() - t0) * 1000.0)

    def drop_first(self, n: int) -> None:
        """Forget the first `n` samples of every stage (the warm-up frames)."""
        for k in self.samples:
            self.samples[k] = self.samples[k][n:]

    def summary(self) -> dict:
        return {k: summarize(v) for k, v in self.samples.items()}
