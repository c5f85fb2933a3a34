"""Any painting as a style at run time: AdaIN (Huang & Belongie 2017) on our VGG16 encoder.

No training per painting: the encoder (VGG16 up to relu4_1, the ImageNet weights of `nets.vgg`) maps the
photo and the painting to features; adaptive instance normalization gives the photo's features the
painting's per-channel means and standard deviations; a decoder trained by this project
(`nets.adain_train`, weights in `weights/adain.decoder.safetensors`) paints them back into pixels.
Mixing paintings is a weighted average of their statistics: the paper's style interpolation, and exact,
since AdaIN's output is linear in the target mean and standard deviation.

`ArbitraryStyleNet` is called like a `TransformerNet` ((B, 3, H, W) RGB 0..1 in and out, H and W
multiples of `config.stride`), so the real-time stylizer runs it as one more style.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nets import registry
from nets.images import IMAGE_SUFFIXES, load_rgb, resize_max, to_tensor
from nets.vgg import VGG16

ENCODER_LAYER = "relu4_1"
STATS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # the style loss's layers, as in the paper
DECODER_FILE = "adain.decoder.safetensors"
DECODER_INFO = "adain.json"  # recipe, training time, measured metrics, sha256 of the decoder file
STYLE_SIDE = 512  # a painting's longer side when its statistics are measured (the training crops' scale)
EPS = 1e-5


class AdainError(registry.StyleError):
    """The decoder weights are missing or damaged, or a style spec names no usable painting."""


class StyleStats(NamedTuple):
    mean: torch.Tensor  # (1, C, 1, 1)
    std: torch.Tensor  # (1, C, 1, 1)


def mean_std(features: torch.Tensor) -> StyleStats:
    """Per-channel mean and standard deviation over H and W of (B, C, H, W), each (B, C, 1, 1); in fp32."""
    f = features.float()
    mean = f.mean(dim=(2, 3), keepdim=True)
    var = (f - mean).square().mean(dim=(2, 3), keepdim=True)  # plain ops: they export to ONNX as they are
    return StyleStats(mean, (var + EPS).sqrt())


def adain(content: torch.Tensor, style: StyleStats) -> torch.Tensor:
    """The content features with the style's channel statistics (Huang & Belongie, eq. 8)."""
    own = mean_std(content)
    return ((content.float() - own.mean) / own.std * style.std + style.mean).to(content.dtype)


def mix(stats: list[StyleStats], weights: list[float] | None = None) -> StyleStats:
    """The weighted average of several paintings' statistics (weights normalised to sum 1)."""
    weights = weights or [1.0] * len(stats)
    if (len(weights) != len(stats) or not all(np.isfinite(w) and w >= 0 for w in weights) or max(weights) <= 0):
        raise AdainError(f"Mixing weights {weights} do not fit {len(stats)} paintings (finite, non-negative, not all zero).")
    weights = [w / max(weights) for w in weights]  # 1e308 + 1e308 would overflow the sum
    total = float(sum(weights))
    mean = sum(w / total * s.mean for w, s in zip(weights, stats))
    std = sum(w / total * s.std for w, s in zip(weights, stats))
    return StyleStats(mean, std)


@dataclass(frozen=True)
class DecoderConfig:
    # channels after the encoder's 512 at 1/8, then at 1/4, 1/2 and full resolution: the paper's decoder
    # mirrors VGG (256, 256x3, 128x2, 64x2); this one is ~2.5x lighter (6 GMAC at 256x256 against 16),
    # so a 2-core CPU can train it and run it on stills.
    widths: tuple[int, ...] = (256, 128, 64, 32)

    def to_dict(self) -> dict:
        return {"widths": list(self.widths)}

    @classmethod
    def from_dict(cls, d: dict) -> "DecoderConfig":
        return cls(widths=tuple(d["widths"]))


def _conv(cin: int, cout: int, relu: bool = True) -> nn.Sequential:
    layers = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class Decoder(nn.Module):
    """relu4_1 features (B, 512, H/8, W/8) -> RGB (B, 3, H, W), unbounded (the net clamps at inference)."""

    def __init__(self, config: DecoderConfig = DecoderConfig()):
        super().__init__()
        self.config = config
        w = config.widths
        layers = [_conv(512, w[0])]
        for cin, cout in zip(w[:-1], w[1:]):  # each: x2 nearest upsampling, two 3x3 convolutions
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, cout), _conv(cout, cout)]
        layers[-1] = _conv(w[-1], 3, relu=False)  # the last convolution gives the picture
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


@dataclass(frozen=True)
class ArbitraryConfig:
    """What the real-time stylizer reads of a net's config (as of `nets.transformer_net.NetConfig`)."""
    stride: int = 8  # the encoder's three 2x2 max-pools
    margin: int = 0


class ArbitraryStyleNet(nn.Module):
    """Photo (B, 3, H, W) RGB 0..1 -> painted in the given statistics, 0..1. H and W multiples of 8."""

    def __init__(self, encoder: VGG16, decoder: Decoder, style: StyleStats, name: str = "painting", alpha: float = 1.0):
        """`alpha`: the paper's content-style trade-off, in feature space: 1 paints the AdaIN target, 0 the
        photo's own features (the decoder's reconstruction of the photo), between them a blend."""
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise AdainError(f"The style alpha must be between 0 and 1, got {alpha}.")
        self.config, self.name, self.alpha = ArbitraryConfig(), name, float(alpha)
        self.encoder, self.decoder = encoder, decoder
        self.register_buffer("style_mean", style.mean.float())
        self.register_buffer("style_std", style.std.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = getattr(self.encoder(x), ENCODER_LAYER)
        target = adain(features, StyleStats(self.style_mean, self.style_std))
        if self.alpha < 1.0:
            target = torch.lerp(features, target, self.alpha)
        return self.decoder(target).clamp(0.0, 1.0)


def painting_stats(encoder: VGG16, painting: torch.Tensor) -> StyleStats:
    """(1, 3, H, W) 0..1 -> the painting's relu4_1 statistics (fp32, on the painting's device)."""
    with torch.no_grad():
        return mean_std(getattr(encoder(painting), ENCODER_LAYER))


def load_decoder(folder: Path | None = None) -> Decoder:
    """The trained decoder, checked against its sha256 and loaded strictly (fp32, CPU, eval mode)."""
    folder = Path(folder or registry.weights_dir())
    info_path, path = folder / DECODER_INFO, folder / DECODER_FILE
    if not info_path.is_file() or not path.is_file():
        raise AdainError(f"No AdaIN decoder in {folder} ({DECODER_FILE} and {DECODER_INFO}); "
                         "train one with: python -m nets.adain_train --styles PAINTINGS --content PHOTOS")
    info = decoder_info(folder)
    try:
        config = DecoderConfig.from_dict(info["decoder"])
    except (KeyError, TypeError) as exc:
        raise AdainError(f"{info_path} is damaged (no decoder layout: {exc}); restore it with git checkout.") from exc
    if registry.sha256(path) != info.get("sha256"):
        raise AdainError(f"{path} does not match its sha256 in {info_path} (corrupt or replaced).")
    state = registry.load_state(path)
    decoder = Decoder(config)
    mismatch = registry.state_mismatch(state, decoder)  # torch's message lists every tensor, over many lines
    if mismatch:
        raise AdainError(f"{path} does not fit the decoder: {mismatch}.")
    decoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return decoder.eval()


def decoder_info(folder: Path | None = None) -> dict:
    """The decoder's `adain.json` ({} when there is none); AdainError in one line when it is damaged."""
    path = Path(folder or registry.weights_dir()) / DECODER_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise AdainError(f"{path} is damaged ({exc}); restore it with git checkout.") from exc
    if not isinstance(info, dict):
        raise AdainError(f"{path} is damaged (not a JSON object); restore it with git checkout.")
    return info


def _names_painting(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES or os.path.isfile(path)


def _weighed(part: str) -> tuple[Path, float] | None:
    """`PATH` or `PATH@WEIGHT` -> (path, weight); None unless it names a painting (an image suffix or a
    file). '@' belongs to the name unless a number follows it (scan@2x.png is a file name)."""
    path, at, weight = part.rpartition("@")
    if at and not os.path.isfile(part) and _names_painting(path):
        try:
            value = float(weight)
        except ValueError:
            if Path(part).suffix.lower() not in IMAGE_SUFFIXES:
                raise AdainError(f"The mixing weight {weight!r} after {path} is not a number (A.jpg@0.7+B.jpg@0.3).") from None
        else:
            if not np.isfinite(value):
                raise AdainError(f"The mixing weight {weight!r} after {path} is not a finite number.")
            return Path(path), value
    return (Path(part), 1.0) if _names_painting(part) else None


def _existing(run: str) -> tuple[Path, float] | None:
    """`_weighed(run)` when it names an existing file, else None (an invalid weight too: a shorter run may be meant)."""
    try:
        weighed = _weighed(run)
    except AdainError:
        return None
    return weighed if weighed and weighed[0].is_file() else None


def parse_spec(spec: str) -> list[tuple[Path, float]]:
    """A style given as paintings: `PATH`, or several mixed, `A.jpg+B.jpg`, or weighed, `A.jpg@0.7+B.jpg@0.3`.
    [] when `spec` is no such thing (a registered style's name): every part must end in an image suffix or
    be a file. File names may hold '+' and '@' (my+painting.jpg, scan@2x.png): from each part on, the
    longest run of '+'-joined pieces that is an existing file wins, else the shortest that names a
    painting. The files' existence is checked when the net is built (`from_spec`)."""
    if os.path.isfile(spec):
        return [(Path(spec), 1.0)]
    pieces, parts, i = spec.split("+"), [], 0
    while i < len(pieces):
        runs = ["+".join(pieces[i:j]) for j in range(i + 1, len(pieces) + 1)]
        found = next(((k, w) for k, w in reversed(list(enumerate(map(_existing, runs)))) if w), None)
        found = found or next(((k, w) for k, w in enumerate(map(_weighed, runs)) if w), None)
        if found is None:
            if parts and not pieces[i]:
                raise AdainError(f"{spec!r} has an empty part: mix paintings as A.jpg+B.jpg.")
            return []
        parts.append(found[1])
        i += found[0] + 1
    return parts


def is_painting_spec(spec: str) -> bool:
    return bool(parse_spec(spec))


def spec_name(spec: str) -> str:
    """A short display name: the paintings' file stems joined by '+'."""
    return "+".join(p.stem for p, _ in parse_spec(spec)) or spec


def from_images(images: list[np.ndarray], weights: list[float] | None = None, *, name: str = "painting",
                decoder: Decoder | None = None, encoder: VGG16 | None = None,
                style_side: int = STYLE_SIDE, alpha: float = 1.0) -> ArbitraryStyleNet:
    """An `ArbitraryStyleNet` painting in the (mixed) statistics of uint8 RGB paintings, each measured at a
    longer side of `style_side` (fp32, CPU, eval). AdainError without a decoder, VGGWeightsError without VGG16."""
    encoder = encoder or VGG16((ENCODER_LAYER,))
    decoder = decoder or load_decoder()
    stats = [painting_stats(encoder, to_tensor(resize_max(image, style_side))) for image in images]
    return ArbitraryStyleNet(encoder, decoder, mix(stats, weights), name=name, alpha=alpha).eval()


def from_paintings(paintings: list[tuple[Path, float]], **kwargs) -> ArbitraryStyleNet:
    """`from_images` of painting files with their mixing weights; ImageError for an unreadable one."""
    side = kwargs.get("style_side", STYLE_SIDE)  # a scan over 40 MP is read at a fraction, not refused
    images = [load_rgb(path, max_side=side) for path, _ in paintings]  # an unreadable one fails before any model loads
    return from_images(images, [w for _, w in paintings], name="+".join(p.stem for p, _ in paintings), **kwargs)


def from_spec(spec: str, **kwargs) -> ArbitraryStyleNet:
    paintings = parse_spec(spec)
    if not paintings:
        raise AdainError(f"{spec!r} names no painting file (give a path, or A.jpg+B.jpg to mix, A.jpg@0.7+B.jpg@0.3 to weigh).")
    missing = [str(p) for p, _ in paintings if not p.is_file()]
    if missing:
        raise AdainError(f"Painting file not found: {', '.join(missing)}.")
    return from_paintings(paintings, **kwargs)


def export_info(decoder: Decoder, folder: Path, **meta) -> dict:
    """Save `decoder` as fp16 safetensors and its info JSON (sha256, config, `meta`) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DECODER_FILE
    state = {k: v.detach().half().contiguous().cpu() for k, v in decoder.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    registry.write_safetensors(tmp, state, {"name": "adain.decoder", "encoder": f"VGG16 ImageNet to {ENCODER_LAYER}"})
    tmp.replace(path)
    info = {"file": DECODER_FILE, "sha256": registry.sha256(path), "decoder": decoder.config.to_dict(),
            "encoder": f"VGG16 ImageNet (nets.vgg) to {ENCODER_LAYER}", "input_range": "RGB 0..1 in, RGB 0..1 out", **meta}
    (folder / DECODER_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return info


def style_stats_loss(output_features, style_features) -> torch.Tensor:
    """Sum over layers of (MSE of the channel means + MSE of the channel standard deviations), each layer
    over its target's own mean square: relative, about 1 per layer for unrelated statistics. Caffe VGG16's
    layers differ ~100x in scale (relu1_1's statistics, the colours, against relu3_1's); the paper's VGG19
    was normalised so they do not, and absolute terms here left the colours to 1% of the loss."""
    total = 0.0
    for out, ref in zip(output_features, style_features):
        a, b = mean_std(out), mean_std(ref)
        scale = (b.mean.square().mean() + b.std.square().mean()).clamp_min(1e-6)
        total = total + (F.mse_loss(a.mean, b.mean) + F.mse_loss(a.std, b.std)) / scale
    return total


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE of relu4_1 against the AdaIN target over the target's mean square (about 1 when unrelated)."""
    target = target.float()
    return F.mse_loss(features.float(), target) / target.square().mean().clamp_min(1e-6)
