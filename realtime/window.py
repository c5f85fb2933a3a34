"""`WindowSink`: an OpenCV window with a HUD and hotkeys (same interface as the sinks in `sinks.py`).

Keys (handled on the thread that calls `send`, OpenCV's GUI thread):
  n / ]  next style        p / [  previous style      m  cycle mode (full, background, person, split)
  + / =  strength up       -      strength down       s  snapshot to PNG      q / Esc  quit
The sink turns a key into an action name and calls `on_action(name)`; the pipeline owns what it does.
`press(key)` injects a key exactly as the keyboard would (tests, scripted demos).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from realtime.display import XWatch, display_problem
from realtime.errors import SinkError
from realtime.frames import Frame, check_image

log = logging.getLogger(__name__)

KEYS = {
    ord("n"): "next_style", ord("]"): "next_style",
    ord("p"): "prev_style", ord("["): "prev_style",
    ord("m"): "cycle_mode",
    ord("+"): "strength_up", ord("="): "strength_up",
    ord("-"): "strength_down",
    ord("s"): "snapshot",
    ord("q"): "quit", 27: "quit",
}
HELP = "n/p style  m mode  +/- strength  s snapshot  q quit"


class WindowSink:
    def __init__(self, *, title: str = "StyleCam", on_action: Callable[[str], None] | None = None,
                 hud: Callable[[], list[str]] | None = None, snapshot_dir: str | os.PathLike = "."):
        problem = display_problem()
        if problem:
            raise SinkError(f"No display for --output window ({problem}). Use --output FILE.mp4 or --output virtual.")
        self.title, self.on_action, self.hud = title, on_action, hud
        self.snapshot_dir = Path(snapshot_dir)
        self.snapshots: list[Path] = []
        self.quit = False
        self._last: np.ndarray | None = None
        try:
            cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no Qt toolbar
        except cv2.error as exc:
            raise SinkError(f"Cannot open a window ({exc.msg.strip()}). Use --output FILE.mp4 or --output virtual.") from exc
        self._shown = False
        self._closed = False
        self._lost = False  # the X server went away: no OpenCV GUI call may run again (Qt would end the process)
        self._watch = XWatch(os.environ["DISPLAY"]) if os.environ.get("DISPLAY") and sys.platform.startswith("linux") else None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _draw_hud(self, bgr: np.ndarray) -> None:
        lines = (self.hud() if self.hud else []) + [HELP]
        for i, text in enumerate(lines):
            y = 22 + 22 * i
            cv2.putText(bgr, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(bgr, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)

    def send(self, frame: Frame) -> None:
        image = check_image(frame.image)
        if self._lost:
            return
        self._last = image
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        self._draw_hud(bgr)
        if self._watch is not None:  # as closing the window: stop, keep the files, no more GUI calls
            gone = ("display", "went away") if not self._watch.alive() else (
                ("window", "was closed from outside") if self._watch.window_gone(self.title) else None)
            if gone:
                self._lost = True
                what = os.environ.get("DISPLAY") if gone[0] == "display" else repr(self.title)
                log.warning("The %s %s %s; stopping (a video being written keeps the frames so far).", gone[0], what, gone[1])
                self.press(ord("q"))
                return
        try:
            cv2.imshow(self.title, bgr)
            self._shown = True
            key = cv2.waitKey(1)
            visible = key != -1 or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error as exc:  # the display went away (X server stopped, session closed)
            msg = " ".join(exc.msg.split())
            raise SinkError(f"The window failed ({msg}). Use --output FILE.mp4 or --output virtual.") from exc
        if key != -1:
            self.press(key & 0xFF)
        elif not visible:  # closed with the mouse
            self.press(ord("q"))

    def press(self, key: int | str) -> str | None:
        """Handle one key as if typed in the window; returns the action name (None for unbound keys)."""
        action = KEYS.get(ord(key) if isinstance(key, str) else key)
        if action == "snapshot":
            self.snapshot()
        elif action == "quit":
            self.quit = True
        if action and self.on_action:
            self.on_action(action)
        return action

    def snapshot(self) -> Path | None:
        """The last frame shown (without the HUD) as a PNG in `snapshot_dir`, said on stderr with its path
        (or why it could not be written: the window goes on)."""
        if self._last is None:
            return None
        path = (self.snapshot_dir / f"stylecam_{time.strftime('%Y%m%d_%H%M%S')}_{len(self.snapshots):03d}.png").absolute()
        try:
            written = cv2.imwrite(str(path), cv2.cvtColor(self._last, cv2.COLOR_RGB2BGR))
        except cv2.error:
            written = False
        if not written:
            log.warning("snapshot not saved: %s cannot be written (run from a folder you can write to).", path)
            return None
        log.warning("snapshot saved: %s", path)
        self.snapshots.append(path)
        return path

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watch is not None:
            self._watch.close()
        if self._lost:
            return
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
