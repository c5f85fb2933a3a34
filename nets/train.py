"""Train a feed-forward style network for one painting (Johnson et al. 2016).

Random crops of content photos go through the network; the VGG16 perceptual criterion compares the
output with the photo (content) and the painting (style Grams, computed once). Checkpoints are
safetensors (model + Adam state + JSON metadata) so a run resumes after an interrupt; the end of a run
exports fp16 weights and a manifest entry through `nets.registry`. What can be found before training is
(`nets.outputs.check_outputs`): an unwritable folder, a damaged manifest, a name another run registered.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from nets import registry
from nets.images import load_rgb, save_rgb, to_tensor, to_uint8
from nets.losses import PerceptualCriterion, noise_loss, shift_loss, stride_lattice, tv_loss
from nets.outputs import OutputError, check_outputs, checkpoint_path, export_folder
from nets.photos import ContentPhotos, center_crop, endless, split_photos
from nets.transformer_net import ARCHS, TransformerNet
from nets.vgg import VGG16

log = logging.getLogger(__name__)
CREDITS = ("painting", "artist", "year", "licence")  # manifest metadata, not part of the recipe


class CheckpointError(RuntimeError):
    """A training checkpoint (or an --init-from style) that exists but cannot be resumed from."""


# The recipe fields a resumed run may change (a later stage at a larger crop, a lower lr, ...): each
# stretch of steps trained with one setting of them is recorded as a stage in the exported recipe.
STAGE_FIELDS = ("size", "style_size", "batch", "lr", "warmup", "content_weight", "style_weight", "tv_weight",
                "shift_weight", "noise_weight", "teacher", "teacher_weight", "device", "precision")
# Fields added later: what stages recorded before them trained with (every earlier stage ran fp32 on a CPU).
# "margin" is the net's (`NetConfig.margin`, the lite net's 8 px since the border fix), recorded per stage too.
STAGE_DEFAULTS = {"shift_weight": 0.0, "noise_weight": 0.0, "precision": "fp32", "margin": 0, "warmup": 0,
                  "teacher": "", "teacher_weight": 0.0}
PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 convolutions in hardware: CUDA does; a CPU with AVX512-BF16 or AMX
    does (oneDNN), one without emulates them, slower than fp32."""
    if device.type == "cuda":
        return True
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(probe() for probe in probes if probe is not None)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision of the training step's forward passes (the VGG16 loss network above all): "auto" is
    bf16 where the device computes it in hardware, else fp32. The weights, Adam and the Grams stay fp32.
    Measured on a 2-core AMD EPYC with AVX512-BF16, one lite step at 256 px (batch 4, shift loss, one
    thread, `stylecam train`): 8.1 s fp32, 4.0 s bf16; validation after 10 steps equal to 0.1%."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; known: {', '.join(PRECISIONS)}.")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def stage_of(cfg: "TrainConfig", first: int, last: int, seconds: float | None) -> dict:
    return {"steps": [first, last], **{k: getattr(cfg, k) for k in STAGE_FIELDS}, "margin": ARCHS[cfg.arch].margin,
            "seconds": seconds}


@dataclass(frozen=True)
class TrainConfig:
    style_image: str
    content_dir: str
    arch: str = "lite"
    style_name: str = ""  # default: the style image's file stem
    size: int = 256  # training crop side
    style_size: int = 512  # longer side of the painting when its Grams are computed
    batch: int = 4
    steps: int = 2000
    lr: float = 1e-3
    # steps over which this run's learning rate rises linearly to `lr`. A fresh Adam's first steps move
    # every weight by about `lr` whatever its gradient; a trained net (--init-from) is set back for tens
    # of steps (docs/styles.md).
    warmup: int = 0
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e-2
    shift_weight: float = 0.0  # nets.losses.shift_loss: against textures locked to the net's stride grid
    noise_weight: float = 0.0  # nets.losses.noise_loss: against strokes that change with pixel noise (flicker)
    # distillation: a registered net of the same painting (e.g. full.NAME for a lite net) whose output this
    # net learns to match, mean squared difference of 0..1 pixels. With content and style weight 0 the VGG16
    # criterion is skipped in training steps (validation still scores it): ~4x cheaper steps (docs/styles.md).
    teacher: str = ""
    teacher_weight: float = 0.0
    precision: str = "auto"  # of the training step's forward passes (resolve_precision); validation runs fp32
    content_layers: tuple[str, ...] = ("relu2_2",)
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    val_count: int = 8
    val_size: int = 256
    val_every: int = 250
    checkpoint_every: int = 100
    out_dir: str = "runs/train"
    weights_dir: str = ""  # where to export; default the registry's folder
    device: str = "cpu"
    seed: int = 0
    init_from: str = ""  # a registered style (arch.style) to start from when there is no checkpoint
    max_seconds: float = 0.0  # stop this run after so many seconds and export the steps reached (0: no limit)
    painting: str = ""  # these four override the style's entry in weights/paintings.json at export
    artist: str = ""
    year: str = ""
    licence: str = ""

    @property
    def name(self) -> str:
        return self.style_name or Path(self.style_image).stem


def load_teacher(cfg: TrainConfig, device: torch.device) -> TransformerNet:
    """The registered net `cfg.teacher`, frozen, for distillation; CheckpointError if it was trained on
    another painting (its output is not this style's)."""
    entry = registry.info(cfg.teacher)  # an unknown name: StyleError listing the known ones
    painting = entry.recipe.get("style_image", "")
    if painting and painting != Path(cfg.style_image).name:
        raise CheckpointError(f"--teacher {entry.name} was trained on {painting}, not {Path(cfg.style_image).name}; "
                              "use a net of the same painting.")
    teacher = registry.load(entry.name).to(device, memory_format=torch.channels_last).eval()
    return teacher.requires_grad_(False)


def checkpoint_tensors(net: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The net's weights ("net.NAME") and Adam's state ("opt.PARAM.KEY") as CPU tensors for safetensors."""
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous().reshape(-1) if k == "step" else v.detach().cpu().contiguous()
    return tensors


def restore_checkpoint(net: torch.nn.Module, opt: torch.optim.Optimizer, path: Path, device: torch.device) -> dict:
    """Load a checkpoint file written from `checkpoint_tensors` into `net` (strictly) and `opt`; returns its
    metadata. Raises what safetensors, torch or a missing key raise: the callers word their one line."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
    opt_state = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, k = key.split(".", 2)
            opt_state["state"].setdefault(int(i), {})[k] = v.reshape(()) if k == "step" else v.to(device)
    opt.load_state_dict(opt_state)
    return meta


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.device = torch.device(cfg.device)
        self.cfg = cfg = replace(cfg, precision=resolve_precision(cfg.precision, self.device))  # recorded resolved
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.style_rgb = load_rgb(cfg.style_image, max_side=cfg.style_size)
        train_paths, val_paths = split_photos(Path(cfg.content_dir), cfg.val_count, cfg.batch)
        self.loader = torch.utils.data.DataLoader(ContentPhotos(train_paths, cfg.size), batch_size=cfg.batch,
                                                  shuffle=True, drop_last=True, num_workers=0)
        self.val_batch = torch.stack([to_tensor(center_crop(load_rgb(p), cfg.val_size))[0] for p in val_paths]).to(self.device)
        # channels_last: oneDNN's and cuDNN's fast layout for these convolutions (CPU fp32 too: 5.2 -> 3.9 s
        # a lite step on two threads here).
        vgg = VGG16(tuple(dict.fromkeys(cfg.content_layers + cfg.style_layers))).to(self.device, memory_format=torch.channels_last)
        self.criterion = PerceptualCriterion(vgg, to_tensor(self.style_rgb).to(self.device), cfg.content_layers, cfg.style_layers)
        self.net = TransformerNet(ARCHS[cfg.arch]).to(self.device, memory_format=torch.channels_last)
        self.teacher = load_teacher(cfg, self.device) if cfg.teacher else None
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.bf16 = cfg.precision == "bf16"  # bf16 keeps fp32's exponent range: no loss scaling
        self.step, self.history = 0, []
        self.stages: list[dict] = []  # the finished stages before this run (from the checkpoint)
        self.run_start_step, self.run_started = 0, time.time()
        self.started_from = ""  # set by start_from: this run began from a registered style's weights
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = checkpoint_path(cfg)

    def loss(self, batch: torch.Tensor, low_precision: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        # a distillation step with no perceptual weight skips VGG16; validation (fp32) always scores it
        perceptual = cfg.content_weight or cfg.style_weight or not low_precision
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16 and low_precision):
            targets = self.criterion.content_targets(batch) if perceptual else None
            output = self.net(batch)
            terms = self.criterion(output, targets) if perceptual else {"tv": tv_loss(output)}
            if self.teacher is not None:
                with torch.no_grad():
                    expected = self.teacher(batch)
                terms["teacher"] = F.mse_loss(output.float(), expected.float())
            if cfg.shift_weight:
                terms["shift"] = shift_loss(self.net, batch, output, self.net.config.stride)
            if cfg.noise_weight:
                terms["noise"] = noise_loss(self.net, batch, output)
        weights = {"content": cfg.content_weight, "style": cfg.style_weight, "tv": cfg.tv_weight,
                   "shift": cfg.shift_weight, "noise": cfg.noise_weight, "teacher": cfg.teacher_weight}
        total = sum(weights[k] * term for k, term in terms.items())
        return total, {k: float(v.detach()) for k, v in terms.items()} | {"total": float(total.detach())}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Unweighted content and style loss on the fixed validation photos, in fp32 whatever the training's
        precision (comparable across stages); also writes a preview."""
        terms = [self.loss(img[None], low_precision=False)[1] for img in self.val_batch]
        metrics = {k: float(np.mean([t[k] for t in terms])) for k in ("content", "style", "tv")}
        outs = [self.net(img[None]) for img in self.val_batch]
        metrics["lattice"] = float(np.mean([float(stride_lattice(o, self.net.config.stride)) for o in outs]))
        outs = [to_uint8(o) for o in outs[:4]]
        save_rgb(self.out / f"{self.cfg.arch}.{self.cfg.name}.preview.png", np.concatenate(outs, axis=1))
        return metrics

    def save_checkpoint(self) -> None:
        tensors = checkpoint_tensors(self.net, self.opt)
        meta = {"config": json.dumps(asdict(self.cfg)), "step": str(self.step), "history": json.dumps(self.history),
                "stages": json.dumps(self.all_stages())}
        tmp = self.ckpt_path.with_suffix(".tmp")
        registry.write_safetensors(tmp, tensors, meta)
        tmp.replace(self.ckpt_path)

    def all_stages(self) -> list[dict]:
        """The finished stages and this run's steps so far; a resume with an unchanged recipe extends the
        last stage instead of starting a new one."""
        now = stage_of(self.cfg, self.run_start_step, self.step, round(time.time() - self.run_started, 1))
        if self.started_from:  # its own stage even with an unchanged recipe: Adam started afresh here
            now["init_from"] = self.started_from
        stages = [dict(x) for x in self.stages]
        if self.step == self.run_start_step:
            return stages
        last = stages[-1] if stages else None
        same_recipe = last and all(last.get(k, STAGE_DEFAULTS.get(k)) == now[k] for k in (*STAGE_FIELDS, "margin"))
        if same_recipe and not self.started_from and last["steps"][1] == now["steps"][0]:
            seconds = None if last["seconds"] is None else round(last["seconds"] + now["seconds"], 1)
            last.update(steps=[last["steps"][0], now["steps"][1]], seconds=seconds)
        else:
            stages.append(now)
        return stages

    def resume(self) -> bool:
        """Load the checkpoint if there is one (False if not); CheckpointError if it is damaged."""
        if not self.ckpt_path.is_file():
            return False
        try:
            meta = restore_checkpoint(self.net, self.opt, self.ckpt_path, self.device)
            self.step, self.history = int(meta["step"]), json.loads(meta["history"])
            if "stages" in meta:
                self.stages = json.loads(meta["stages"])
            else:  # a checkpoint from before stages were recorded: one stage, its recipe from its config
                old = TrainConfig(**{k: v for k, v in json.loads(meta["config"]).items() if k in TrainConfig.__dataclass_fields__})
                self.stages = [stage_of(old, 0, self.step, None)] if self.step else []
            self.run_start_step = self.step
        except (SafetensorError, OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:  # damaged or foreign
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"Checkpoint {self.ckpt_path} cannot be resumed ({why}); "
                                  "delete it, or rerun with --no-resume to start over.") from exc
        return True

    def start_from(self, name: str) -> None:
        """Start from the weights of registered style `name`, with a fresh Adam state: a fine-tune of
        shipped weights whose checkpoint stayed on the machine that trained them. Its recorded stages
        open this run's recipe, and the step count goes on from its steps."""
        entry = registry.info(name)  # an unknown name: StyleError listing the known ones
        recipe = entry.recipe
        if entry.arch != self.cfg.arch:
            raise CheckpointError(f"--init-from {name} is a {entry.arch} net; this run trains a {self.cfg.arch} net.")
        if recipe.get("steps", 0) >= self.cfg.steps:
            raise CheckpointError(f"{name} has trained {recipe.get('steps', 0)} steps already; "
                                  f"--steps {self.cfg.steps} adds none (give the total, e.g. --steps {recipe.get('steps', 0) + 200}).")
        self.net.load_state_dict(registry.load(name).state_dict(), strict=True)
        self.step = self.run_start_step = int(recipe.get("steps", 0))
        single = {"steps": [0, self.step], **{k: recipe.get(k, STAGE_DEFAULTS.get(k)) for k in (*STAGE_FIELDS, "margin")},
                  "seconds": recipe.get("train_seconds")}
        self.stages = [dict(x) for x in recipe.get("stages", [single] if self.step else [])]
        self.started_from = name

    def run(self, progress: bool = True) -> dict:
        from tqdm import tqdm

        cfg, started = self.cfg, time.time()
        self.run_start_step, self.run_started = self.step, started
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc=f"train {cfg.arch}.{cfg.name}", unit="step")
        out_of_time, batches = False, endless(self.loader)
        try:
            while self.step < cfg.steps and not out_of_time:
                batch = next(batches).to(self.device, memory_format=torch.channels_last, non_blocking=True)
                if cfg.warmup:
                    for group in self.opt.param_groups:
                        group["lr"] = cfg.lr * min(1.0, (self.step - self.run_start_step + 1) / cfg.warmup)
                total, terms = self.loss(batch)
                self.opt.zero_grad(set_to_none=True)
                total.backward()
                self.opt.step()
                self.step += 1
                self.history.append({"step": self.step, **{k: round(v, 6) for k, v in terms.items()}})
                bar.update(1)
                bar.set_postfix({k: f"{terms[k]:.3g}" for k in ("content", "style", "teacher") if k in terms})
                if not math.isfinite(terms["total"]):
                    raise FloatingPointError(f"Training diverged at step {self.step} (loss {terms['total']}); lower --lr.")
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.step % cfg.val_every == 0:
                    self.history[-1]["val"] = self.validate()
                out_of_time = bool(cfg.max_seconds) and time.time() - started >= cfg.max_seconds
        finally:
            bar.close()
            self.save_checkpoint()  # an interrupt keeps every step done so far
            plot_losses(self.history, self.out / f"{cfg.arch}.{cfg.name}.loss.png")
        elapsed = time.time() - started
        metrics = self.validate()
        new_steps = self.step - self.run_start_step  # this run's
        result = {"val": metrics, "steps": self.step, "new_steps": new_steps, "seconds": round(elapsed, 1),
                  "images_per_s": round(new_steps * cfg.batch / max(elapsed, 1e-9), 3), "out_of_time": out_of_time}
        (self.out / f"{cfg.arch}.{cfg.name}.metrics.json").write_text(json.dumps(result, indent=2))
        return result

    def export(self, result: dict) -> registry.StyleInfo:
        cfg = self.cfg
        paintings = json.loads((registry.WEIGHTS_DIR / "paintings.json").read_text())
        credits = paintings.get(cfg.name, {}) | {k: getattr(cfg, k) for k in CREDITS if getattr(cfg, k)}
        recipe = {k: v for k, v in asdict(self.cfg).items()
                  if k not in ("content_dir", "out_dir", "weights_dir", "style_image", "max_seconds", *CREDITS)}
        stages = self.all_stages()
        seconds = [x["seconds"] for x in stages]
        recipe |= {"style_image": Path(cfg.style_image).name, "device": str(self.device), "steps": self.step,
                   "train_seconds": round(sum(seconds), 1) if stages and None not in seconds else result["seconds"],
                   "images_seen": sum((x["steps"][1] - x["steps"][0]) * x["batch"] for x in stages) or self.step * cfg.batch}
        if cfg.teacher and not (cfg.content_weight or cfg.style_weight):  # distilled: the teacher's goal is its goal
            recipe["objective"] = registry.objective_of(registry.info(cfg.teacher).recipe)
        if len(stages) > 1:  # trained in stages (resumed with another recipe): the top-level fields are the last one's
            recipe["stages"] = stages
        metrics = {"val_content": round(result["val"]["content"], 5), "val_style": round(result["val"]["style"], 5),
                   "val_lattice": round(result["val"]["lattice"], 5), "val_size": cfg.val_size, "val_count": cfg.val_count}
        return registry.register(self.net.cpu(), cfg.arch, cfg.name, export_folder(cfg), recipe=recipe, metrics=metrics,
                                 **credits)


def plot_losses(history: list[dict], path: Path) -> None:
    if not history:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("content", "style", "teacher", "total"):
        points = [(h["step"], h[key]) for h in history if key in h]  # a distillation stage logs no content
        if points:
            ax.plot(*zip(*points), label=key, linewidth=0.8)
    val = [(h["step"], h["val"]["style"]) for h in history if "val" in h]
    if val:
        ax.plot(*zip(*val), "o", label="val style")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True, export: bool = True,
          replace: bool = False) -> dict:
    check_outputs(cfg, resume, export, replace)
    trainer = Trainer(cfg)
    if resume and trainer.resume():
        log.info("resumed %s at step %d", trainer.ckpt_path, trainer.step)
    elif cfg.init_from:
        trainer.start_from(cfg.init_from)
        log.info("starting from %s at step %d (fresh optimizer state)", cfg.init_from, trainer.step)
    result = trainer.run(progress)
    if export:
        try:
            result["exported"] = asdict(trainer.export(result))
        except OSError as exc:  # a full disk, a folder that changed since check_outputs
            raise OutputError(f"Could not export to {export_folder(cfg)} ({exc.strerror or exc}); the checkpoint "
                              f"{trainer.ckpt_path} is kept: rerun the same command with a writable --weights-dir "
                              "to export it.") from exc
    return result
