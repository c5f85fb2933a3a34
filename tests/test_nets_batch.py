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
                       "--val-count", "2", "--deadline", "0"]) == 0
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
    net = registry.load("lite.swirl", home)
    with torch.no_grad():
        assert torch.isfinite(net(torch.rand(1, 3, 32, 32))).all()
    assert (tmp_path / "runs/train/lite.swirl.loss.png").is_file()


def test_merge_of_a_missing_tar_is_one_line(tmp_path, capsys):
    assert batch.main(["merge", str(tmp_path / "absent.tar"), "--weights-dir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "absent.tar" in err[0]
