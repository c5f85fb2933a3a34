"""Training on a handful of scikit-image photos: the loss falls, exports load, checkpoints resume."""
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from nets_media import content_folder, write_painting, one_torch_thread  # noqa: F401 (autouse fixture)
from nets import registry
from nets.train import TrainConfig, Trainer, train


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return TrainConfig(
        style_image=str(write_painting(root / "pattern.png", 96)),
        content_dir=str(content_folder(root / "content", 96)),
        arch="lite", size=64, style_size=96, batch=2, steps=16, lr=1e-2,
        content_layers=("relu2_2",), style_layers=("relu1_2", "relu2_2"),
        val_count=2, val_size=64, val_every=1000, checkpoint_every=5,
        out_dir=str(root / "run"), weights_dir=str(root / "weights"), seed=0)


def weighted(cfg: TrainConfig, terms: dict) -> float:
    return cfg.content_weight * terms["content"] + cfg.style_weight * terms["style"]


def test_training_lowers_the_loss_and_exports_loadable_weights(cfg):
    trainer = Trainer(cfg)
    before = trainer.validate()  # fixed validation photos, never trained on
    result = trainer.run(progress=False)
    assert result["steps"] == cfg.steps == len(trainer.history)
    assert weighted(cfg, result["val"]) < 0.8 * weighted(cfg, before)
    assert result["val"]["style"] < before["style"]
    entry = trainer.export(result)
    assert entry.name == "lite.pattern" and entry.metrics["val_style"] == round(result["val"]["style"], 5)
    path = registry.weights_dir() if not cfg.weights_dir else (trainer.out.parent / "weights")
    tensors = load_file(str(path / entry.file))
    assert all(t.dtype == torch.float16 for t in tensors.values())
    net = registry.load("lite.pattern", path)
    with torch.no_grad():
        y = net(torch.rand(1, 3, 64, 48))
    assert y.shape == (1, 3, 64, 48) and torch.isfinite(y).all()
    with torch.no_grad():  # the registered fp16 weights behave like the trained fp32 net
        x = trainer.val_batch[:1]
        assert (net(x) - trainer.net.cpu()(x)).abs().max() < 2e-2


def test_checkpoint_resume_continues_at_the_saved_step(cfg, tmp_path):
    short = replace(cfg, steps=4, out_dir=str(tmp_path / "run"))
    first = train(short, resume=True, progress=False, export=False)
    assert first["steps"] == 4
    saved = {k: v.clone() for k, v in Trainer(short).net.state_dict().items()}  # fresh net, for contrast

    longer = replace(short, steps=6)
    trainer = Trainer(longer)
    assert trainer.resume()
    assert trainer.step == 4 and [h["step"] for h in trainer.history] == [1, 2, 3, 4]
    resumed = trainer.net.state_dict()
    assert any(not torch.equal(resumed[k], saved[k]) for k in saved)  # trained weights came back, not init
    assert trainer.opt.state_dict()["state"]  # and Adam's moments
    result = trainer.run(progress=False)
    assert result["steps"] == 6 and [h["step"] for h in trainer.history] == list(range(1, 7))

    fresh = train(replace(longer, steps=2), resume=False, progress=False, export=False)
    assert fresh["steps"] == 2  # --no-resume starts over
