"""The preview window for real, under Xvfb (skipped where Xvfb is missing; .ci/run installs it)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, read_video, start_xvfb
from realtime.cli import build_config, build_parser
from realtime.frames import Frame
from realtime.sources import fit


def test_window_runs_max_frames_and_a_real_keypress_takes_a_snapshot(xvfb_display, style_name, tmp_path):
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed")
    env = {**os.environ, "DISPLAY": xvfb_display}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_cam.py"), "--source", "sample", "--style", style_name,
                             "--output", "window", "--max-frames", "60", "--size", "320x240"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "StyleCam"], env=env,
                               capture_output=True, text=True, timeout=90)
        window = found.stdout.split()[0]
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, timeout=10, check=True)
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("stylecam_*.png")) and time.monotonic() < deadline and proc.poll() is None:
            subprocess.run(["xdotool", "key", "s"], env=env, timeout=10, check=True)
            time.sleep(0.3)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "60 frames in" in err, err
    assert list(tmp_path.glob("stylecam_*.png")), "the 's' key did not save a snapshot"


def test_hotkeys_change_style_mode_and_strength(xvfb_display, style_name, tmp_path, monkeypatch, carphone):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    from realtime.pipeline import Pipeline
    from realtime.window import WindowSink

    args = ["--source", "sample", "--style", style_name, "--output", "window", "--max-frames", "5",
            "--size", "320x240", "--strength", "0.5"]
    pipeline = Pipeline(build_config(build_parser().parse_args(args)))
    window = next(s for s in pipeline.sinks if isinstance(s, WindowSink))
    names = pipeline.stylizer.names
    if len(names) < 2:
        pipeline.close()
        pytest.skip(f"the style hotkey needs two registered styles of one architecture; only {names} are")
    assert names[0] == style_name and names[1] != names[0]
    window.snapshot_dir = tmp_path
    frame = Frame(fit(read_video(carphone)[0][30], (320, 240)), 0, time.perf_counter())

    def shown() -> np.ndarray:
        """The same input frame through the pipeline into the window; what the window shows."""
        window.send(pipeline.process(frame))
        return cv2.imread(str(window.snapshot())).astype(np.float32)

    first = shown()
    assert window.press("n") == "next_style"
    assert pipeline.stylizer.active == names[1]
    second = shown()
    assert np.abs(second - first).mean() > 8, "the style hotkey did not change the picture"
    window.press("p")
    assert pipeline.stylizer.active == names[0]
    assert np.abs(shown() - first).mean() < 1, "going back did not give the first style's picture"
    window.press("]")
    assert pipeline.stylizer.active == names[1]
    window.press("m")
    assert pipeline.compositor.mode == "background"
    window.press("=")
    window.press("+")
    assert pipeline.stylizer.strength == pytest.approx(0.7)
    assert window.press("x") is None  # unbound keys do nothing
    summary = pipeline.run()  # the new mode and strength take effect on the next frames
    assert summary.frames == 5
    assert "mode background  strength 0.7" in pipeline.hud()[0]
    window.snapshot_dir = tmp_path
    assert window.press("s") == "snapshot" and window.snapshots[0].is_file()
    assert window.press("q") == "quit" and pipeline.stop.is_set()


def test_a_display_that_does_not_answer_is_a_clear_error_not_an_abort(tmp_path, style_name):
    """DISPLAY set to an X server that is gone: OpenCV's Qt (xcb only) used to abort the process (exit 134)."""
    env = {**{k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}, "DISPLAY": ":987"}
    r = subprocess.run([sys.executable, str(ROOT / "run_cam.py"), "--source", "sample", "--style", style_name,
                        "--output", "window", "--max-frames", "2"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("error: No display for --output window (the X display :987 does "
                                                 "not answer). Use --output FILE.mp4 or --output virtual.")


def test_display_problem_tells_a_live_x_server_from_a_gone_one(xvfb_display, monkeypatch):
    from realtime.display import display_problem

    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", xvfb_display)
    assert display_problem() is None
    monkeypatch.setenv("DISPLAY", ":987")
    assert display_problem() == "the X display :987 does not answer"
    monkeypatch.delenv("DISPLAY")
    assert display_problem() == "DISPLAY is not set"
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert "X11" in display_problem()


def test_a_snapshot_is_announced_and_a_failed_one_is_said_not_silent(tmp_path, caplog):
    """Snapshots were written to the current folder without a word, and one that could not be written
    (a read-only folder) was lost silently."""
    from realtime.window import WindowSink

    window = WindowSink.__new__(WindowSink)  # no window needed: the snapshot is of the last frame sent
    window.snapshot_dir, window.snapshots = tmp_path, []
    window._last = np.full((24, 32, 3), 200, np.uint8)
    with caplog.at_level("WARNING"):
        path = window.snapshot()
    assert path.is_file() and f"snapshot saved: {path}" in caplog.text
    window.snapshot_dir = Path("/proc")  # nothing can be created there
    with caplog.at_level("WARNING"):
        assert window.snapshot() is None
    assert "snapshot not saved: /proc/stylecam_" in caplog.text and window.snapshots == [path]


def test_the_x_watch_sees_the_server_go_away():
    """realtime.display.XWatch: its own connection, asked once a frame; a stopped X server reads as gone."""
    from realtime.display import XWatch

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb xdotool)")
    display, server = start_xvfb(140 + os.getpid() % 50, "320x240x24")
    try:
        watch = XWatch(display)
        if watch.connected() is None:
            pytest.skip("libxcb is not installed")
        assert watch.alive() and watch.alive()
    finally:
        server.terminate()  # Xvfb removes its lock and socket on SIGTERM
        server.wait(timeout=5)
    assert not watch.alive()
    watch.close()


def test_a_lost_display_stops_like_closing_the_window_and_makes_no_more_gui_calls(monkeypatch, caplog):
    """When the X server goes away, Qt ends the process from inside OpenCV's next GUI call (exit 1, then an
    abort) and the video being written was lost; asked first, the window stops the run as 'q' does (files
    are finished) and never calls OpenCV's GUI again, closing included."""
    from realtime import window as window_module
    from realtime.window import WindowSink

    class Gone:
        def alive(self):
            return False

        def close(self):
            pass

    def no_gui(*args, **kwargs):
        raise AssertionError("an OpenCV GUI call after the display went away")

    actions = []
    window = WindowSink.__new__(WindowSink)
    window.on_action, window.hud, window.quit, window.title = actions.append, None, False, "StyleCam"
    window._watch, window._lost, window._closed, window._last = Gone(), False, False, None
    for name in ("imshow", "waitKey", "destroyWindow", "getWindowProperty"):
        monkeypatch.setattr(window_module.cv2, name, no_gui)
    frame = Frame(np.zeros((24, 32, 3), np.uint8), 0, time.perf_counter())
    with caplog.at_level("WARNING"):
        window.send(frame)
        window.send(frame)  # a frame already in flight
    window.close()
    assert actions == ["quit"] and window.quit and "went away; stopping" in caplog.text


WINDOW_GONE_SCRIPT = """
import ctypes, os, sys, time
import numpy as np
from realtime.display import XWatch
from realtime.frames import Frame
from realtime.window import WindowSink

sink, image = WindowSink(), np.zeros((48, 64, 3), np.uint8)
outside = XWatch(os.environ["DISPLAY"])  # another client, as xdotool and xkill are
window = None
for i in range(100):  # the window exists once it has been shown
    sink.send(Frame(image, i, time.perf_counter()))
    window = window or outside.find_window(sink.title)
    if window and sink._watch.window is not None:
        break
    time.sleep(0.02)
assert window and window == sink._watch.window, (window, sink._watch.window)
request = {"destroy": "xcb_destroy_window", "kill": "xcb_kill_client"}[sys.argv[1]]
getattr(outside._xcb, request)(ctypes.c_void_p(outside._connection), ctypes.c_uint32(window))
outside._xcb.xcb_flush(ctypes.c_void_p(outside._connection))
time.sleep(0.2)
for i in range(5):
    sink.send(Frame(image, i, time.perf_counter()))
sink.close()
print("quit" if sink.quit else "still running", flush=True)
"""


@pytest.mark.parametrize("how", ["destroy", "kill"])
def test_a_window_destroyed_or_killed_from_outside_stops_the_run_and_the_process_lives(xvfb_display, how):
    """`xdotool windowclose` (destroy) left Qt reporting the window visible and the run went on without it;
    `xkill` (kill the window's client) made Qt end the process ("The X11 connection broke", exit 1) at the
    next GUI call, losing a video being written. Both now stop the run as closing the window does."""
    from realtime.display import XWatch

    if XWatch(xvfb_display).connected() is None:
        pytest.skip("libxcb is not installed")
    env = {**os.environ, "DISPLAY": xvfb_display, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", WINDOW_GONE_SCRIPT, how], env=env, capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip() == "quit", run.stdout + run.stderr
    assert "The window 'StyleCam' was closed from outside; stopping" in run.stderr
