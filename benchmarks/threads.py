"""CPU time by thread over a file-mode run's steady frames (Linux `/proc`): where the cores go.

In file mode the stages overlap on threads (segmentation beside the style net, encoding on the sink's
thread), so the per-stage medians say what one frame costs, not what holds the frame rate: on a 2-core
CPU that is the cores themselves once they are full. Two snapshots of every thread's time on a CPU and
time spent runnable but waiting for one (`/proc/self/task/*/schedstat`, nanoseconds) give, per frame and
per thread, both. Threads that start and end between the snapshots (libswscale's per-call slice
threads) are not seen; they hold a few hundredths of a millisecond a frame.
"""
from __future__ import annotations

import os
import re
import threading
from collections import Counter

TASKS = "/proc/self/task"
Snapshot = dict[int, tuple[str, float, float]]  # thread id -> (role, ms on a CPU, ms waiting for a CPU)


def snapshot() -> Snapshot | None:
    """Every live thread of this process, or None where the kernel does not expose schedstat."""
    if not os.path.isdir(TASKS):
        return None
    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    out: Snapshot = {}
    for entry in os.listdir(TASKS):
        tid = int(entry)
        try:
            with open(f"{TASKS}/{entry}/schedstat") as f:
                on_cpu, waited = (int(v) for v in f.read().split()[:2])
            with open(f"{TASKS}/{entry}/comm") as f:
                comm = f.read().strip()
        except (OSError, ValueError):  # the thread ended between listing and reading
            continue
        out[tid] = (role(tid, main, names, comm), on_cpu / 1e6, waited / 1e6)
    return out or None


def role(tid: int, main: int | None, names: dict[int, str], comm: str) -> str:
    """"main", a Python thread's name without its pool index (segment_0 -> segment), a native thread's
    name without its number (mediapipe/4711 -> mediapipe (native)), or "unnamed native" for native
    threads that kept the process's name (OpenCV's, FFmpeg's, x264's pools)."""
    if tid == main:
        return "main"
    if tid in names:
        return re.sub(r"_\d+$", "", names[tid])
    name = re.sub(r"[/_-]?\d+$", "", comm)
    return "unnamed native" if name.startswith("python") else name + " (native)"


def per_frame(before: Snapshot | None, after: Snapshot | None, frames: int, frame_ms: float | None) -> dict | None:
    """Milliseconds a frame by thread role between two snapshots `frames` frames apart, and how many cores
    that keeps busy at `frame_ms` a frame. Roles under 0.01 ms a frame are left out."""
    if not before or not after or frames <= 0:
        return None
    cpu, wait = Counter(), Counter()
    for tid, (name, on_cpu, waited) in after.items():
        _, on_cpu0, waited0 = before.get(tid, (name, 0.0, 0.0))
        cpu[name] += (on_cpu - on_cpu0) / frames
        wait[name] += (waited - waited0) / frames
    total = sum(cpu.values())
    rows = [{"thread": name, "cpu_ms": round(ms, 3), "runqueue_ms": round(wait[name], 3)}
            for name, ms in cpu.most_common() if ms >= 0.01]
    return {"frames": frames, "cpu_ms": round(total, 3), "threads": rows,
            "cores_busy": round(total / frame_ms, 2) if frame_ms else None}
