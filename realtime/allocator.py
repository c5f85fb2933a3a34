"""glibc malloc settings for a frame loop: freed frame buffers stay in the heap for the next frame.

Every frame allocates and frees the same few buffers (0.9 to 25 MB: the decoded frame, the float
frames, the composite, the uint8 output) on several threads. With glibc's defaults a buffer that size
may come from its own mmap, or be trimmed back to the system when freed, and the next frame faults
its pages in again. Measured on 2 cores (640x480 sample clip looped to 600 frames, `background`, file
mode, 3 interleaved rounds): with OpenCV's blend and download (`realtime.composite.blend`) 0.5 to 1.8
million minor page faults a run and 3.3 to 6.4 s of system time, 41.6 to 47.3 FPS; with the
thresholds below 0.15 million faults, 2.1 to 2.4 s, 49.8 to 56.5 FPS. The price is the freed buffers
kept: peak RSS 0.93 -> 1.02 GB.

Set once, at a program's start (`realtime.cli`, the benchmarks); elsewhere than glibc (musl's stub,
macOS, Windows) nothing is set.
"""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: allocations up to 32 MB (a 1080p fp32 frame is 24.9 MB) use the heap
TRIM_THRESHOLD = 256 << 20  # freed heap kept for reuse before any is given back


def keep_frame_buffers() -> bool:
    """Set the thresholds; True when glibc took both."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
