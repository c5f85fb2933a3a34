"""Gatys optimization at 48-64 px: the loss falls, masks are honoured, coarse-to-fine, outputs written."""
import json
from dataclasses import replace

import numpy as np
import pytest

from nets_media import painting, photo, one_torch_thread  # noqa: F401 (autouse fixture)
from nets import gatys
from nets.vgg import VGG16

# Shallow layers keep each iteration cheap on a busy 2-core CPU; the maths is the same as the defaults.
CFG = gatys.GatysConfig(size=64, style_size=64, steps=12, coarse_size=0, content_layers=("relu2_2",),
                        style_layers=("relu1_1", "relu2_1", "relu3_1"))


@pytest.fixture(scope="module")
def vgg():
    return VGG16(("relu1_1", "relu2_1", "relu2_2", "relu3_1"))


@pytest.fixture(scope="module")
def images():
    return photo("astronaut", 64), painting(64)


@pytest.fixture(scope="module")
def lbfgs_result(vgg, images):
    return gatys.run(*images, CFG, vgg=vgg, progress=False)


def test_lbfgs_lowers_the_loss(lbfgs_result, images):
    m = lbfgs_result.metrics
    assert m["steps"] == len(lbfgs_result.history) == 12
    assert m["first"]["content"] == 0  # initialised from the content
    assert m["final"]["total"] < 0.5 * m["first"]["total"]
    assert m["final"]["style"] < 0.5 * m["first"]["style"]
    assert lbfgs_result.image.shape == images[0].shape and lbfgs_result.image.dtype == np.uint8
    assert np.abs(lbfgs_result.image.astype(int) - images[0]).mean() > 5  # it did change the photo


def test_adam_with_layer_weights_lowers_the_loss(vgg, images):
    cfg = replace(CFG, optimizer="adam", lr=0.03, style_layer_weights=(2.0, 1.0, 0.5))
    result = gatys.run(*images, cfg, vgg=vgg, progress=False)
    assert result.metrics["final"]["total"] < 0.7 * result.metrics["first"]["total"]
    assert result.metrics["settings"]["learning_rate"] == 0.03


def test_mask_keeps_the_outside_and_styles_the_inside(vgg, images):
    content = images[0]
    mask = np.zeros(content.shape[:2], bool)
    mask[:, :32] = True  # stylize the left half only
    result = gatys.run(content, images[1], CFG, vgg=vgg, mask=mask, progress=False)
    diff = np.abs(result.image.astype(np.int16) - content).mean(axis=2)  # (H, W) in grey levels
    assert diff[:, 32:].max() <= 1  # outside: the content, up to rounding
    assert diff[:, :32].mean() > 10  # inside: painted
    assert result.metrics["mask_fraction"] == 0.5
    assert result.metrics["final"]["total"] < result.metrics["first"]["total"]


def test_mask_dtypes():
    assert gatys._as_mask(np.array([[0, 255]], np.uint8), (1, 2)).tolist() == [[0.0, 1.0]]
    assert gatys._as_mask(np.array([[0, 1]], np.uint8), (1, 2)).tolist() == [[0.0, 1.0]]
    assert gatys._as_mask(np.array([[False, True]]), (1, 2)).tolist() == [[0.0, 1.0]]
    assert gatys._as_mask(np.array([[-0.5, 0.25]]), (1, 2)).tolist() == [[0.0, 0.25]]


def test_mask_must_match_the_content(vgg, images):
    with pytest.raises(ValueError, match="Mask shape"):
        gatys.run(*images, CFG, vgg=vgg, mask=np.ones((10, 10)), progress=False)


def test_coarse_to_fine_from_noise(vgg):
    content = photo("chelsea", 96)  # (64, 96, 3)
    cfg = replace(CFG, size=96, coarse_size=48, steps=8, fine_steps=6, init="noise")
    assert cfg.levels(96) == (48, 96)
    result = gatys.run(content, painting(96), cfg, vgg=vgg, progress=False)
    assert result.image.shape == content.shape
    assert [h["size"] for h in result.history] == [48] * 8 + [96] * 6
    assert result.history[0]["content"] > 0.3  # noise start: far from the content
    coarse = [h["total"] for h in result.history if h["size"] == 48]
    fine = [h["total"] for h in result.history if h["size"] == 96]
    assert coarse[-1] < 0.7 * coarse[0]  # each level lowers its own loss (levels differ in scale)
    assert result.metrics["final"]["total"] < 0.9 * fine[0]
    assert result.metrics["levels"] == [48, 96]


def test_levels_and_validation():
    cfg = gatys.GatysConfig(size=1000, coarse_size=200)
    assert cfg.levels(1000) == (200, 400, 800, 1000)
    assert cfg.levels(150) == (150,)  # small images: a single level
    assert gatys.GatysConfig(coarse_size=0).levels(512) == (512,)
    with pytest.raises(ValueError, match="optimizer"):
        gatys.GatysConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="content layers"):
        gatys.GatysConfig(content_layers=("relu9_9",))
    with pytest.raises(ValueError, match="style layer weights"):
        gatys.GatysConfig(style_layer_weights=(1.0,))


def test_vgg_must_provide_the_layers(images):
    with pytest.raises(ValueError, match="lacks layers"):
        gatys.run(*images, CFG, vgg=VGG16(("relu1_1",)), progress=False)


def test_save_writes_image_curve_and_metrics(lbfgs_result, tmp_path):
    paths = gatys.save(lbfgs_result, tmp_path / "out.png")
    assert paths["loss_curve"].name == "out.loss.png" and paths["metrics"].name == "out.metrics.json"
    assert all(p.stat().st_size > 0 for p in paths.values())
    metrics = json.loads(paths["metrics"].read_text())
    assert set(metrics["final"]) == {"content", "style", "tv", "total"}
    assert metrics["steps"] == 12 and metrics["seconds"] > 0
    assert metrics["settings"]["style_layers"] == ["relu1_1", "relu2_1", "relu3_1"]
