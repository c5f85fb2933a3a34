"""One writer at a time for a read-modify-write of a shared file (the manifest, quality.json): trainings
and quality runs on both cores may write at once."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

try:  # POSIX only; without it two writers at once may lose one's change
    import fcntl
except ImportError:
    fcntl = None


@contextmanager
def exclusive(lock_path: Path):
    """Hold an exclusive lock on `lock_path` (created if absent) for the `with` block."""
    with open(lock_path, "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
