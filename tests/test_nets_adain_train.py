"""Training the AdaIN decoder (nets.adain_train) at toy size on real photos and generated paintings."""
import json

import numpy as np
import pytest
import torch

from nets import adain, adain_train
from nets_media import content_folder, one_torch_thread, write_painting  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("adain_data")
    styles = root / "styles"
    styles.mkdir()
    for i, name in enumerate(("swirls", "bands", "kept_apart")):
        write_painting(styles / f"{name}.png", 96, seed=i)
    return {"content": content_folder(root / "content", 64), "styles": styles}


def run(data, tmp_path, *extra: str) -> int:
    return adain_train.main(["--styles", str(data["styles"]), "--content", str(data["content"]),
                             "--holdout", "kept_apart", "--val-count", "2", "--size", "32", "--batch", "2", "--val-every", "2",
                             "--checkpoint-every", "1", "--lr", "1e-3", "--threads", "1",
                             "--out-dir", str(tmp_path / "run"), "--weights-dir", str(tmp_path / "weights"), *extra])


def test_training_lowers_the_loss_exports_and_resumes_as_a_new_stage(data, tmp_path):
    assert run(data, tmp_path, "--steps", "6") == 0
    info = json.loads((tmp_path / "weights" / adain.DECODER_INFO).read_text())
    first = adain.load_decoder(tmp_path / "weights")  # the exported file loads, sha256 checked
    assert info["steps"] == 6 and info["recipe"]["holdout"] == ["kept_apart"]
    assert info["recipe"]["paintings"] == ["bands", "swirls"]  # what it trained on: not the held-out one
    history = info["history"]
    assert [h["step"] for h in history] == [2, 4, 6]
    assert all(np.isfinite([h["seen_style"], h["held_out_style"], h["seen_content"]]).all() for h in history)
    assert history[-1]["train_loss"] < 0.2 * history[0]["train_loss"]  # six steps already learn a lot

    assert run(data, tmp_path, "--steps", "8", "--size", "40") == 0  # resumes at step 6 with larger crops
    info = json.loads((tmp_path / "weights" / adain.DECODER_INFO).read_text())
    assert [(s["steps"], s["size"]) for s in info["recipe"]["stages"]] == [([0, 6], 32), ([6, 8], 40)]
    assert info["steps"] == 8 and info["train_seconds"] >= sum(s["seconds"] for s in info["recipe"]["stages"]) - 0.2
    second = adain.load_decoder(tmp_path / "weights")
    changed = [not torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values())]
    assert any(changed)


def test_bad_input_is_one_line(data, tmp_path, capsys):
    assert adain_train.main(["--styles", str(data["styles"]), "--content", str(data["content"]),
                             "--holdout", "mona_lisa", "--val-count", "2", "--out-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "mona_lisa" in err and "\n" not in err
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "adain.decoder.ckpt.safetensors").write_bytes(b"not a checkpoint")
    assert run(data, tmp_path, "--steps", "2") == 1
    err = capsys.readouterr().err.strip()
    assert "cannot be resumed" in err and "\n" not in err
    assert not (tmp_path / "weights").exists()  # nothing exported from a failed start


def test_init_from_continues_an_exported_decoder_with_its_stages(data, tmp_path):
    assert run(data, tmp_path, "--steps", "4") == 0
    shipped = adain.load_decoder(tmp_path / "weights")
    out = ["--out-dir", str(tmp_path / "run2"), "--weights-dir", str(tmp_path / "weights2")]
    assert run(data, tmp_path, "--steps", "6", "--init-from", str(tmp_path / "weights"), *out) == 0
    info = json.loads((tmp_path / "weights2" / adain.DECODER_INFO).read_text())
    stages = info["recipe"]["stages"]
    assert info["steps"] == 6 and [s["steps"] for s in stages] == [[0, 4], [4, 6]]
    assert stages[1]["init_from"] == str(tmp_path / "weights") and "init_from" not in stages[0]
    assert [h["step"] for h in info["history"]] == [2, 4, 6]
    continued = adain.load_decoder(tmp_path / "weights2")
    assert any(not torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), continued.state_dict().values()))
