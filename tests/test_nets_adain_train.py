"""Training the AdaIN decoder (nets.adain_train) at toy size on real photos and generated paintings."""
import json
import os
import stat

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


def run(data, tmp_path, *extra: str, weights_dir: str | None = "weights") -> int:
    return adain_train.main(["--styles", str(data["styles"]), "--content", str(data["content"]),
                             "--holdout", "kept_apart", "--val-count", "2", "--size", "32", "--batch", "2", "--val-every", "2",
                             "--checkpoint-every", "1", "--lr", "1e-3", "--threads", "1", "--out-dir", str(tmp_path / "run"),
                             *(["--weights-dir", str(tmp_path / weights_dir)] if weights_dir else []), *extra])


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


def test_stability_terms_are_trained_recorded_and_zero_for_a_decoder_that_ignores_its_input(data, tmp_path):
    assert run(data, tmp_path, "--steps", "4", "--noise-weight", "100", "--shift-weight", "10") == 0
    info = json.loads((tmp_path / "weights" / adain.DECODER_INFO).read_text())
    assert info["recipe"]["stages"][0]["noise_weight"] == 100 and info["recipe"]["stages"][0]["shift_weight"] == 10
    assert all(h["seen_noise_gain"] > 0 and h["held_out_noise_gain"] > 0 and h["own_content"] > 0 for h in info["history"])

    cfg = adain_train.AdainTrainConfig(str(data["styles"]), str(data["content"]), holdout=("kept_apart",), size=32,
                                       batch=2, val_count=2, noise_weight=100, shift_weight=10, precision="fp32",
                                       out_dir=str(tmp_path / "run3"))
    trainer = adain_train.DecoderTrainer(cfg)
    photos = next(iter(trainer.loader))
    paintings = trainer.paintings.batch(2)
    terms = trainer.loss(photos, paintings)
    assert terms["noise"] > 0 and terms["shift"] > 0  # the trained-from-nothing decoder follows its input
    expected = terms["content"] + 10.0 * terms["style"] + 100 * terms["noise"] + 10 * terms["shift"]
    assert torch.isclose(terms["total"], expected)
    last = trainer.decoder.body[-1][1]
    with torch.no_grad():  # a decoder that paints one flat colour whatever the photo: nothing to stabilize
        last.weight.zero_()
    terms = trainer.loss(photos, paintings)
    assert float(terms["noise"].detach()) == 0.0 and float(terms["shift"].detach()) == 0.0 and terms["style"] > 0


def test_photo_style_trains_the_decoder_to_paint_photos_in_their_own_statistics(data, tmp_path, monkeypatch):
    seen = []
    loss = adain_train.DecoderTrainer.loss
    monkeypatch.setattr(adain_train.DecoderTrainer, "loss",
                        lambda self, photos, paintings, **kw: seen.append((photos.clone(), paintings.clone())) or loss(self, photos, paintings, **kw))
    assert run(data, tmp_path, "--steps", "3", "--photo-style", "1") == 0
    assert seen and all(torch.equal(photos, paintings) for photos, paintings in seen)
    info = json.loads((tmp_path / "weights" / adain.DECODER_INFO).read_text())
    assert info["recipe"]["stages"][0]["photo_style"] == 1.0
    seen.clear()
    assert run(data, tmp_path, "--steps", "5") == 0  # resumed, paintings again
    assert seen and not any(torch.equal(photos, paintings) for photos, paintings in seen)
    assert run(data, tmp_path, "--steps", "6", "--photo-style", "1.5") == 2
    assert run(data, tmp_path, "--steps", "6", "--noise-weight", "-1") == 2


def test_by_default_the_decoder_is_exported_into_the_out_dir_not_the_weights_folder(data, tmp_path, monkeypatch, capsys):
    """Every stop (the end, Ctrl-C after seconds) replaced the shipped decoder in weights/, with exit 0, and
    0600 (safetensors' save_file) where the shipped files are 0644."""
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(tmp_path / "shipped"))
    assert run(data, tmp_path, "--steps", "1", weights_dir=None) == 0
    export = tmp_path / "run" / "export"
    assert adain.load_decoder(export) and f"exported to {export}" in capsys.readouterr().out
    assert not (tmp_path / "shipped").exists()
    umask = os.umask(0)
    os.umask(umask)
    for path in (export / adain.DECODER_FILE, tmp_path / "run" / "adain.decoder.ckpt.safetensors"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_ctrl_c_before_the_first_step_exports_nothing(data, tmp_path, monkeypatch, capsys):
    """A decoder of 0 steps is random weights: it was exported all the same (and the exit was 0)."""
    def interrupted(self, photos):
        raise KeyboardInterrupt

    monkeypatch.setattr(adain_train.DecoderTrainer, "train_step", interrupted)
    assert run(data, tmp_path, "--steps", "3") == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("error: ") and "nothing exported" in err
    assert not (tmp_path / "weights" / adain.DECODER_FILE).exists()
    assert not (tmp_path / "run" / "adain.decoder.ckpt.safetensors").exists()


@pytest.mark.parametrize("flag", ["--steps", "--batch", "--val-count", "--val-every", "--checkpoint-every"])
def test_zero_counts_are_refused_by_the_parser(data, tmp_path, capsys, flag):
    """--steps 0 exported a random decoder with exit 0; the others were a ValueError or a ZeroDivisionError."""
    with pytest.raises(SystemExit) as exc:
        run(data, tmp_path, "--steps", "1", flag, "0")
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and f"{flag}: 0 is less than 1" in err and "\n" not in err
    assert not (tmp_path / "weights").exists() and not (tmp_path / "run").exists()


def test_fewer_training_photos_than_batch_is_refused_at_start(data, tmp_path, capsys, monkeypatch):
    """6 photos, 2 kept for validation, --batch 8: the loader yielded nothing and the loop spun forever."""
    monkeypatch.setattr(adain_train.DecoderTrainer, "run", lambda self: pytest.fail("training started"))
    assert run(data, tmp_path, "--steps", "1", "--batch", "8") == 1
    err = capsys.readouterr().err.strip()
    assert "4 training photos after 2 kept for validation, fewer than --batch 8" in err and "\n" not in err


def test_an_unwritable_weights_dir_is_refused_before_training(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(adain_train.DecoderTrainer, "train_step", lambda *a: pytest.fail("training started"))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert run(data, tmp_path, "--steps", "1", "--weights-dir", str(a_file / "sub")) == 1
    err = capsys.readouterr().err.strip()
    assert f"--weights-dir {a_file / 'sub'} is not a writable folder" in err and "\n" not in err


def test_an_export_failure_says_the_checkpoint_is_kept(data, tmp_path, capsys, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(adain, "export_info", full_disk)
    assert run(data, tmp_path, "--steps", "1") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    ckpt = tmp_path / "run" / "adain.decoder.ckpt.safetensors"
    assert err.startswith("error: ") and f"the checkpoint {ckpt} is kept" in err and "writable --weights-dir" in err
    assert ckpt.is_file()
