"""Training on a handful of scikit-image photos: the loss falls, exports load, checkpoints resume."""
import os
import signal
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from nets_media import content_folder, write_painting, one_torch_thread  # noqa: F401 (autouse fixture)
from nets import registry
from nets.images import ImageError
from nets.photos import endless
from nets.train import CheckpointError, TrainConfig, Trainer, train


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


def test_a_resume_with_another_recipe_is_recorded_as_a_stage(cfg, tmp_path):
    base = replace(cfg, steps=2, out_dir=str(tmp_path / "run"), weights_dir=str(tmp_path / "weights"), style_name="staged")
    train(base, resume=True, progress=False, export=False)
    train(replace(base, steps=3), resume=True, progress=False, export=False)  # same recipe: the same stage
    result = train(replace(base, steps=5, size=32, lr=5e-3), resume=True, progress=False)  # a larger step count, smaller crops
    recipe = result["exported"]["recipe"]
    stages = recipe["stages"]
    assert [s["steps"] for s in stages] == [[0, 3], [3, 5]]
    assert [(s["size"], s["lr"]) for s in stages] == [(64, 1e-2), (32, 5e-3)]
    assert [s["margin"] for s in stages] == [8, 8]  # the lite net's border margin, trained with
    assert all(s["seconds"] > 0 for s in stages)
    assert recipe["train_seconds"] == pytest.approx(sum(s["seconds"] for s in stages), abs=0.2)
    assert recipe["images_seen"] == 5 * cfg.batch and recipe["size"] == 32  # top level: the last stage

    plain = train(replace(base, steps=2, out_dir=str(tmp_path / "plain"), style_name="plain"), progress=False)
    assert "stages" not in plain["exported"]["recipe"]  # one recipe throughout: no stages to tell apart


def test_a_checkpoint_from_before_stages_gives_its_steps_to_its_own_recipe(cfg, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    base = replace(cfg, steps=2, out_dir=str(tmp_path / "run"), weights_dir=str(tmp_path / "weights"), style_name="legacy")
    train(base, progress=False, export=False)
    path = tmp_path / "run" / "lite.legacy.ckpt.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "stages"}
    save_file(load_file(str(path)), str(path), metadata=meta)
    recipe = train(replace(base, steps=3, size=32), progress=False)["exported"]["recipe"]
    assert [(s["steps"], s["size"], s["seconds"] is None) for s in recipe["stages"]] == [([0, 2], 64, True), ([2, 3], 32, False)]


def test_a_resume_with_nothing_left_to_do_reports_no_speed(cfg, tmp_path):
    done = replace(cfg, steps=2, out_dir=str(tmp_path / "run"))
    train(done, progress=False, export=False)
    again = train(done, progress=False, export=False)  # resumes at the last step: validates, trains nothing
    assert again["steps"] == 2 and again["images_per_s"] == 0


def test_sigterm_saves_the_checkpoint_as_ctrl_c_does(cfg, tmp_path, monkeypatch, capsys):
    """`kill` or a CI time-out sends SIGTERM, whose default ends Python at once: the steps since the last
    checkpoint were lost. `stylecam train` now treats it as Ctrl-C: checkpoint saved, exit 130."""
    from nets import cli

    real_loss = Trainer.loss

    def loss_then_terminated(self, batch):
        if self.step == 3:  # between checkpoints (every 5)
            os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(self, batch)

    monkeypatch.setattr(Trainer, "loss", loss_then_terminated)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    rc = cli.main(["train", cfg.style_image, "--content", cfg.content_dir, "--arch", "lite", "--size", "64",
                   "--style-size", "96", "--batch", "2", "--steps", "16", "--checkpoint-every", "5",
                   "--val-count", "2", "--val-size", "64", "--style-layers", "relu1_2,relu2_2", "--out-dir", str(out),
                   "--no-export", "--no-progress", "--device", "cpu"])
    assert rc == 130 and "checkpoint saved" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    trainer = Trainer(replace(cfg, out_dir=str(out)))
    assert trainer.resume() and trainer.step == 3


def test_init_from_continues_a_registered_style_with_its_stages(cfg, tmp_path):
    """Checkpoints stay on the machine that trained; a later fine-tune starts from the shipped weights."""
    weights = tmp_path / "weights"
    first = replace(cfg, steps=3, out_dir=str(tmp_path / "a"), weights_dir=str(weights), style_name="seed")
    shipped = train(first, progress=False)["exported"]
    os.environ["STYLECAM_WEIGHTS"] = str(weights)  # init_from reads the registry, as `stylecam train` does
    try:
        tune = replace(first, steps=5, size=48, shift_weight=10.0, out_dir=str(tmp_path / "b"), init_from="lite.seed")
        trainer = Trainer(tune)
        trainer.start_from("lite.seed")
        start = registry.load("lite.seed").state_dict()
        assert trainer.step == 3 and all(torch.equal(trainer.net.state_dict()[k], v) for k, v in start.items())
        assert not trainer.opt.state_dict()["state"]  # a fresh Adam
        recipe = train(tune, progress=False)["exported"]["recipe"]
        assert [(s["steps"], s["size"], s.get("init_from")) for s in recipe["stages"]] == [
            ([0, 3], 64, None), ([3, 5], 48, "lite.seed")]
        assert recipe["stages"][0]["seconds"] == shipped["recipe"]["train_seconds"]
        assert recipe["stages"][1]["shift_weight"] == 10.0 and recipe["images_seen"] == 5 * cfg.batch
        assert "val_lattice" in registry.info("lite.seed").metrics

        with pytest.raises(CheckpointError, match="adds none"):
            Trainer(replace(tune, steps=5, out_dir=str(tmp_path / "c"))).start_from("lite.seed")
        with pytest.raises(CheckpointError, match="is a lite net"):
            Trainer(replace(tune, arch="full", steps=9, out_dir=str(tmp_path / "d"))).start_from("lite.seed")
        with pytest.raises(registry.StyleError, match="lite.seed"):  # names the known styles
            Trainer(replace(tune, steps=9, out_dir=str(tmp_path / "e"))).start_from("lite.nothing")
    finally:
        del os.environ["STYLECAM_WEIGHTS"]


def test_warmup_ramps_the_learning_rate_so_a_fresh_adam_does_not_jolt_a_trained_net(cfg, tmp_path):
    """Adam's first update moves every weight by about lr whatever its gradient; --warmup scales that down."""
    weights = tmp_path / "weights"
    train(replace(cfg, steps=3, out_dir=str(tmp_path / "a"), weights_dir=str(weights), style_name="seed"), progress=False)
    os.environ["STYLECAM_WEIGHTS"] = str(weights)
    try:
        moved = {}
        for warmup in (0, 10):
            tune = replace(cfg, steps=4, warmup=warmup, init_from="lite.seed", style_name="seed",
                           out_dir=str(tmp_path / f"w{warmup}"), weights_dir=str(tmp_path / f"out{warmup}"))
            result = train(tune, progress=False)
            start, now = registry.load("lite.seed").state_dict(), registry.load("lite.seed", tmp_path / f"out{warmup}").state_dict()
            moved[warmup] = max((now[k].float() - start[k].float()).abs().max().item() for k in start)
            assert result["exported"]["recipe"]["stages"][-1]["warmup"] == warmup
        assert 0.05 < moved[10] / moved[0] < 0.2, moved  # one step at lr/10 against one at lr
        trainer = Trainer(replace(cfg, steps=5, warmup=4, init_from="lite.seed", out_dir=str(tmp_path / "r")))
        trainer.start_from("lite.seed")
        trainer.run(progress=False)
        assert trainer.opt.param_groups[0]["lr"] == pytest.approx(cfg.lr * 2 / 4)  # the run's 2nd step of 4
    finally:
        del os.environ["STYLECAM_WEIGHTS"]


@pytest.mark.parametrize("term", ["shift", "noise"])
def test_the_shift_and_noise_losses_are_training_terms_when_weighted(cfg, tmp_path, term):
    trainer = Trainer(replace(cfg, **{f"{term}_weight": 5.0}, out_dir=str(tmp_path / "run")))
    batch = next(iter(trainer.loader))
    total, terms = trainer.loss(batch)
    assert terms[term] > 0 and ({"shift", "noise"} - {term}).isdisjoint(terms)  # only the weighted one runs
    weighted_sum = (cfg.content_weight * terms["content"] + cfg.style_weight * terms["style"]
                    + cfg.tv_weight * terms["tv"] + 5.0 * terms[term])
    assert float(total.detach()) == pytest.approx(weighted_sum, rel=1e-5)
    assert term not in Trainer(replace(cfg, out_dir=str(tmp_path / "off"))).loss(batch)[1]


def test_a_net_distilled_from_a_teacher_learns_its_output_without_vgg_and_keeps_its_objective(cfg, tmp_path, monkeypatch):
    """--teacher: the net matches a registered net's output; with no perceptual weight a step never runs the
    VGG16 criterion, and the exported recipe keeps the teacher's objective for the quality benchmark."""
    teacher_dir = tmp_path / "teacher"
    train(replace(cfg, out_dir=str(tmp_path / "t"), weights_dir=str(teacher_dir), style_name="seed"), progress=False)
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(teacher_dir))  # the teacher comes from the registry
    student = replace(cfg, steps=30, content_weight=0.0, style_weight=0.0, teacher="lite.seed", teacher_weight=1.0,
                      style_name="student", out_dir=str(tmp_path / "s"), weights_dir=str(tmp_path / "out"))
    trainer = Trainer(student)

    class Counted:  # the VGG16 criterion, counting its uses
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __call__(self, *args, **kwargs):
            self.calls += 1
            return self.inner(*args, **kwargs)

        def content_targets(self, batch):
            self.calls += 1
            return self.inner.content_targets(batch)

    trainer.criterion = counted = Counted(trainer.criterion)
    total, terms = trainer.loss(next(iter(trainer.loader)))
    assert counted.calls == 0 and set(terms) == {"teacher", "tv", "total"}
    assert float(total.detach()) == pytest.approx(terms["teacher"] + cfg.tv_weight * terms["tv"], rel=1e-5)
    assert set(trainer.validate()) >= {"content", "style"} and counted.calls  # validation still scores

    def gap() -> float:
        with torch.no_grad():
            return float(((trainer.net(trainer.val_batch) - trainer.teacher(trainer.val_batch)) ** 2).mean())

    before = gap()
    result = trainer.run(progress=False)
    assert gap() < 0.5 * before  # photos it never trained on
    recipe = trainer.export(result).recipe
    assert recipe["teacher"] == "lite.seed" and recipe["teacher_weight"] == 1.0  # one stage: the top-level fields
    assert recipe["style_weight"] == 0.0 and registry.objective_of(recipe) == registry.objective_of(
        registry.info("lite.seed").recipe) and registry.objective_of(recipe)["style_weight"] == cfg.style_weight


def test_a_teacher_trained_on_another_painting_is_refused(cfg, tmp_path, monkeypatch):
    teacher_dir = tmp_path / "teacher"
    train(replace(cfg, steps=2, out_dir=str(tmp_path / "t"), weights_dir=str(teacher_dir), style_name="seed"), progress=False)
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(teacher_dir))
    other = write_painting(tmp_path / "other.png", 96)
    with pytest.raises(CheckpointError, match="trained on pattern.png, not other.png"):
        Trainer(replace(cfg, style_image=str(other), teacher="lite.seed", teacher_weight=1.0, out_dir=str(tmp_path / "s")))


def test_max_seconds_stops_the_run_and_exports_the_steps_reached(cfg, tmp_path):
    timed = replace(cfg, steps=10_000, max_seconds=1e-3, out_dir=str(tmp_path / "run"), weights_dir=str(tmp_path / "w"),
                    style_name="timed")
    result = train(timed, progress=False)
    assert result["out_of_time"] and result["steps"] == 1  # the check comes after each step
    recipe = result["exported"]["recipe"]
    assert recipe["steps"] == 1 and recipe["images_seen"] == cfg.batch and "max_seconds" not in recipe


def test_auto_precision_is_bf16_only_where_the_hardware_computes_it(monkeypatch):
    from nets import train as train_mod

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert train_mod.resolve_precision("auto", cuda) == "bf16"
    assert train_mod.resolve_precision("fp32", cuda) == "fp32"
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert train_mod.resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    assert train_mod.resolve_precision("bf16", cpu) == "bf16"  # asked for: emulated, but honoured
    with pytest.raises(ValueError, match="Unknown precision 'fp16'"):
        train_mod.resolve_precision("fp16", cpu)


def test_a_bf16_step_moves_the_weights_as_an_fp32_step_does(cfg, tmp_path):
    """bf16 forward passes give the same gradient, to rounding: its direction agrees with fp32's, its size
    too, and the loss it reports is the fp32 loss to within 1%."""
    grads, losses = {}, {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(replace(cfg, precision=precision, out_dir=str(tmp_path / precision)))
        assert trainer.cfg.precision == precision
        torch.manual_seed(1)
        batch = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
        total, terms = trainer.loss(batch)
        total.backward()
        grads[precision] = torch.cat([p.grad.flatten() for p in trainer.net.parameters()])
        losses[precision] = terms["total"]
    cosine = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
    assert cosine > 0.99
    assert 0.9 < grads["bf16"].norm() / grads["fp32"].norm() < 1.1
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.01)
    assert losses["bf16"] != losses["fp32"] and not torch.equal(grads["bf16"], grads["fp32"])  # bf16 did run


def test_the_resolved_precision_is_recorded_and_a_change_is_a_stage(cfg, tmp_path):
    base = replace(cfg, steps=2, precision="fp32", out_dir=str(tmp_path / "run"), weights_dir=str(tmp_path / "weights"),
                   style_name="precise")
    train(base, resume=True, progress=False, export=False)
    result = train(replace(base, steps=4, precision="bf16"), resume=True, progress=False)
    recipe = result["exported"]["recipe"]
    assert recipe["precision"] == "bf16"
    assert [(s["steps"], s["precision"]) for s in recipe["stages"]] == [([0, 2], "fp32"), ([2, 4], "bf16")]


def test_fewer_training_photos_than_batch_is_refused_and_an_empty_epoch_cannot_spin(cfg):
    """DataLoader(drop_last=True) over fewer photos than the batch yields nothing, and `while step < steps:
    for batch in loader` spun there forever at 0%."""
    with pytest.raises(ImageError, match=r"4 training photos after 2 kept for validation, fewer than --batch 5"):
        Trainer(replace(cfg, batch=5))
    loader = torch.utils.data.DataLoader(list(range(3)), batch_size=4, drop_last=True)
    with pytest.raises(ImageError, match="no training batch"):
        next(endless(loader))
    batches = endless([1, 2])
    assert [next(batches) for _ in range(5)] == [1, 2, 1, 2, 1]  # epoch after epoch
