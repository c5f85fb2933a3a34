"""Payloads for the lent GPU machine, cut into parts that each fit one device call (standard library only).

A device call sends the working tree and its `carry` paths, 64 MiB in all (the tree alone is ~43 MiB,
`weights/` most of it), and the machine keeps ignored files between calls while it stays warm (30 s).
So a payload larger than what is left beside the tree (the training set and VGG16, or the wheels the
machine lacks) goes in parts: each call but the last carries one part and `stash`es it into `.stash/`
(git-ignored, never carried, so it stays there); the last carries the last part and `assemble`s them all.

    # here: nets.batch pack / benchmarks.device_wheels write .carry/ or .whl/NAME.partK-of-N.DIGEST
    # device calls 1..N-1, carry [".carry/NAME.partK-of-N.DIGEST"]:  python3 -m nets.carry stash
    # device call N, carry the last part:  python3 -m nets.carry assemble NAME --into /tmp/NAME && ...
    python -m nets.carry plan    # those calls, with the parts' names

A part missing at `assemble` (the machine went cold between calls and came back bare) is one line
naming the parts to send again, before anything runs.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DEVICE_LIMIT = 64 * 2**20  # what one device call carries, the working tree included
STASH = Path(".stash")
SEARCH = (STASH, Path(".carry"), Path(".whl"))
PART = re.compile(r"^(?P<name>[A-Za-z0-9_-]+)\.part(?P<k>\d+)-of-(?P<n>\d+)\.(?P<digest>[0-9a-f]{12})$")


class CarryError(Exception):
    """A payload that cannot fit, or parts that cannot be put back together."""


def tree_bytes(root: Path = Path(".")) -> int:
    """Bytes of what a device call sends besides `carry`: tracked files and untracked ones git does not ignore."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CarryError(f"Cannot list the working tree of {root} with git ({exc}); give the part size yourself.") from exc
    return sum((root / f).stat().st_size for f in set(listed) if f and (root / f).is_file())


def part_budget(root: Path = Path("."), margin: int = 2**20) -> int:
    """Bytes one part may have so that the tree, the part and `margin` fit one device call."""
    budget = DEVICE_LIMIT - tree_bytes(root) - margin
    if budget < 2**20:
        raise CarryError(f"The working tree leaves {budget / 2**20:.1f} MiB of the device call's 64 MiB; "
                         "nothing can be carried beside it. Ignore or remove large untracked files first.")
    return budget


def split(src: Path, name: str, to: Path, part_bytes: int, compress: bool = False) -> list[Path]:
    """Tar the folder `src` (xz-compressed if `compress`) and cut it into parts of at most `part_bytes`,
    written as `to/NAME.partK-of-N.DIGEST` (DIGEST: the whole tar's sha256, so parts of two packs never mix)."""
    if part_bytes < 1:
        raise CarryError(f"A part must hold at least one byte, not {part_bytes}; give a positive part size.")
    to.mkdir(parents=True, exist_ok=True)
    for old in to.glob(f"{name}.part*"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "whole.tar"
        with tarfile.open(whole, "w:xz" if compress else "w", **({"preset": 9} if compress else {})) as tar:
            for path in sorted(src.rglob("*")):
                if path.is_file():
                    tar.add(path, path.relative_to(src).as_posix())
        data = whole.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    chunks = [data[i:i + part_bytes] for i in range(0, len(data), part_bytes)]
    parts = []
    for k, chunk in enumerate(chunks, 1):
        parts.append(to / f"{name}.part{k}-of-{len(chunks)}.{digest}")
        parts[-1].write_bytes(chunk)
    return parts


def find_parts(search: tuple[Path, ...]) -> list[tuple[Path, re.Match]]:
    """Every part file in the `search` folders, with its name parsed (NAME, K, N, DIGEST)."""
    found = []
    for folder in search:
        for part in sorted(folder.iterdir()) if folder.is_dir() else []:
            m = PART.match(part.name)
            if m:
                found.append((part, m))
    return found


def stash(search: tuple[Path, ...] = SEARCH[1:], into: Path = STASH) -> list[str]:
    """Copy the parts found in `search` into `into`, where the next call on a warm machine finds them."""
    parts = find_parts(search)
    if not parts:
        raise CarryError(f"No part in {', '.join(map(str, search))} to stash; name one in the call's carry.")
    into.mkdir(parents=True, exist_ok=True)
    for part, _ in parts:
        shutil.copy2(part, into / part.name)
    return [part.name for part, _ in parts]


def assemble(name: str, into: Path, search: tuple[Path, ...] = SEARCH) -> Path:
    """Join NAME's parts from `search`, check them against their digest and extract them into `into`."""
    found: dict[str, dict[int, Path]] = {}
    for part, m in find_parts(search):
        if m["name"] == name:
            found.setdefault(f"{m['n']}.{m['digest']}", {})[int(m["k"])] = part
    if not found:
        raise CarryError(f"No part of {name} in {', '.join(map(str, search))}; carry its parts (see nets/carry.py).")
    whole_packs = [key for key, parts in found.items() if len(parts) == int(key.split(".")[0])]
    if len(whole_packs) > 1 or (len(found) > 1 and not whole_packs):
        raise CarryError(f"Parts of {len(found)} different packs of {name} are here and {len(whole_packs)} are whole; "
                         f"remove the old parts from {', '.join(map(str, search))}.")
    key = whole_packs[0] if whole_packs else next(iter(found))  # an old pack's leftovers do not matter
    parts = found[key]
    n, digest = int(key.split(".")[0]), key.split(".")[1]
    missing = [k for k in range(1, n + 1) if k not in parts]
    if missing:
        raise CarryError(f"{name}: part(s) {', '.join(map(str, missing))} of {n} are not here (the machine went "
                         "cold between calls?); send them again with `python3 -m nets.carry stash`, then this call.")
    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "whole.tar"
        h = hashlib.sha256()
        with open(whole, "wb") as out:
            for k in range(1, n + 1):
                data = parts[k].read_bytes()
                h.update(data)
                out.write(data)
        if h.hexdigest()[:12] != digest:
            raise CarryError(f"{name}: the {n} parts do not make the packed file (sha256 differs); pack and send again.")
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(whole) as tar:  # plain or xz, detected
            tar.extractall(into, filter="data")
    return into


def plan(search: tuple[Path, ...] = SEARCH[1:]) -> list[str]:
    """The device calls that send the packs found in `search`, one line each, in order: what to carry and
    what to run (the last call of a pack assembles it; what then runs with it is the pack's job)."""
    packs: dict[str, list[tuple[int, Path]]] = {}
    for part, m in find_parts(search):
        packs.setdefault(m["name"], []).append((int(m["k"]), part))
    lines = []
    for name, numbered in packs.items():
        parts = [part for _, part in sorted(numbered)]
        for part in parts[:-1]:
            lines.append(f'carry ["{part.as_posix()}"]: python3 -m nets.carry stash')
        lines.append(f'carry ["{parts[-1].as_posix()}"]: python3 -m nets.carry assemble {name} --into /tmp/{name} && ...')
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m nets.carry", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("stash", help=f"copy the carried parts into {STASH}/ for the next call")
    a = sub.add_parser("assemble", help="join a payload's parts and extract it")
    a.add_argument("name")
    a.add_argument("--into", type=Path, required=True)
    sub.add_parser("plan", help="the device calls that send the packs in .carry/ and .whl/, in order")
    s = sub.add_parser("budget", help="MiB one part may have beside this working tree")
    s.add_argument("--root", type=Path, default=Path("."))
    args = p.parse_args(argv)
    try:
        if args.command == "stash":
            kept = stash()
            print(f"stashed {len(kept)} part(s) in {STASH}/: {', '.join(kept)}")
        elif args.command == "assemble":
            print(f"{args.name}: extracted into {assemble(args.name, args.into)}")
        elif args.command == "plan":
            print("\n".join(plan()) or "no parts in .carry/ or .whl/: run nets.batch pack or benchmarks.device_wheels")
        else:
            print(f"{part_budget(args.root) / 2**20:.1f} MiB a part (tree {tree_bytes(args.root) / 2**20:.1f} MiB)")
    except (CarryError, OSError, tarfile.TarError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
