"""Batch training for a lent GPU machine, run here on the CPU at toy size: pack -> train -> merge."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nets_media import content_folder, write_painting
from nets import batch, carry, registry
from nets.transformer_net import build


def brought_back(prefix, tmp_path):
    """What a train call wrote as PREFIX.partK-of-N.DIGEST, put back together as the merge does."""
    into = tmp_path / f"unpacked_{prefix.name}"
    carry.assemble(prefix.name, into, (prefix.parent,))
    return {p.relative_to(into).as_posix(): p for p in into.rglob("*") if p.is_file()}


def test_pack_train_merge_round_trip(tmp_path, monkeypatch):
    styles = tmp_path / "styles"
    write_painting(styles / "swirl.png", 96)
    (styles / "SOURCES.md").write_text("not a painting: ignored\n")
    content = content_folder(tmp_path / "content", 64)
    carry = tmp_path / "carry"
    counts = batch.pack(styles, content, carry)
    assert counts["paintings"] == 1 and counts["photos"] == 6
    vgg = carry / "vgg16.safetensors"
    from safetensors.torch import load_file
    tensors = load_file(str(vgg))
    assert {k.split(".")[0] for k in tensors} == set(batch.VGG_CONVS) and tensors["conv1_1.bias"].dtype == torch.float16

    prefix = tmp_path / "out" / "weights"
    assert batch.main(["train", "--carry", str(carry), "--out", str(prefix), "--arch", "lite", "--device", "cpu",
                       "--jobs", "1", "--size", "32", "--style-size", "64", "--batch", "2", "--steps", "2",
                       "--val-count", "2", "--shift-weight", "5", "--noise-weight", "3", "--deadline", "0"]) == 0
    files = brought_back(prefix, tmp_path)
    report = json.loads(files["report.json"].read_text())
    assert report["swirl"]["rc"] == 0, report
    assert "weights/manifest.json" in files and "weights/lite.swirl.safetensors" in files

    home = tmp_path / "home_weights"
    monkeypatch.chdir(tmp_path)  # merge copies loss curves and previews into ./runs/train
    with pytest.raises(batch.carry.CarryError, match="no lite.absent; it holds lite.swirl"):
        batch.merge(prefix, home, ["lite.absent"])  # a candidate that did not come back: nothing merged
    assert not (home / "manifest.json").exists()
    assert batch.merge(prefix, home, ["lite.swirl"]) == ["lite.swirl"]
    entry = registry.info("lite.swirl", home)
    assert entry.recipe["steps"] == 2 and entry.recipe["device"] == "cpu" and "val_style" in entry.metrics
    assert entry.recipe["shift_weight"] == 5.0 and entry.recipe["noise_weight"] == 3.0 and "val_lattice" in entry.metrics
    net = registry.load("lite.swirl", home)
    with torch.no_grad():
        assert torch.isfinite(net(torch.rand(1, 3, 32, 32))).all()
    assert (tmp_path / "runs/train/lite.swirl.loss.png").is_file()

    # a later GPU call continues the shipped net with its own recipe, not the batch's flags
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(home))
    write_painting(carry / "styles" / "plain.png", 64)  # no shipped net: reported, not trained
    more = tmp_path / "out" / "more"
    assert batch.main(["train", "--carry", str(carry), "--out", str(more), "--arch", "lite", "--device", "cpu",
                       "--jobs", "2", "--batch", "2", "--steps", "1", "--style-weight", "9", "--size", "64",
                       "--val-count", "2", "--deadline", "0", "--from-shipped"]) == 0
    files = brought_back(more, tmp_path)
    report = json.loads(files["report.json"].read_text())
    recipe = json.loads(files["weights/manifest.json"].read_text())["styles"]["lite.swirl"]["recipe"]
    assert report["swirl"]["rc"] == 0 and report["plain"]["rc"] == "not started (no shipped lite.plain)", report
    assert recipe["steps"] == 3 and recipe["stages"][-1]["steps"] == [2, 3]
    assert recipe["stages"][-1]["init_from"] == "lite.swirl"
    last = recipe["stages"][-1]  # the shipped stage's size, painting scale and weights, not --size 64/--style-weight 9
    assert (last["size"], last["style_size"], last["style_weight"], last["shift_weight"], last["noise_weight"]) == \
        (32, 64, 2.0, 5.0, 3.0)


def test_from_shipped_can_scale_each_shipped_style_weight(monkeypatch, tmp_path):
    import argparse

    monkeypatch.setattr(batch, "shipped_recipe", lambda arch, name: {"size": 256, "style_weight": 1.5, "steps": 100})
    args = argparse.Namespace(from_shipped=True, style_weight_factor=2.0, arch="full", steps=50, warmup=100,
                              carry=tmp_path, device="cuda", batch=8, val_count=8, size=256, style_size=512,
                              style_weight=2.0, shift_weight=0.0, noise_weight=0.0)
    cmd = batch.train_command(tmp_path / "udnie.jpg", args, tmp_path / "w", tmp_path / "r")
    assert cmd[cmd.index("--style-weight") + 1] == "3.0" and cmd[cmd.index("--steps") + 1] == "150"


def test_from_shipped_goes_on_distilling_a_distilled_net(monkeypatch, tmp_path):
    """A net whose last stage learned from a teacher (content and style weight 0) is continued with that
    teacher: without it the continued stage would have nothing to learn."""
    stage = {"size": 256, "style_size": 256, "lr": 1e-3, "content_weight": 0.0, "style_weight": 0.0, "tv_weight": 0.01,
             "shift_weight": 200.0, "noise_weight": 500.0}
    recipe = {**stage, "content_layers": ["relu2_2"], "style_layers": ["relu1_2"], "steps": 300,
              "stages": [{**stage, "style_weight": 2.0, "content_weight": 1.0, "teacher": "", "teacher_weight": 0.0},
                         {**stage, "teacher": "full.swirl", "teacher_weight": 100.0}]}
    registry.register(build("lite"), "lite", "swirl", tmp_path, recipe=recipe)
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(tmp_path))
    flags = batch.shipped_recipe("lite", "swirl")
    assert flags["teacher"] == "full.swirl" and flags["teacher_weight"] == 100.0 and flags["style_weight"] == 0.0
    recipe["stages"].pop()
    registry.register(build("lite"), "lite", "swirl", tmp_path, recipe=recipe)
    assert "teacher" not in batch.shipped_recipe("lite", "swirl")  # not an empty --teacher flag


def test_pack_spreads_a_photo_subset_shrinks_paintings_and_cuts_parts(tmp_path):
    styles = tmp_path / "styles"
    write_painting(styles / "big.png", 96)
    write_painting(styles / "small.png", 48)
    content = content_folder(tmp_path / "content", 64)
    to = tmp_path / "carry" / "train"
    counts = batch.pack(styles, content, to, photos=3, painting_side=64)
    assert counts["photos"] == 3 and len(list((to / "content").iterdir())) == 3
    packed = sorted(p.name for p in (to / "content").iterdir())
    assert packed == [sorted(p.name for p in content.iterdir())[i] for i in (0, 2, 4)]
    from nets.images import load_rgb
    assert load_rgb(to / "styles" / "big.png").shape[:2] == (64, 64)
    assert (to / "styles" / "small.png").read_bytes() == (styles / "small.png").read_bytes()  # small enough: as is

    assert batch.main(["pack", "--styles", str(styles), "--content", str(content), "--to", str(to),
                       "--part-mib", "3"]) == 0
    parts = sorted((tmp_path / "carry").glob("train.part*"))
    assert len(parts) >= 3 and all(p.stat().st_size <= 3 * 2**20 for p in parts)  # VGG16 alone is ~15 MB
    assert len(list((to / "content").iterdir())) == 6  # a new pack replaces the old one whole


def test_merge_of_missing_parts_is_one_line(tmp_path, capsys):
    assert batch.main(["merge", str(tmp_path / "absent"), "--weights-dir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "No part of absent" in err[0]


def test_each_wave_gets_its_share_of_the_deadline():
    # 10 styles, 5 at a time: two waves of 165 s, 45 s of each kept for validation and export
    assert batch.time_budget(330, 0, 2, 45) == 120
    assert batch.time_budget(330, 170, 2, 45) == 115  # the first wave ran 5 s over: the second gets less
    assert batch.time_budget(330, 300, 2, 45) < 0  # nothing left: not started
    assert batch.time_budget(0, 1000, 2, 45) == 0  # no deadline: no limit


def test_a_deadline_time_boxes_the_trainings_and_still_brings_weights_back(tmp_path):
    """With more steps asked for than fit, each training stops itself at its budget and exports what it
    reached (--grace lets a slow export finish); styles that cannot start in time are reported."""
    styles = tmp_path / "styles"
    write_painting(styles / "first.png", 64)
    write_painting(styles / "second.png", 64)
    carry = tmp_path / "carry"
    batch.pack(styles, content_folder(tmp_path / "content", 64), carry)
    common = ["train", "--carry", str(carry), "--arch", "lite", "--device", "cpu", "--jobs", "2", "--size", "32",
              "--style-size", "64", "--batch", "2", "--steps", "1000000", "--val-count", "2", "--min-seconds", "4",
              "--grace", "120"]
    prefix = tmp_path / "weights"
    # one wave of two: 8 s of training each, 12 s kept for start-up, validation and export
    assert batch.main([*common, "--out", str(prefix), "--deadline", "20", "--export-margin", "12"]) == 0
    files = brought_back(prefix, tmp_path)
    report = json.loads(files["report.json"].read_text())
    manifest = json.loads(files["weights/manifest.json"].read_text())
    for name in ("first", "second"):
        assert report[name]["rc"] == 0 and "--max-seconds 8" in report[name]["log_tail"][-1], report
        assert 0 < manifest["styles"][f"lite.{name}"]["recipe"]["steps"] < 1000000

    late = tmp_path / "late"  # a deadline shorter than the export margin: nothing starts
    assert batch.main([*common, "--out", str(late), "--deadline", "10", "--export-margin", "12"]) == 0
    report = json.loads(brought_back(late, tmp_path)["report.json"].read_text())
    assert {r["rc"] for r in report.values()} == {"not started (deadline)"} and len(report) == 2


def test_the_trainings_run_this_source_tree_from_any_folder(tmp_path, monkeypatch):
    """A child started from another folder, with no installed copy of the package in sight (`-S`: no
    site-packages), still imports this checkout's `nets`, not none and not another checkout's."""
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "elsewhere"))
    env = batch.child_env(tmp_path / "carry")
    assert env["STYLECAM_VGG"] == str(tmp_path / "carry" / "vgg16.safetensors")
    assert env["PYTHONPATH"].split(os.pathsep)[1:] == [str(tmp_path / "elsewhere")]  # the caller's path kept, after
    done = subprocess.run([sys.executable, "-S", "-c", "import nets; print(nets.__file__)"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve() == Path(batch.__file__).resolve().parent / "__init__.py"
