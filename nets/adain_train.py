"""Train the AdaIN decoder of `nets.adain` (Huang & Belongie 2017) on photos and paintings.

    python -m nets.adain_train --styles ../shared/data/styles --content ../shared/data/content_256 \
        --holdout the_scream udnie --steps 4000 --max-seconds 5400

Each step: a batch of photo crops and one of painting crops go through the frozen VGG16 encoder; AdaIN
gives the photos' relu4_1 features the paintings' statistics (t); the decoder paints t; the loss is the
encoder's relu4_1 of that picture against t (content) plus `style_weight` x the mean/std mismatch with
the paintings at relu1_1..relu4_1 (style), each term relative to its target's scale (`nets.adain`).
Optional stability terms, as the per-style trainer has them (`nets.losses`): `--noise-weight` (the photo
with pixel noise painted like the clean photo) and `--shift-weight` (the photo moved off the 8 px stride
grid painted like the same pixels unmoved) and `--warp-weight` (the photo moved by a small sub-pixel
camera motion painted like the painted photo moved the same way); the painting's statistics are held
fixed in all three. And
`--photo-style P`: each batch item's painting is, with probability P, its own photo, so the decoder also
learns to paint a photo's own statistics, which is what `alpha` < 1 blends towards at run time.
`--holdout` paintings are never trained on: the validation scores them apart, which is what "any
painting" is measured by. Checkpoints (git-ignored, under `out_dir`) carry
the Adam state, so rerunning the command resumes; the end of a run (or `--max-seconds`, or Ctrl-C) exports
fp16 weights and `adain.json` into `--weights-dir`, by default `OUT_DIR/export` (runs/adain/export): shipping
a decoder is an explicit copy of those two files into weights/. A run that trained no step exports nothing.
"""
from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors import SafetensorError
from tqdm import tqdm

from nets import adain, registry
from nets.args import Parser, positive
from nets.images import IMAGE_SUFFIXES, ImageError, load_rgb, save_rgb, to_tensor, to_uint8
from nets.losses import noise_loss, shift_loss, warp_loss
from nets.outputs import OutputError, writable
from nets.photos import ContentPhotos, center_crop, endless, split_photos
from nets.signals import terminate_as_interrupt
from nets.train import CheckpointError, checkpoint_tensors, resolve_precision, restore_checkpoint
from nets.vgg import VGG16, VGGWeightsError


@dataclass(frozen=True)
class AdainTrainConfig:
    styles_dir: str
    content_dir: str
    holdout: tuple[str, ...] = ()  # painting file stems never trained on (validated apart)
    size: int = 256  # crop side, photos and paintings
    batch: int = 4
    steps: int = 4000
    lr: float = 1e-4
    lr_decay: float = 5e-5  # lr / (1 + lr_decay * step), as in the paper
    style_weight: float = 10.0
    noise_weight: float = 0.0  # nets.losses.noise_loss on the painted photo: against paint that follows pixel noise
    shift_weight: float = 0.0  # nets.losses.shift_loss: against a texture on the 8 px stride grid
    warp_weight: float = 0.0  # nets.losses.warp_loss: against paint repainted when the picture moves
    photo_style: float = 0.0  # probability that an item's painting is its own photo (alpha's end point)
    hue: float = 0.5  # probability of a random hue rotation of a painting crop (PaintingCrops)
    precision: str = "auto"  # nets.train.resolve_precision: bf16 where the device computes it natively
    val_count: int = 8
    val_every: int = 250
    checkpoint_every: int = 50
    out_dir: str = "runs/adain"
    weights_dir: str = ""  # where to export; default out_dir/export (shipping is a copy into weights/)
    device: str = "cpu"
    threads: int = 0  # torch CPU threads (0: torch's default)
    seed: int = 0
    max_seconds: float = 0.0  # stop after so long and export the steps reached (0: no limit)
    init_from: str = ""  # without a checkpoint: a weights folder whose decoder to continue (a fresh Adam)
    decoder: dict = field(default_factory=lambda: adain.DecoderConfig().to_dict())


class PaintingCrops:
    """Random `size` crops of paintings held in memory: the short side rescaled to 1..2 x size first
    (the paintings' brush strokes at about the scale `adain.STYLE_SIDE` gives them at run time), flips,
    and with probability `hue` a random rotation of the hue: a handful of paintings are a handful of
    palettes, and the decoder is to paint any painting's."""

    def __init__(self, paths: list[Path], size: int, hue: float = 0.0):
        self.images = [load_rgb(p, max_side=1024) for p in paths]
        self.size, self.hue = size, hue

    def sample(self) -> torch.Tensor:
        rgb = random.choice(self.images)
        h, w = rgb.shape[:2]
        scale = random.uniform(1.0, 2.0) * self.size / min(h, w)
        rgb = cv2.resize(rgb, (max(self.size, round(w * scale)), max(self.size, round(h * scale))), interpolation=cv2.INTER_AREA)
        y, x = random.randint(0, rgb.shape[0] - self.size), random.randint(0, rgb.shape[1] - self.size)
        crop = rgb[y:y + self.size, x:x + self.size]
        if random.random() < 0.5:
            crop = crop[:, ::-1]
        if random.random() < self.hue:
            hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2HSV)  # OpenCV's hue: 0..179
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + random.randrange(180)) % 180).astype(np.uint8)
            crop = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255.0)

    def batch(self, n: int) -> torch.Tensor:
        return torch.stack([self.sample() for _ in range(n)])


def split_paintings(styles_dir: Path, holdout: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    paths = sorted(p for p in Path(styles_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    unknown = set(holdout) - {p.stem for p in paths}
    if unknown:
        raise ImageError(f"--holdout names no painting in {styles_dir}: {', '.join(sorted(unknown))}.")
    train = [p for p in paths if p.stem not in holdout]
    if not train:
        raise ImageError(f"{styles_dir} holds no painting to train on (images: {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return train, [p for p in paths if p.stem in holdout]


class DecoderTrainer:
    def __init__(self, cfg: AdainTrainConfig):
        self.device = torch.device(cfg.device)
        self.cfg = cfg = AdainTrainConfig(**{**asdict(cfg), "precision": resolve_precision(cfg.precision, self.device)})
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.out = Path(cfg.out_dir)
        writable(self.out, "--out-dir")
        self.export_dir = Path(cfg.weights_dir) if cfg.weights_dir else self.out / "export"
        photos, val_photos = split_photos(Path(cfg.content_dir), cfg.val_count, cfg.batch)
        self.loader = torch.utils.data.DataLoader(ContentPhotos(photos, cfg.size), batch_size=cfg.batch, shuffle=True,
                                                  drop_last=True, num_workers=0)
        paintings, held_out = split_paintings(Path(cfg.styles_dir), cfg.holdout)
        self.trained_on = [p.stem for p in paintings]
        self.paintings = PaintingCrops(paintings, cfg.size, cfg.hue)
        self.val_photos = torch.stack([to_tensor(center_crop(load_rgb(p), cfg.size))[0] for p in val_photos]).to(self.device)
        self.val_paintings = {"seen": paintings[:2], "held_out": held_out}
        self.encoder = VGG16(adain.STATS_LAYERS).to(self.device, memory_format=torch.channels_last)
        self.decoder = adain.Decoder(adain.DecoderConfig.from_dict(cfg.decoder)).to(self.device, memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr)
        self.bf16 = cfg.precision == "bf16"
        self.step, self.seconds, self.history = 0, 0.0, []
        self.stages: list[dict] = []  # earlier runs of this checkpoint: steps, crop size, batch, lr, seconds
        self.started_from = ""  # set by start_from: this run began from an exported decoder
        self.ckpt_path = self.out / "adain.decoder.ckpt.safetensors"

    @torch.no_grad()
    def target(self, photos: torch.Tensor, stats: adain.StyleStats) -> torch.Tensor:
        """What the decoder is to paint: the photos' relu4_1 features in the paintings' statistics."""
        return adain.adain(getattr(self.encoder(photos), adain.ENCODER_LAYER), stats)

    def loss(self, photos: torch.Tensor, paintings: torch.Tensor, low_precision: bool = True) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16 and low_precision):
            with torch.no_grad():
                style = self.encoder(paintings)
                stats = adain.mean_std(getattr(style, adain.ENCODER_LAYER))
            target = self.target(photos, stats)
            output = self.decoder(target)
            features = self.encoder(output)
            terms = {"content": adain.content_loss(getattr(features, adain.ENCODER_LAYER), target),
                     "style": adain.style_stats_loss(features, style)}
            paint = lambda x: self.decoder(self.target(x, stats))  # noqa: E731 (the net, these paintings fixed)
            if cfg.noise_weight:
                terms["noise"] = noise_loss(paint, photos, output)
            if cfg.shift_weight:
                terms["shift"] = shift_loss(paint, photos, output, adain.ArbitraryConfig.stride)
            if cfg.warp_weight:
                terms["warp"] = warp_loss(paint, photos, output)
        total = terms["content"] + cfg.style_weight * terms["style"]
        for name in ("noise", "shift", "warp"):
            if name in terms:
                total = total + getattr(cfg, f"{name}_weight") * terms[name]
        return {"total": total, **terms}

    def train_step(self, photos: torch.Tensor) -> dict[str, float]:
        for group in self.opt.param_groups:
            group["lr"] = self.cfg.lr / (1.0 + self.cfg.lr_decay * self.step)
        paintings = self.paintings.batch(photos.shape[0])
        if self.cfg.photo_style:
            own = torch.rand(photos.shape[0]) < self.cfg.photo_style
            paintings[own] = photos[own]
        paintings = paintings.to(self.device)
        terms = self.loss(photos.to(self.device).contiguous(memory_format=torch.channels_last),
                          paintings.contiguous(memory_format=torch.channels_last))
        self.opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.opt.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Unweighted content and style loss (fp32) of the first four held-out photos under the first two
        training paintings and under the held-out paintings, and the noise gain: the mean change of the
        picture over the mean change of the photo under pixel noise of std 2 of 255 (fixed seed), as
        `benchmarks.temporal.noise_gain` measures it on video; `own_content`: the content loss of the photos
        painted in their own statistics (alpha 0's picture); also writes a preview grid (rows: paintings)."""
        metrics, rows = {}, []
        photos = self.val_photos[:4]
        noise = torch.randn(photos.shape, generator=torch.Generator().manual_seed(0)).to(self.device) * (2 / 255)
        noisy = (photos + noise).clamp(0, 1)
        in_change = float((noisy - photos).abs().mean())
        for group, paths in self.val_paintings.items():
            terms, gains = [], []
            for path in paths:
                painting = to_tensor(load_rgb(path, max_side=adain.STYLE_SIDE)).to(self.device)
                style = self.encoder(painting)
                stats = adain.mean_std(getattr(style, adain.ENCODER_LAYER))
                row = []
                for photo, noisy_photo in zip(photos, noisy):
                    target = self.target(photo[None], stats)
                    output = self.decoder(target).clamp(0, 1)
                    features = self.encoder(output)
                    terms.append((float(adain.content_loss(getattr(features, adain.ENCODER_LAYER), target)),
                                  float(adain.style_stats_loss(features, style))))
                    gains.append(float((self.decoder(self.target(noisy_photo[None], stats)).clamp(0, 1) - output).abs().mean()))
                    row.append(to_uint8(output))
                rows.append(np.concatenate(row, axis=1))
            if terms:
                metrics[f"{group}_content"] = float(np.mean([t[0] for t in terms]))
                metrics[f"{group}_style"] = float(np.mean([t[1] for t in terms]))
                metrics[f"{group}_noise_gain"] = float(np.mean(gains)) / in_change
        own = getattr(self.encoder(photos), adain.ENCODER_LAYER)
        metrics["own_content"] = float(adain.content_loss(getattr(self.encoder(self.decoder(own).clamp(0, 1)), adain.ENCODER_LAYER), own))
        if rows:
            save_rgb(self.out / "adain.preview.png", np.concatenate(rows, axis=0))
        return metrics

    def save_checkpoint(self) -> None:
        meta = {"config": json.dumps(asdict(self.cfg)), "step": str(self.step), "seconds": str(self.seconds),
                "history": json.dumps(self.history), "stages": json.dumps(self.all_stages())}
        tmp = self.ckpt_path.with_suffix(".tmp")
        registry.write_safetensors(tmp, checkpoint_tensors(self.decoder, self.opt), meta)
        tmp.replace(self.ckpt_path)

    def resume(self) -> bool:
        """Load the checkpoint if there is one (False if not); CheckpointError if it is damaged."""
        if not self.ckpt_path.is_file():
            return False
        try:
            meta = restore_checkpoint(self.decoder, self.opt, self.ckpt_path, self.device)
            self.step, self.seconds = int(meta["step"]), float(meta["seconds"])
            self.history, self.stages = json.loads(meta["history"]), json.loads(meta.get("stages", "[]"))
        except (SafetensorError, OSError, RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"Checkpoint {self.ckpt_path} cannot be resumed ({str(exc).splitlines()[0]}); "
                                  "move it away to start afresh.") from exc
        return True

    def start_from(self) -> bool:
        """Continue the decoder of `cfg.init_from` (a weights folder, e.g. weights/) with a fresh Adam: its
        steps, seconds and stages open this run's, so the learning-rate decay goes on where it stopped."""
        if not self.cfg.init_from:
            return False
        folder = Path(self.cfg.init_from)
        info = adain.decoder_info(folder)
        self.decoder.load_state_dict(adain.load_decoder(folder).state_dict())
        self.step, self.seconds = int(info.get("steps", 0)), float(info.get("train_seconds", 0.0))
        self.stages = [dict(s) for s in info.get("recipe", {}).get("stages", [])]
        self.history = list(info.get("history", []))
        self.started_from = str(folder)
        return True

    def all_stages(self) -> list[dict]:
        first = self.stages[-1]["steps"][1] if self.stages else 0
        now = {"steps": [first, self.step], "size": self.cfg.size, "batch": self.cfg.batch, "lr": self.cfg.lr,
               "style_weight": self.cfg.style_weight, "noise_weight": self.cfg.noise_weight,
               "shift_weight": self.cfg.shift_weight, "warp_weight": self.cfg.warp_weight,
               "photo_style": self.cfg.photo_style, "hue": self.cfg.hue,
               "precision": self.cfg.precision, "device": self.cfg.device,
               "seconds": round(self.seconds - sum(s["seconds"] for s in self.stages), 1)}
        if self.started_from:
            now["init_from"] = self.started_from
        return self.stages + ([now] if self.step > first else [])

    def run(self) -> dict:
        cfg = self.cfg
        resumed = self.resume() or self.start_from()
        writable(self.export_dir, "--weights-dir")  # before the training, not after it
        started, base_seconds = time.time(), self.seconds
        bar = tqdm(total=cfg.steps, initial=self.step, desc="adain decoder", unit="step", dynamic_ncols=True)
        reason, window, batches = "done", [], endless(self.loader)
        try:
            while self.step < cfg.steps:
                terms = self.train_step(next(batches))
                window.append(terms["total"])
                self.step += 1
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in terms.items() if k != "total"})
                if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                    # the training loss's median since the last validation, beside the validation's
                    self.history.append({"step": self.step, "train_loss": float(np.median(window)), **self.validate()})
                    window = []
                if self.step % cfg.checkpoint_every == 0:
                    self.seconds = base_seconds + time.time() - started
                    self.save_checkpoint()
                if self.step >= cfg.steps:
                    break
                if cfg.max_seconds and time.time() - started > cfg.max_seconds:
                    reason = "max_seconds"
                    break
        except KeyboardInterrupt:
            reason = "interrupted"
        finally:
            bar.close()
        if self.step == 0:  # stopped before its first step, nothing before it: a random decoder, not exported
            return {"steps": 0, "stopped": reason}
        self.seconds = base_seconds + time.time() - started
        self.save_checkpoint()
        if not self.history or self.history[-1]["step"] != self.step:
            self.history.append({"step": self.step, **self.validate()})
        folder = self.export_dir
        recipe = {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "weights_dir", "max_seconds", "threads", "steps", "checkpoint_every")}
        recipe |= {"styles_dir": Path(cfg.styles_dir).name, "content_dir": Path(cfg.content_dir).name,
                   "paintings": self.trained_on}
        recipe["stages"] = self.all_stages()
        try:
            info = adain.export_info(self.decoder.cpu(), folder, recipe=recipe, steps=self.step,
                                     train_seconds=round(self.seconds, 1), images_seen=self.step * cfg.batch,
                                     metrics=self.history[-1], history=self.history, resumed=resumed, stopped=reason)
        except (OSError, SafetensorError) as exc:  # a full disk, a folder that changed since the start
            why = getattr(exc, "strerror", None) or exc
            raise OutputError(f"Could not export to {folder} ({why}); the checkpoint {self.ckpt_path} is kept: rerun "
                              "the same command with a writable --weights-dir to export it.") from exc
        return info


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m nets.adain_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", required=True, help="folder of paintings")
    p.add_argument("--content", required=True, help="folder of photos")
    p.add_argument("--holdout", nargs="*", default=[], help="painting file stems never trained on")
    defaults = AdainTrainConfig("", "")
    for name in ("size", "batch", "steps", "val_count", "val_every", "checkpoint_every", "threads", "seed"):
        kind = positive if name in ("batch", "steps", "val_count", "val_every", "checkpoint_every") else int
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(defaults, name))
    for name in ("lr", "lr_decay", "style_weight", "noise_weight", "shift_weight", "warp_weight", "photo_style", "hue",
                 "max_seconds"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--out-dir", default=defaults.out_dir)
    p.add_argument("--weights-dir", default="", help="where to export the decoder (default: OUT_DIR/export); "
                   "shipping it is a copy of its two files into weights/")
    p.add_argument("--init-from", default="", help="without a checkpoint: continue the decoder in this weights "
                   "folder (e.g. weights) with a fresh Adam")
    args = p.parse_args(argv)
    if args.size % 8 or args.size < 16:
        print(f"error: --size must be a multiple of 8 and at least 16, got {args.size}.", file=sys.stderr)
        return 2
    negative = [name for name in ("style_weight", "noise_weight", "shift_weight", "warp_weight") if getattr(args, name) < 0]
    if negative:
        print(f"error: --{negative[0].replace('_', '-')} cannot be negative, got {getattr(args, negative[0])}.", file=sys.stderr)
        return 2
    if not 0.0 <= args.photo_style <= 1.0:
        print(f"error: --photo-style is a probability between 0 and 1, got {args.photo_style}.", file=sys.stderr)
        return 2
    cfg = AdainTrainConfig(styles_dir=args.styles, content_dir=args.content, holdout=tuple(args.holdout),
                           **{k: getattr(args, k) for k in ("size", "batch", "steps", "val_count", "val_every", "checkpoint_every",
                                                            "threads", "seed", "lr", "lr_decay", "style_weight", "noise_weight",
                                                            "shift_weight", "warp_weight", "photo_style", "hue",
                                                            "max_seconds", "precision", "device", "out_dir", "weights_dir",
                                                            "init_from")})
    try:
        with terminate_as_interrupt():  # `kill` and a closed terminal stop it as Ctrl-C does: checkpoint, export
            trainer = DecoderTrainer(cfg)
            info = trainer.run()
    except (ImageError, VGGWeightsError, adain.AdainError, CheckpointError, OutputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not info["steps"]:
        print("error: interrupted before the first step; nothing trained, nothing exported.", file=sys.stderr)
        return 130
    print(f"Decoder: {info['steps']} steps in {info['train_seconds']:.0f} s ({info['stopped']}); "
          f"validation {json.dumps(info['metrics'])}; exported to {trainer.export_dir}")
    return 130 if info["stopped"] == "interrupted" else 0


if __name__ == "__main__":
    raise SystemExit(main())
