"""`python -m benchmarks [--tiny] [...]`: run the benchmark suite and write JSON, markdown and PNGs."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from benchmarks import report, suite
from benchmarks.config import RESULTS_DIR, SECTIONS, BenchConfig, tiny


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    return w, h


def build_config(args: argparse.Namespace) -> BenchConfig:
    changes = {k: v for k, v in {
        "resolutions": tuple(args.size) if args.size else None, "devices": tuple(args.device) if args.device else None,
        "nets": tuple(args.net) if args.net else None, "sections": tuple(args.section) if args.section else None,
        "threads": args.threads, "seconds": args.seconds, "name": args.name, "note": args.note,
        "live_seconds": args.live_seconds, "compile": False if args.no_compile else None}.items() if v is not None}
    out = Path(args.out)
    if args.tiny:
        return tiny(out, **changes)
    return BenchConfig(out_dir=out, **changes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--tiny", action="store_true", help="CI size: one small resolution, a few frames per number")
    p.add_argument("--size", action="append", type=parse_size, help="WxH, repeatable (default: 320x240 to 1920x1080)")
    p.add_argument("--device", action="append", choices=("cpu", "cuda"), help="repeatable (default: cpu and cuda)")
    p.add_argument("--net", action="append", choices=("lite", "full"), help="repeatable (default: both)")
    p.add_argument("--section", action="append", choices=SECTIONS, help="repeatable (default: all)")
    p.add_argument("--threads", type=int, help="CPU intra-op threads for ours and the baselines (default 1)")
    p.add_argument("--seconds", type=float, help="time budget per measurement (default 4)")
    p.add_argument("--live-seconds", type=float, help="seconds of output per live run (default 4)")
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the CPU path race")
    p.add_argument("--name", help="results file stem (default: derived from the machine)")
    p.add_argument("--note", help="free text stored with the results (e.g. what else ran on the machine)")
    p.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default benchmarks/results)")
    p.add_argument("--render", metavar="JSON", help="only rewrite the goals, markdown and PNGs of a saved result")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.render:
        path = Path(args.render)
        result = json.loads(path.read_text())
        result["goals"] = suite.goals(result)  # goals are derived from the records: re-derive them
        for out in report.write(result, path.parent):
            print(out)
        return 0
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s")
    cfg = build_config(args)
    # after each section, the JSON so far (NAME.json, "sections_left" in it): a run stopped from outside
    # keeps what it measured, and `--render NAME.json` makes its tables and plots later
    result = suite.run(cfg, on_section=lambda partial: report.write_json(partial, cfg.out_dir))
    for path in report.write(result, cfg.out_dir):
        print(path)
    for goal in result["goals"]:
        state = {True: "met", False: "MISSED", None: "not measured"}[goal["met"]]
        limit = f"; limited by {goal['limiting_stage']} ({goal['limiting_ms']} ms)" if goal.get("limiting_stage") else ""
        print(f"goal {goal['goal']}: {goal['measured']} (target {goal['target']}) {state}{limit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
