"""`python -m benchmarks [--tiny] [...]`: run the benchmark suite and write JSON, markdown and PNGs."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from benchmarks import cli, report, suite
from benchmarks.config import RESULTS_DIR, SECTIONS, BenchConfig, tiny
from realtime.cli import parse_size  # one rule for a frame size: 16x16 to 8K, as run_cam.py takes it


def build_config(args: argparse.Namespace) -> BenchConfig:
    changes = {k: v for k, v in {
        "resolutions": tuple(args.size) if args.size else None, "devices": tuple(args.device) if args.device else None,
        "nets": tuple(args.net) if args.net else None, "sections": tuple(args.section) if args.section else None,
        "threads": args.threads, "seconds": args.seconds, "name": args.name, "note": args.note,
        "live_seconds": args.live_seconds, "compile": False if args.no_compile else None}.items() if v is not None}
    out = Path(args.out) if args.out else RESULTS_DIR
    if args.tiny:
        return tiny(out, **changes)
    return BenchConfig(out_dir=out, **changes)


def build_parser() -> argparse.ArgumentParser:
    full, small = BenchConfig(), tiny(RESULTS_DIR)  # the help's defaults are the configs' own values
    p = cli.Parser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--tiny", action="store_true", help="CI size: one small resolution, a few frames per number")
    p.add_argument("--size", action="append", type=parse_size, help="WxH, repeatable (default: 320x240 to 1920x1080)")
    p.add_argument("--device", action="append", choices=("cpu", "cuda"), help="repeatable (default: cpu and cuda)")
    p.add_argument("--net", action="append", choices=("lite", "full"), help="repeatable (default: both)")
    p.add_argument("--section", action="append", choices=SECTIONS, help="repeatable (default: all)")
    p.add_argument("--threads", type=cli.threads,
                   help=f"CPU intra-op threads for ours and the baselines (default {full.threads})")
    p.add_argument("--seconds", type=cli.seconds,
                   help=f"time budget per measurement (default {full.seconds:g}; --tiny {small.seconds:g})")
    p.add_argument("--live-seconds", type=cli.seconds,
                   help=f"seconds of output per live run (default {full.live_seconds:g}; --tiny {small.live_seconds:g})")
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the CPU path race")
    p.add_argument("--name", help="results file stem (default: derived from the machine; a run of part of the suite "
                                  "without --out or --name writes to a new temporary folder, printed)")
    p.add_argument("--note", help="free text stored with the results (e.g. what else ran on the machine)")
    p.add_argument("--out", help="results folder (default benchmarks/results; with --tiny a new temporary folder, "
                                 "printed, so a CI-sized run never lands among the committed results)")
    p.add_argument("--render", metavar="JSON", help="only rewrite the goals, markdown and PNGs of a saved result")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def render(path: Path) -> int:
    try:
        result = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise cli.BenchError(f"{path} is not a benchmark result: it is not JSON ({exc}).") from exc
    if not isinstance(result, dict) or result.get("schema") != "stylecam-bench/1":
        raise cli.BenchError(f"{path} is not a benchmark result (no \"schema\": \"stylecam-bench/1\" in it).")
    cli.writable_dir(path.parent, "folder for --render")
    result["goals"] = suite.goals(result)  # goals are derived from the records: re-derive them
    for out in report.write(result, path.parent):
        print(out)
    return 0


def partial(args: argparse.Namespace) -> str | None:
    """Why a run measures less than the whole suite (the flags that leave part of it out), or None. Its
    results would replace the machine's committed results file."""
    import torch

    left_out = [flag for flag, given in (("--tiny", args.tiny), ("--section", args.section), ("--size", args.size),
                                         ("--net", args.net)) if given]
    if args.device and ("cpu" not in args.device or "cuda" not in args.device and torch.cuda.is_available()):
        left_out.append("--device")
    return " and ".join(left_out) or None


def measure(args: argparse.Namespace, written: list[Path]) -> int:
    # a CI-sized run never lands among the committed results; another partial one only where --name says so
    reason = None if args.out or (args.name and not args.tiny) else partial(args)
    if reason:
        args.out = str(cli.scratch_dir("bench-tiny" if args.tiny else "bench-partial"))
        without = "--out" if args.tiny else "--out or --name"
        print(f"{reason} without {without}: writing to {args.out} (not over the machine's results in {RESULTS_DIR})",
              flush=True)
    cfg = build_config(args)
    cli.writable_dir(cfg.out_dir)  # before the first section, not after it
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s")
    # after each section, the JSON so far (NAME.json, "sections_left" in it): a run stopped from outside
    # keeps what it measured, and `--render NAME.json` makes its tables and plots later
    result = suite.run(cfg, on_section=lambda partial: written.append(report.write_json(partial, cfg.out_dir)))
    for path in report.write(result, cfg.out_dir):
        print(path)
    for goal in result["goals"]:
        state = {True: "met", False: "MISSED", None: "not measured"}[goal["met"]]
        limit = f"; limited by {goal['limiting_stage']} ({goal['limiting_ms']} ms)" if goal.get("limiting_stage") else ""
        print(f"goal {goal['goal']}: {goal['measured']} (target {goal['target']}) {state}{limit}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    written: list[Path] = []  # the partial JSON, once a section has finished

    def interrupted() -> str:
        if written:
            return f"the sections measured so far are in {written[-1]} (--render it for tables and plots)"
        return "no section had finished, nothing written"

    if args.render:
        return cli.run(lambda: render(Path(args.render)))
    return cli.run(lambda: measure(args, written), interrupted)


if __name__ == "__main__":
    sys.exit(main())
