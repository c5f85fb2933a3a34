"""Train many styles in one call on a lent GPU machine (issue 4), and bring the weights home.

The GPU machine receives only the working tree plus the paths named in `carry` (64 MiB in all, the tree
~43 MiB of it), reaches no registry, and returns at most 8 files from $OUT. So the work goes in steps:

    python -m nets.batch pack --styles ../shared/data/styles --content ../shared/data/content_256
        # -> .carry/train/ (git-ignored): paintings (longest side 512), the photos, VGG16 to conv4_3 in
        #    fp16 (15 MB), and the same cut into parts that each fit one call beside the tree:
        #    .carry/train.partK-of-N.DIGEST (nets/carry.py)
    # device calls 1..N-1, carry [one part each]: python3 -m nets.carry stash
    # device call N, carry [the last part]; its python has torch but not this package installed:
    python3 -m nets.carry assemble train --into /tmp/train &&
        PYTHONPATH=. python3 -m nets.batch train --carry /tmp/train --from-shipped --out $OUT/weights
    python -m nets.batch merge FILES_AT/weights        # -> weights/*.safetensors + manifest entries

`train` runs one `nets.cli train` subprocess per style, `--jobs` at a time (a small net leaves most of an
H100 idle, so several styles share it), and packs the exported weights, their manifest entries, loss
curves, previews and metrics, cut into parts of at most 15 MiB (a file back from $OUT has at most 16).
`--from-shipped` continues each painting's shipped net (`--init-from ARCH.NAME`) with the weights,
painting scale, layers and losses of its last recorded stage, for `--steps` more steps: a few GPU minutes
extend the CPU-trained nets instead of starting over. With more styles than `--jobs` they run in waves,
and each wave gets an equal share of `--deadline`: every training gets its share (or what is left, if
less), less `--export-margin`, as `--max-seconds`, so it stops by itself and exports the steps it
reached, and a time-boxed call brings weights back even when the steps asked for do not fit. A training
still running at the deadline and its `--grace` is interrupted (it keeps its checkpoint, which does not
come back, and exports nothing), and one that could not start with `--min-seconds` left is not started.
`merge` checks each file's sha256 against the packed manifest before it registers anything.
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

from nets import carry, registry
from nets.vgg import CONV_NAMES, default_weights_path

VGG_CONVS = CONV_NAMES[:CONV_NAMES.index("conv4_3") + 1]  # what relu4_3 (the deepest training layer) needs
PAINTING_SUFFIXES = {".jpg", ".jpeg", ".png"}


def pack(styles: Path, content: Path, to: Path, photos: int = 0, painting_side: int = 512) -> dict:
    """Copy paintings (downscaled to `painting_side`, the largest painting scale trained; 0 keeps them),
    `photos` of the photos (evenly spread over the sorted list; 0 = all) and an fp16 VGG16
    (conv1_1..conv4_3) into `to`; returns their counts and size."""
    from safetensors.torch import load_file, save_file

    from nets.images import load_rgb, resize_max, save_rgb

    paintings = sorted(p for p in styles.iterdir() if p.suffix.lower() in PAINTING_SUFFIXES)
    all_photos = sorted(p for p in content.iterdir() if p.is_file())
    if not paintings or not all_photos:
        raise SystemExit(f"error: nothing to pack ({len(paintings)} paintings in {styles}, {len(all_photos)} photos in {content}).")
    chosen = spread(all_photos, photos)
    if to.exists():
        shutil.rmtree(to)  # a pack is made whole: photos of an earlier, larger pack must not stay
    for sub, files in (("styles", paintings), ("content", chosen)):
        (to / sub).mkdir(parents=True, exist_ok=True)
        for f in files:
            rgb = load_rgb(f) if sub == "styles" and painting_side else None
            if rgb is not None and max(rgb.shape[:2]) > painting_side:
                save_rgb(to / sub / f.name, resize_max(rgb, painting_side))  # INTER_AREA, as the trainer scales it
            else:
                shutil.copy2(f, to / sub / f.name)
    vgg = load_file(str(default_weights_path()))
    keep = {k: v.half().contiguous() for k, v in vgg.items() if k.split(".")[0] in VGG_CONVS}
    save_file(keep, str(to / "vgg16.safetensors"), metadata={"source": "stylecam fetch-vgg, conv1_1..conv4_3, fp16"})
    size = sum(f.stat().st_size for f in to.rglob("*") if f.is_file())
    return {"paintings": len(paintings), "photos": len(chosen), "megabytes": round(size / 2**20, 1)}


def spread(items: list, n: int) -> list:
    """`n` of `items`, evenly spread over the list (all of them for n = 0 or n >= len)."""
    return items if not n or n >= len(items) else [items[i * len(items) // n] for i in range(n)]


def photos_that_fit(content: Path, room: int) -> int:
    """How many photos, evenly spread, fit in `room` bytes of tar (a header of up to 1.5 KB each)."""
    photos = sorted(p for p in content.iterdir() if p.is_file())
    n = len(photos)
    while n and sum(p.stat().st_size + 1536 for p in spread(photos, n)) > room:
        n -= max(1, n // 50)
    return n


def shipped_recipe(arch: str, painting: str) -> dict | None:
    """The training flags of the last recorded stage of the shipped ARCH.PAINTING net, or None if none is
    registered: what `--from-shipped` continues it with."""
    try:
        entry = registry.info(f"{arch}.{painting}")
    except registry.StyleError:
        return None
    recipe = entry.recipe
    last = {**recipe, **(recipe.get("stages") or [{}])[-1]}
    flags = {k: last[k] for k in ("size", "style_size", "lr", "content_weight", "style_weight", "tv_weight",
                                  "shift_weight", "noise_weight") if last.get(k) is not None}
    flags |= {k: last[k] for k in ("teacher", "teacher_weight") if last.get(k)}  # a distilled net goes on distilling
    return {**flags, "content_layers": ",".join(recipe["content_layers"]),
            "style_layers": ",".join(recipe["style_layers"]), "steps": int(recipe["steps"])}


def train_command(painting: Path, args: argparse.Namespace, weights_dir: Path, out_dir: Path,
                  seconds: float = 0.0) -> list[str]:
    flags = {"size": args.size, "style_size": args.style_size, "style_weight": args.style_weight,
             "shift_weight": args.shift_weight, "noise_weight": args.noise_weight, "steps": args.steps,
             "warmup": args.warmup}
    if args.from_shipped:  # its own recipe's last stage, `--steps` more steps on top of those it has
        shipped = shipped_recipe(args.arch, painting.stem)
        flags = {**shipped, "steps": shipped["steps"] + args.steps, "init_from": f"{args.arch}.{painting.stem}",
                 "warmup": args.warmup}
    flags["style_weight"] = flags["style_weight"] * args.style_weight_factor
    cmd = [sys.executable, "-m", "nets.cli", "train", str(painting), "--content", str(args.carry / "content"),
           "--arch", args.arch, "--device", args.device, "--batch", str(args.batch), "--val-count", str(args.val_count),
           "--weights-dir", str(weights_dir), "--out-dir", str(out_dir), "--no-progress"]
    cmd += [arg for k, v in flags.items() for arg in ("--" + k.replace("_", "-"), str(v))]
    cmd += ["--max-seconds", f"{seconds:.0f}"] if seconds else []
    return cmd + (["--threads", "1"] if args.device == "cpu" else [])


def child_env(carry_dir: Path) -> dict[str, str]:
    """The environment of a `nets.cli train` child: the VGG16 weights of the carry, and this source tree first
    on its path, so the children run the code this process runs (not an installed copy of another checkout,
    or none at all where the command runs from another folder)."""
    source_root = str(Path(__file__).resolve().parents[1])
    path = [source_root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {**os.environ, "STYLECAM_VGG": str(carry_dir / "vgg16.safetensors"), "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(path)}


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
    report = {}
    if args.from_shipped:
        report = {p.stem: {"rc": f"not started (no shipped {args.arch}.{p.stem})"} for p in paintings
                  if shipped_recipe(args.arch, p.stem) is None}
        paintings = [p for p in paintings if p.stem not in report]
    work = Path(tempfile.mkdtemp(prefix="stylecam-batch-"))
    weights_dir, out_dir = work / "weights", work / "runs"
    env = child_env(args.carry)
    started, pending, running = time.time(), list(paintings), {}
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
    payload = work / "payload"  # what comes back, in parts of at most --part-mib (a file from $OUT: 16 MiB)
    (payload / "runs").mkdir(parents=True)
    shutil.copy2(work / "report.json", payload / "report.json")
    if weights_dir.is_dir():
        shutil.copytree(weights_dir, payload / "weights")
    for f in sorted(out_dir.glob("*")) if out_dir.is_dir() else []:
        if f.suffix in (".png", ".json") or args.keep_checkpoints:
            shutil.copy2(f, payload / "runs" / f.name)
    carry.split(payload, args.out.name, args.out.parent, int(args.part_mib * 2**20))
    shutil.rmtree(work, ignore_errors=True)
    return report


def merge(prefix: Path, folder: Path, names: list[str] | None = None) -> list[str]:
    """Register the styles that `train --out PREFIX` brought back (its parts beside PREFIX) into `folder`:
    all of them, or those of `names` (ARCH.PAINTING), each file's sha256 checked against its packed
    manifest entry first."""
    with tempfile.TemporaryDirectory() as tmp:
        carry.assemble(prefix.name, Path(tmp), (prefix.parent,))
        packed = Path(tmp) / "weights"
        entries = registry.read_manifest(packed) if packed.is_dir() else {}
        if names:
            unknown = sorted(set(names) - set(entries))
            if unknown:
                raise carry.CarryError(f"{prefix} brought back no {', '.join(unknown)}; it holds {', '.join(entries) or 'none'}.")
            entries = {k: v for k, v in entries.items() if k in names}
        for name, entry in entries.items():
            if registry.sha256(packed / entry.file) != entry.sha256:
                raise carry.CarryError(f"{entry.file} in {prefix} does not match its sha256; nothing merged.")
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
    a.add_argument("--to", type=Path, default=Path(".carry/train"), help="the folder; its parts go beside it")
    a.add_argument("--photos", type=int, default=0, help="pack this many photos, evenly spread (default: all)")
    a.add_argument("--parts", type=int, default=0,
                   help="pack as many photos (evenly spread) as this many parts hold, one device call each")
    a.add_argument("--painting-side", type=int, default=512, help="downscale paintings to this longest side (0 = keep)")
    a.add_argument("--part-mib", type=float, default=0,
                   help="MiB a part may have (default: what one device call leaves beside this working tree)")
    t = sub.add_parser("train", help="train every painting in CARRY/styles (on the GPU machine)")
    t.add_argument("--carry", type=Path, default=Path(".carry"))
    t.add_argument("--out", type=Path, required=True,
                   help="where to write, as a prefix: $OUT/full gives $OUT/full.partK-of-N.DIGEST (nets/carry.py)")
    t.add_argument("--part-mib", type=float, default=15, help="MiB a part may have (a file back from $OUT: 16)")
    t.add_argument("--names", nargs="*", help="painting stems to train (default: all)")
    t.add_argument("--from-shipped", action="store_true",
                   help="continue each shipped ARCH.NAME with its last stage's recipe; --steps counts the steps added")
    t.add_argument("--arch", choices=("full", "lite"), default="full")
    t.add_argument("--device", default="cuda")
    t.add_argument("--jobs", type=int, default=5, help="trainings at once")
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--style-size", type=int, default=512)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--style-weight", type=float, default=2.0)
    t.add_argument("--style-weight-factor", type=float, default=1.0,
                   help="multiply each net's style weight (with --from-shipped, its shipped one); x2 on two lite nets "
                        "cut their style loss by a quarter but raised the ratio to Gatys by a third (docs/styles.md)")
    t.add_argument("--shift-weight", type=float, default=0.0,
                   help="nets.losses.shift_loss; 200 took the 8 px grid and most flicker out of the lite nets")
    t.add_argument("--noise-weight", type=float, default=0.0,
                   help="nets.losses.noise_loss, against the full nets' flicker (docs/styles.md)")
    t.add_argument("--warmup", type=int, default=100,
                   help="steps over which the learning rate rises: a fresh Adam at full rate jolts a shipped net "
                        "(30 steps from full.udnie: val style 0.211 -> 0.341 without, 0.236 with 20; docs/styles.md)")
    t.add_argument("--val-count", type=int, default=8, help="validation photos held out of training")
    t.add_argument("--deadline", type=float, default=540, help="seconds, then stop and pack (0 = none)")
    t.add_argument("--export-margin", type=float, default=45,
                   help="seconds kept before the deadline for each training's validation and export")
    t.add_argument("--min-seconds", type=float, default=60, help="do not start a training with less time left")
    t.add_argument("--grace", type=float, default=60,
                   help="seconds past the deadline for trainings that stopped in time to finish their export; "
                        "then the rest are interrupted")
    t.add_argument("--keep-checkpoints", action="store_true", help="pack checkpoints too (to resume later)")
    m = sub.add_parser("merge", help="register the weights that a train call brought back into weights/")
    m.add_argument("prefix", type=Path, help="the train call's --out, here: FILES_AT/full for FILES_AT/full.part*")
    m.add_argument("--weights-dir", type=Path, default=None)
    m.add_argument("--names", nargs="*", help="ARCH.PAINTING styles to merge (default: all it brought back)")
    args = p.parse_args(argv)
    if args.command == "train" and args.part_mib * 2**20 < 1:  # checked now, not after the trainings
        p.error(f"--part-mib must be positive, not {args.part_mib:g}")
    try:
        if args.command == "pack":
            part_bytes = int(args.part_mib * 2**20) or carry.part_budget()
            photos = args.photos
            if args.parts:  # the paintings and VGG16 first, then as many photos as the rest of the parts hold
                pack(args.styles, args.content, args.to, 1, args.painting_side)
                fixed = sum(f.stat().st_size + 1536 for f in args.to.rglob("*") if f.is_file())
                photos = photos_that_fit(args.content, args.parts * part_bytes - fixed - 2**16)
                if not photos:
                    raise carry.CarryError(f"{args.parts} part(s) of {part_bytes / 2**20:.1f} MiB do not hold the "
                                           "paintings and VGG16 with any photo; allow more parts.")
            counts = pack(args.styles, args.content, args.to, photos, args.painting_side)
            parts = carry.split(args.to, args.to.name, args.to.parent, part_bytes)
            print(json.dumps({**counts, "part_mib": round(part_bytes / 2**20, 1),
                              "parts": [str(p) for p in parts]}, indent=2))
        elif args.command == "train":
            print(json.dumps(train_many(args), indent=2))
        else:
            names = merge(args.prefix, args.weights_dir or registry.weights_dir(), args.names)
            print(f"merged {len(names)} style(s): {', '.join(names) or 'none'}")
    except (OSError, tarfile.TarError, registry.StyleError, carry.CarryError) as exc:  # a missing folder or part, a damaged file
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
