"""Whether a window can open here, asked before OpenCV tries.

OpenCV's Qt build on Linux has one platform plugin, xcb (X11). When DISPLAY names an X server that
cannot be reached (a stale ssh forward, a stopped Xvfb) or only WAYLAND_DISPLAY is set, Qt aborts the
whole process (SIGABRT, no Python exception to catch). So the X server is asked first, through libxcb.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys


class _Cookie(ctypes.Structure):
    _fields_ = [("sequence", ctypes.c_uint)]


class XWatch:
    """A connection of our own to the X server the window is on, asked once a frame whether the server is
    still there. When it goes away (an ssh -X session drops, xkill, the server restarts), Qt ends the
    process from inside OpenCV's next GUI call (exit 1, then an abort), losing the video being written;
    asked first, the pipeline stops cleanly and keeps it. One round trip: ~0.1 ms on a local socket."""

    def __init__(self, name: str):
        path = ctypes.util.find_library("xcb")
        self._xcb = None
        if path is None:
            return
        xcb = ctypes.CDLL(path)
        xcb.xcb_connect.restype = ctypes.c_void_p
        xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
        xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
        xcb.xcb_get_input_focus.restype = _Cookie
        xcb.xcb_get_input_focus.argtypes = [ctypes.c_void_p]
        xcb.xcb_get_input_focus_reply.restype = ctypes.c_void_p
        xcb.xcb_get_input_focus_reply.argtypes = [ctypes.c_void_p, _Cookie, ctypes.c_void_p]
        self._libc = ctypes.CDLL(None)
        self._libc.free.argtypes = [ctypes.c_void_p]
        self._connection = xcb.xcb_connect(name.encode(), None)
        self._xcb = xcb

    def connected(self) -> bool | None:
        """Whether the connection was made (None where libxcb is missing)."""
        return None if self._xcb is None else self._xcb.xcb_connection_has_error(self._connection) == 0

    def alive(self) -> bool:
        """False once the X server is gone (True where libxcb is missing: nothing to ask with)."""
        if self._xcb is None:
            return True
        reply = self._xcb.xcb_get_input_focus_reply(self._connection, self._xcb.xcb_get_input_focus(self._connection), None)
        if reply:
            self._libc.free(reply)
        return bool(reply) and self._xcb.xcb_connection_has_error(self._connection) == 0

    def close(self) -> None:
        if self._xcb is not None:
            self._xcb.xcb_disconnect(self._connection)
            self._xcb = None


def x_server_answers(name: str) -> bool | None:
    """Whether the X server `name` (":0", "host:10") accepts a connection; None when libxcb is missing."""
    watch = XWatch(name)
    try:
        return watch.connected()
    finally:
        watch.close()


def display_problem() -> str | None:
    """None when a window can open; else why not, in a few words."""
    if sys.platform in ("win32", "darwin"):
        return None
    name = os.environ.get("DISPLAY")
    if not name:
        if os.environ.get("WAYLAND_DISPLAY"):
            return "DISPLAY is not set, and OpenCV's windows need X11 (Xwayland) on Wayland"
        return "DISPLAY is not set"
    if x_server_answers(name) is False:
        return f"the X display {name} does not answer"
    return None
