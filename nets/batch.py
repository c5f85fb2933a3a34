"""Train many styles in one call on a lent GPU machine (issue 4), and bring the weights home.

The GPU machine receives only the working tree (64 MiB) plus the paths named in `carry`, reaches no
registry, and returns at most 8 files from $OUT. So the work goes in three steps:

    python -m nets.batch pack --styles ../shared/data/styles --content ../shared/data/content_256
        # -> .carry/ (git-ignored): paintings, the 256 px photos, VGG16 to conv4_3 in fp16 (~15 MB)
    # device run, carry [".carry"]; its python has torch but not this package installed:
    PYTHONPATH=. python3 -m nets.batch train --carry .carry --arch full --jobs 10 --out $OUT/weights.tar
    python -m nets.batch merge FILES_AT/weights.tar    # -> weights/*.safetensors + manifest entries

`train` runs one `nets.cli train` subprocess per style, `--jobs` at a time (a small net leaves most of an
H100 idle, so several styles share it), and packs the exported weights, their manifest entries, loss
curves, previews and metrics into one tar. With more styles than `--jobs` they run in waves, and each
wave gets an equal share of `--deadline`: every training gets its share (or what is left, if less), less
`--export-margin`, as `--max-seconds`, so it stops by itself and exports the steps it reached, and a
time-boxed call brings weights back even when the steps asked for do not fit. A training still running at
the deadline and its `--grace` is interrupted (it keeps its checkpoint, which does not come back, and
exports nothing), and one that could not start with `--min-seconds` left is not started. `merge` checks
each file's sha256 against the packed manifest before it registers anything.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from nets import registry
from nets.vgg import CONV_NAMES, default_weights_path

VGG_CONVS = CONV_NAMES[:CONV_NAMES.index("conv4_3") + 1]  # what relu4_3 (the deepest training layer) needs
PAINTING_SUFFIXES = {".jpg", ".jpeg", ".png"}


def pack(styles: Path, content: Path, to: Path) -> dict:
    """Copy paintings, photos and an fp16 VGG16 (conv1_1..conv4_3) into `to`; returns their counts."""
    from safetensors.torch import load_file, save_file

    paintings = sorted(p for p in styles.iterdir() if p.suffix.lower() in PAINTING_SUFFIXES)
    photos = sorted(p for p in content.iterdir() if p.is_file())
    if not paintings or not photos:
        raise SystemExit(f"error: nothing to pack ({len(paintings)} paintings in {styles}, {len(photos)} photos in {content}).")
    for sub, files in (("styles", paintings), ("content", photos)):
        (to / sub).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, to / sub / f.name)
    vgg = load_file(str(default_weights_path()))
    keep = {k: v.half().contiguous() for k, v in vgg.items() if k.split(".")[0] in VGG_CONVS}
    save_file(keep, str(to / "vgg16.safetensors"), metadata={"source": "stylecam fetch-vgg, conv1_1..conv4_3, fp16"})
    size = sum(f.stat().st_size for f in to.rglob("*") if f.is_file())
    return {"paintings": len(paintings), "photos": len(photos), "megabytes": round(size / 2**20, 1)}


def train_command(painting: Path, args: argparse.Namespace, weights_dir: Path, out_dir: Path,
                  seconds: float = 0.0) -> list[str]:
    cmd = [sys.executable, "-m", "nets.cli", "train", str(painting), "--content", str(args.carry / "content"),
           "--arch", args.arch, "--device", args.device, "--size", str(args.size), "--style-size", str(args.style_size),
           "--batch", str(args.batch), "--steps", str(args.steps), "--style-weight", str(args.style_weight),
           "--shift-weight", str(args.shift_weight), "--noise-weight", str(args.noise_weight),
           "--val-count", str(args.val_count),
           "--weights-dir", str(weights_dir), "--out-dir", str(out_dir), "--no-progress"]
    cmd += ["--max-seconds", f"{seconds:.0f}"] if seconds else []
    return cmd + (["--threads", "1"] if args.device == "cpu" else [])


def time_budget(deadline: float, elapsed: float, waves: int, margin: float) -> float:
    """Seconds of training for a job that starts now: its wave's share of the deadline, or what is left
    of it if less, less the margin kept for validation and export; 0 (no limit) without a deadline."""
    if not deadline:
        return 0.0
    return min(deadline / waves, deadline - elapsed) - margin


def train_many(args: argparse.Namespace) -> dict:
    """Run the styles' trainings `jobs` at a time until done or `deadline`; pack what was exported."""
    paintings = sorted(p for p in (args.carry / "styles").iterdir() if p.suffix.lower() in PAINTING_SUFFIXES)
    if args.names:
        paintings = [p for p in paintings if p.stem in args.names]
    work = Path(tempfile.mkdtemp(prefix="stylecam-batch-"))
    weights_dir, out_dir = work / "weights", work / "runs"
    env = {**os.environ, "STYLECAM_VGG": str(args.carry / "vgg16.safetensors"), "PYTHONUNBUFFERED": "1"}
    started, pending, running, report = time.time(), list(paintings), {}, {}
    waves = max(1, math.ceil(len(paintings) / args.jobs))
    while pending or running:
        while pending and len(running) < args.jobs:
            budget = time_budget(args.deadline, time.time() - started, waves, args.export_margin)
            if args.deadline and budget < args.min_seconds:
                break  # too little left to train anything worth exporting; reported as not started
            p = pending.pop(0)
            out_dir.mkdir(parents=True, exist_ok=True)
            log = open(work / f"{p.stem}.log", "w")
            running[p.stem] = (subprocess.Popen(train_command(p, args, weights_dir, out_dir, budget), env=env,
                                                stdout=log, stderr=subprocess.STDOUT), log, time.time())
        if pending and not running:  # the deadline leaves no room to start the rest
            report.update({p.stem: {"rc": "not started (deadline)"} for p in pending})
            break
        for name, (proc, log, t0) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                report[name] = {"rc": proc.returncode, "seconds": round(time.time() - t0, 1)}
                del running[name]
        if args.deadline and time.time() - started > args.deadline + args.grace:
            for name, (proc, log, t0) in running.items():
                proc.send_signal(signal.SIGINT)  # the trainer saves its checkpoint on the way out
                proc.wait(timeout=60)
                log.close()
                report[name] = {"rc": "stopped at the deadline", "seconds": round(time.time() - t0, 1)}
            report.update({p.stem: {"rc": "not started (deadline)"} for p in pending})
            break
        time.sleep(1)
    for name, r in report.items():
        log_path = work / f"{name}.log"
        r["log_tail"] = log_path.read_text().strip().splitlines()[-2:] if log_path.is_file() else []
    (work / "report.json").write_text(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.out, "w") as tar:
        tar.add(work / "report.json", "report.json")
        if weights_dir.is_dir():
            tar.add(weights_dir, "weights")
        for f in sorted(out_dir.glob("*")) if out_dir.is_dir() else []:
            if f.suffix in (".png", ".json") or args.keep_checkpoints:
                tar.add(f, f"runs/{f.name}")
    shutil.rmtree(work, ignore_errors=True)
    return report


def merge(tar_path: Path, folder: Path) -> list[str]:
    """Register every style in the tar's weights/manifest.json into `folder` (sha256 checked first)."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tar_path) as tar:
        tar.extractall(tmp, filter="data")
        packed = Path(tmp) / "weights"
        entries = registry.read_manifest(packed) if packed.is_dir() else {}
        for name, entry in entries.items():
            if registry.sha256(packed / entry.file) != entry.sha256:
                raise SystemExit(f"error: {entry.file} in {tar_path} does not match its sha256; nothing merged.")
        for name, entry in entries.items():
            net = registry.load(name, packed)  # strict, safetensors only
            meta = {k: getattr(entry, k) for k in ("painting", "artist", "year", "licence", "recipe", "metrics")}
            registry.register(net, entry.arch, name.split(".", 1)[1], folder, **meta)
        runs = Path(tmp) / "runs"
        if runs.is_dir():
            dest = Path("runs/train")
            dest.mkdir(parents=True, exist_ok=True)
            for f in runs.iterdir():
                shutil.copy2(f, dest / f.name)
        return list(entries)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nets.batch", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="gather what a GPU training call needs into one folder to carry")
    a.add_argument("--styles", type=Path, required=True)
    a.add_argument("--content", type=Path, required=True)
    a.add_argument("--to", type=Path, default=Path(".carry"))
    t = sub.add_parser("train", help="train every painting in CARRY/styles (on the GPU machine)")
    t.add_argument("--carry", type=Path, default=Path(".carry"))
    t.add_argument("--out", type=Path, required=True, help="the tar to write (under $OUT)")
    t.add_argument("--names", nargs="*", help="painting stems to train (default: all)")
    t.add_argument("--arch", choices=("full", "lite"), default="full")
    t.add_argument("--device", default="cuda")
    t.add_argument("--jobs", type=int, default=5, help="trainings at once")
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--style-size", type=int, default=512)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--style-weight", type=float, default=2.0)
    t.add_argument("--shift-weight", type=float, default=0.0,
                   help="nets.losses.shift_loss; 200 took the 8 px grid and most flicker out of the lite nets")
    t.add_argument("--noise-weight", type=float, default=0.0,
                   help="nets.losses.noise_loss, against the full nets' flicker (docs/styles.md)")
    t.add_argument("--val-count", type=int, default=8, help="validation photos held out of training")
    t.add_argument("--deadline", type=float, default=540, help="seconds, then stop and pack (0 = none)")
    t.add_argument("--export-margin", type=float, default=45,
                   help="seconds kept before the deadline for each training's validation and export")
    t.add_argument("--min-seconds", type=float, default=60, help="do not start a training with less time left")
    t.add_argument("--grace", type=float, default=60,
                   help="seconds past the deadline for trainings that stopped in time to finish their export; "
                        "then the rest are interrupted")
    t.add_argument("--keep-checkpoints", action="store_true", help="pack checkpoints too (to resume later)")
    m = sub.add_parser("merge", help="register the weights of a train tar into weights/")
    m.add_argument("tar", type=Path)
    m.add_argument("--weights-dir", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        if args.command == "pack":
            print(json.dumps(pack(args.styles, args.content, args.to)))
        elif args.command == "train":
            print(json.dumps(train_many(args), indent=2))
        else:
            names = merge(args.tar, args.weights_dir or registry.weights_dir())
            print(f"merged {len(names)} style(s): {', '.join(names) or 'none'}")
    except (OSError, tarfile.TarError, registry.StyleError) as exc:  # a missing folder or tar, a damaged file
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
