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
import time


class _Cookie(ctypes.Structure):
    _fields_ = [("sequence", ctypes.c_uint)]


class _ScreenIterator(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_uint32)), ("rem", ctypes.c_int), ("index", ctypes.c_int)]  # data -> root first


class _ReplyHead(ctypes.Structure):  # the 8 bytes every reply starts with, then the reply's own fields
    _fields_ = [("response_type", ctypes.c_uint8), ("pad", ctypes.c_uint8), ("sequence", ctypes.c_uint16),
                ("length", ctypes.c_uint32)]


class _AtomReply(ctypes.Structure):
    _fields_ = [("head", _ReplyHead), ("atom", ctypes.c_uint32)]


WM_NAME, ANY_TYPE = 39, 0  # predefined atom; XCB_GET_PROPERTY_TYPE_ANY


class XWatch:
    """A connection of our own to the X server the window is on, asked once a frame whether the server is
    still there, and whether our window is. When the server goes away (an ssh -X session drops, the server
    restarts) or our window's client is killed (`xkill` on the window), Qt ends the process from inside
    OpenCV's next GUI call ("The X11 connection broke", exit 1 or an abort), losing the video being
    written; asked first, the pipeline stops cleanly and keeps it. A window destroyed from outside
    (`xdotool windowclose`) left Qt reporting it visible, and the run went on with no window. One round
    trip each: ~0.1 ms on a local socket."""

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
        for call, args in (("xcb_get_window_attributes", [ctypes.c_uint32]), ("xcb_query_tree", [ctypes.c_uint32]),
                           ("xcb_intern_atom", [ctypes.c_uint8, ctypes.c_uint16, ctypes.c_char_p]),
                           ("xcb_get_property", [ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
                                                 ctypes.c_uint32, ctypes.c_uint32])):
            getattr(xcb, call).restype = _Cookie
            getattr(xcb, call).argtypes = [ctypes.c_void_p, *args]
            getattr(xcb, call + "_reply").restype = ctypes.c_void_p
            getattr(xcb, call + "_reply").argtypes = [ctypes.c_void_p, _Cookie, ctypes.POINTER(ctypes.c_void_p)]
        xcb.xcb_get_setup.restype = ctypes.c_void_p
        xcb.xcb_get_setup.argtypes = [ctypes.c_void_p]
        xcb.xcb_setup_roots_iterator.restype = _ScreenIterator
        xcb.xcb_setup_roots_iterator.argtypes = [ctypes.c_void_p]
        xcb.xcb_query_tree_children.restype = ctypes.POINTER(ctypes.c_uint32)
        xcb.xcb_query_tree_children_length.restype = ctypes.c_int
        xcb.xcb_get_property_value.restype = ctypes.c_void_p
        xcb.xcb_get_property_value_length.restype = ctypes.c_int
        for call in ("xcb_query_tree_children", "xcb_query_tree_children_length", "xcb_get_property_value",
                     "xcb_get_property_value_length"):
            getattr(xcb, call).argtypes = [ctypes.c_void_p]
        self._libc = ctypes.CDLL(None)
        self._libc.free.argtypes = [ctypes.c_void_p]
        self._connection = xcb.xcb_connect(name.encode(), None)
        self._xcb = xcb
        self.window: int | None = None  # our window's X id, once `window_gone` has found it
        self._next_search = 0.0  # a search walks the window tree (two round trips a window): at most once a second

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

    def _reply(self, call: str, *args) -> int | None:
        """The reply of one request (a pointer the caller frees), or None on an X error (freed here)."""
        xcb, error = self._xcb, ctypes.c_void_p()
        reply = getattr(xcb, call + "_reply")(self._connection, getattr(xcb, call)(self._connection, *args), ctypes.byref(error))
        if error.value:
            self._libc.free(error)
        return reply or None

    def _property(self, window: int, atom: int) -> bytes:
        reply = self._reply("xcb_get_property", 0, window, atom, ANY_TYPE, 0, 64)
        if reply is None:
            return b""
        try:
            return ctypes.string_at(self._xcb.xcb_get_property_value(reply), self._xcb.xcb_get_property_value_length(reply))
        finally:
            self._libc.free(reply)

    def _children(self, window: int) -> list[int]:
        reply = self._reply("xcb_query_tree", window)
        if reply is None:
            return []
        try:
            return self._xcb.xcb_query_tree_children(reply)[:self._xcb.xcb_query_tree_children_length(reply)]
        finally:
            self._libc.free(reply)

    def find_window(self, title: str) -> int | None:
        """The X id of this process's top-level window named `title` (_NET_WM_PID and WM_NAME), looked for
        among the root's children and theirs (a window manager's frame holds the window one level down)."""
        reply = self._reply("xcb_intern_atom", 1, len(b"_NET_WM_PID"), b"_NET_WM_PID")
        if reply is None:
            return None
        pid_atom = ctypes.cast(reply, ctypes.POINTER(_AtomReply)).contents.atom
        self._libc.free(reply)
        pid, name = os.getpid().to_bytes(4, sys.byteorder), title.encode()
        for top in self._children(self._xcb.xcb_setup_roots_iterator(self._xcb.xcb_get_setup(self._connection)).data[0]):
            for window in (top, *self._children(top)):
                if self._property(window, pid_atom) == pid and self._property(window, WM_NAME) == name:
                    return window
        return None

    def window_gone(self, title: str) -> bool:
        """True once the window named `title` that this process showed no longer exists (destroyed from
        outside, or its connection killed); False while it does, or while it has not been found yet."""
        if self._xcb is None:
            return False
        if self.window is None:
            if time.monotonic() >= self._next_search:
                self.window, self._next_search = self.find_window(title), time.monotonic() + 1.0
            return False
        reply = self._reply("xcb_get_window_attributes", self.window)
        if reply is not None:
            self._libc.free(reply)
        return reply is None and self._xcb.xcb_connection_has_error(self._connection) == 0

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
