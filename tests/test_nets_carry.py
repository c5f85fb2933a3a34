"""Payloads for the GPU machine in parts: split here, stash call by call there, assemble in the last call."""
import subprocess

import pytest

from nets import carry


def payload(folder, sizes=(70_000, 50_000, 3)):
    import numpy as np

    rng = np.random.default_rng(0)
    for i, n in enumerate(sizes):
        path = folder / ("sub" if i else "") / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())  # incompressible, as JPEGs and fp16
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("compress", [False, True])
def test_split_then_stash_call_by_call_then_assemble(tmp_path, monkeypatch, compress):
    files = payload(tmp_path / "src")
    parts = carry.split(tmp_path / "src", "train", tmp_path / "here", 50_000, compress=compress)
    assert len(parts) == 3 and all(p.stat().st_size <= 50_000 for p in parts)
    assert [p.name.split(".")[1] for p in parts] == ["part1-of-3", "part2-of-3", "part3-of-3"]
    calls = carry.plan((tmp_path / "here",))
    assert len(calls) == 3 and all(parts[i].name in calls[i] for i in range(3))
    assert calls[0].endswith("nets.carry stash") and "assemble train --into /tmp/train" in calls[2]

    device = tmp_path / "device"  # each call finds only the part it carried, and what earlier calls stashed
    (device / ".carry").mkdir(parents=True)
    monkeypatch.chdir(device)

    def call_carrying(part):
        for old in (device / ".carry").iterdir():
            old.unlink()
        (device / ".carry" / part.name).write_bytes(part.read_bytes())

    for part in parts[:-1]:
        call_carrying(part)
        assert carry.main(["stash"]) == 0
    call_carrying(parts[-1])
    assert carry.main(["assemble", "train", "--into", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def test_a_missing_part_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    payload(tmp_path / "src")
    parts = carry.split(tmp_path / "src", "site", tmp_path / ".whl", 50_000)
    parts[1].unlink()  # the machine went cold after the first stash call
    monkeypatch.chdir(tmp_path)
    assert carry.main(["assemble", "site", "--into", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "part(s) 2 of 3" in err[0] and "stash" in err[0]
    assert not (tmp_path / "out").exists()


def test_parts_of_two_packs_or_a_damaged_part_are_refused(tmp_path):
    payload(tmp_path / "src")
    first = carry.split(tmp_path / "src", "train", tmp_path / "a", 50_000)
    (tmp_path / "src" / "f0.bin").write_bytes(b"changed")
    second = carry.split(tmp_path / "src", "train", tmp_path / "b", 50_000)
    assert first[0].name.rsplit(".", 1)[1] != second[0].name.rsplit(".", 1)[1]  # the digest tells packs apart
    with pytest.raises(carry.CarryError, match="different packs"):  # two whole packs: which one is meant?
        carry.assemble("train", tmp_path / "out", (tmp_path / "a", tmp_path / "b"))
    leftover = tmp_path / "old"  # a part of an earlier pack left on the machine does not stop the whole one
    leftover.mkdir()
    first[0].rename(leftover / first[0].name)
    carry.assemble("train", tmp_path / "new", (leftover, tmp_path / "b"))
    assert (tmp_path / "new" / "f0.bin").read_bytes() == b"changed"
    (leftover / first[0].name).rename(first[0])
    first[0].write_bytes(b"x" + first[0].read_bytes()[1:])
    with pytest.raises(carry.CarryError, match="sha256"):
        carry.assemble("train", tmp_path / "out", (tmp_path / "a",))
    with pytest.raises(carry.CarryError, match="positive part size"):
        carry.split(tmp_path / "src", "train", tmp_path / "c", 0)
    with pytest.raises(carry.CarryError, match="No part in"):  # a stash call that carried nothing
        carry.stash((tmp_path / "empty",), tmp_path / ".stash")
    with pytest.raises(carry.CarryError, match="No part of site"):
        carry.assemble("site", tmp_path / "out", (tmp_path / "a",))


def test_the_budget_is_what_the_tree_leaves_of_a_call(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "tracked.bin").write_bytes(b"t" * 3_000_000)
    (tmp_path / "untracked.bin").write_bytes(b"u" * 2_000_000)  # travels too: git does not ignore it
    (tmp_path / ".gitignore").write_text("/.carry/\n")
    (tmp_path / ".carry").mkdir()
    (tmp_path / ".carry" / "big.bin").write_bytes(b"i" * 9_000_000)  # ignored: travels only when carried
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.bin"], check=True)
    assert carry.tree_bytes(tmp_path) == 5_000_000 + len("/.carry/\n")
    assert carry.part_budget(tmp_path, margin=0) == carry.DEVICE_LIMIT - carry.tree_bytes(tmp_path)
    (tmp_path / "untracked.bin").write_bytes(b"u" * carry.DEVICE_LIMIT)
    with pytest.raises(carry.CarryError, match="nothing can be carried"):
        carry.part_budget(tmp_path)
    with pytest.raises(carry.CarryError, match="git"):
        carry.tree_bytes(tmp_path / "not_a_repo_folder")
