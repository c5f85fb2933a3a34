"""The console scripts' entry points. They import the command-line modules inside a try: those import torch,
OpenCV and MediaPipe (2-5 s), and a Ctrl-C in that time printed a screen of traceback from inside torch."""
from __future__ import annotations

import importlib
import sys


def _guarded(module: str, interrupted: str) -> int:
    """`module.main()`, with a Ctrl-C during its import said as `interrupted` (one line, exit 130)."""
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    return main()


def stylecam() -> int:
    return _guarded("nets.cli", "stylecam: interrupted")


def stylecam_cam() -> int:
    return _guarded("realtime.cli", "interrupted")
