"""Batch training for a lent GPU machine, run here on the CPU at toy size: pack -> train -> merge."""
import json
import tarfile

import torch

from nets_media import content_folder, write_painting
from nets import batch, registry


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

    tar_path = tmp_path / "out" / "weights.tar"
    assert batch.main(["train", "--carry", str(carry), "--out", str(tar_path), "--arch", "lite", "--device", "cpu",
                       "--jobs", "1", "--size", "32", "--style-size", "64", "--batch", "2", "--steps", "2",
                       "--val-count", "2", "--shift-weight", "5", "--noise-weight", "3", "--deadline", "0"]) == 0
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        report = json.load(tar.extractfile("report.json"))
    assert report["swirl"]["rc"] == 0, report
    assert "weights/manifest.json" in names and "weights/lite.swirl.safetensors" in names

    home = tmp_path / "home_weights"
    monkeypatch.chdir(tmp_path)  # merge copies loss curves and previews into ./runs/train
    assert batch.merge(tar_path, home) == ["lite.swirl"]
    entry = registry.info("lite.swirl", home)
    assert entry.recipe["steps"] == 2 and entry.recipe["device"] == "cpu" and "val_style" in entry.metrics
    assert entry.recipe["shift_weight"] == 5.0 and entry.recipe["noise_weight"] == 3.0 and "val_lattice" in entry.metrics
    net = registry.load("lite.swirl", home)
    with torch.no_grad():
        assert torch.isfinite(net(torch.rand(1, 3, 32, 32))).all()
    assert (tmp_path / "runs/train/lite.swirl.loss.png").is_file()


def test_merge_of_a_missing_tar_is_one_line(tmp_path, capsys):
    assert batch.main(["merge", str(tmp_path / "absent.tar"), "--weights-dir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "absent.tar" in err[0]


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
    tar_path = tmp_path / "weights.tar"
    # one wave of two: 8 s of training each, 12 s kept for start-up, validation and export
    assert batch.main([*common, "--out", str(tar_path), "--deadline", "20", "--export-margin", "12"]) == 0
    with tarfile.open(tar_path) as tar:
        report = json.load(tar.extractfile("report.json"))
        manifest = json.load(tar.extractfile("weights/manifest.json"))
    for name in ("first", "second"):
        assert report[name]["rc"] == 0 and "--max-seconds 8" in report[name]["log_tail"][-1], report
        assert 0 < manifest["styles"][f"lite.{name}"]["recipe"]["steps"] < 1000000

    late = tmp_path / "late.tar"  # a deadline shorter than the export margin: nothing starts
    assert batch.main([*common, "--out", str(late), "--deadline", "10", "--export-margin", "12"]) == 0
    with tarfile.open(late) as tar:
        report = json.load(tar.extractfile("report.json"))
    assert {r["rc"] for r in report.values()} == {"not started (deadline)"} and len(report) == 2
