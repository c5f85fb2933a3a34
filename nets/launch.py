"""The console scripts' entry points. They import the command-line modules inside a try: those import torch,
OpenCV and MediaPipe (2-5 s), and a Ctrl-C in that time printed a screen of traceback from inside torch."""
from __future__ import annotations

import sys


def stylecam() -> int:
    try:
        from nets.cli import main
    except KeyboardInterrupt:
        print("stylecam: interrupted", file=sys.stderr)
        return 130
    return main()


def stylecam_cam() -> int:
    try:
        from realtime.cli import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return main()
