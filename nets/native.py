"""`native_stderr_silenced`: quiet the C++ libraries (MediaPipe, TFLite) that log to fd 2 directly."""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """MediaPipe's C++ side logs INFO/WARNING lines (EGL missing, XNNPACK delegate) straight to fd 2
    before absl logging is initialised, so neither GLOG_minloglevel nor `logging` reaches them. Point
    fd 2 at /dev/null while the graph is built and run once; Python errors raised meanwhile still
    propagate normally as exceptions. fd 2 itself, not `sys.stderr.fileno()`: native code writes to fd 2
    even when Python's stderr is replaced (pytest capture, IDEs)."""
    fd = 2
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(fd)
    except OSError:  # no fd 2 at all (pythonw on Windows): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
