"""`terminate_as_interrupt`: SIGTERM (`kill`, `timeout`, a CI time-out) and SIGHUP (a closed terminal)
raise KeyboardInterrupt, as Ctrl-C does, so every command cleans up the same way on all three: training
saves its checkpoint, file outputs are finished or removed. Python's default for both is to die at once.
"""
from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within the block (main thread only; elsewhere signals cannot be handled), SIGTERM and SIGHUP raise
    KeyboardInterrupt; the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])  # no SIGHUP on Windows
    previous = {signum: signal.getsignal(signum) for signum in signums}

    def interrupt(signum, _frame):
        raise KeyboardInterrupt

    for signum in signums:
        signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
