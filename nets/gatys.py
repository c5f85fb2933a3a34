"""Optimization-based style transfer for stills (Gatys et al., "Image Style Transfer Using
Convolutional Neural Networks", CVPR 2016).

The output's pixels are the parameters. L-BFGS (as in the paper) or Adam minimise
content_weight * content + style_weight * style + tv_weight * tv, measured by the same
`nets.losses.PerceptualCriterion` that trains the feed-forward nets, so the numbers are comparable
(each term is relative: ~1 for an unrelated image, 0 for a match).

Large images go coarse-to-fine: optimise at a small scale, upsample, continue at twice the size
(Gatys et al., "Controlling Perceptual Factors in Neural Style Transfer", CVPR 2017): the coarse
level settles the large structures cheaply, the fine levels add the brush strokes.

A mask (H, W) in 0..1, 1 = stylize, does two things: the style statistics are measured only inside
it (masked Grams, `nets.losses.gram`), and the image is parameterised as
mask * free + (1 - mask) * content, so pixels outside the mask stay the content by construction.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nets.images import ImageError, resize_max, save_rgb, to_tensor, to_uint8
from nets.losses import PerceptualCriterion
from nets.vgg import LAYER_NAMES, VGG16, min_side

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
BOUNDS_WEIGHT = 1e3  # out-of-range penalty: overshoots stay ~0.01, so the final clamp changes little
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}  # Adam: pixels are 0..1, 0.02 ~ 5 grey levels per step


@dataclass(frozen=True)
class GatysConfig:
    size: int = 512  # longer side of the output; the content is never upscaled
    style_size: int = 512  # longer side of the painting when the output is at its final size
    optimizer: str = "lbfgs"
    steps: int = 200  # iterations at the coarsest level
    fine_steps: int = 100  # iterations at each finer level
    lr: float = 0.0  # 0 = the optimizer's default (DEFAULT_LR)
    content_layers: tuple[str, ...] = ("relu2_2",)  # relu2_2 keeps detail; conv4_2 (paper) frees layout
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: tuple[float, ...] = ()  # one per style layer, multiplies its relative loss; () = equal
    content_weight: float = 1.0  # content/style ratio = content_weight / style_weight
    style_weight: float = 10.0
    tv_weight: float = 1e-2
    init: str = "content"
    coarse_size: int = 256  # levels double from here up to `size`; 0 = a single level
    lbfgs_history: int = 20  # L-BFGS memory: 2 x history copies of the image (20 -> ~200 MB at 1024 px)
    seed: int = 0

    def __post_init__(self):
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {', '.join(INITS)}, not {self.init!r}")
        for what, layers in (("content", self.content_layers), ("style", self.style_layers)):
            unknown = [n for n in layers if n not in LAYER_NAMES]
            if not layers or unknown:
                problems.append(f"{what} layers must be non-empty VGG16 layers (e.g. relu2_2), got {list(layers)}")
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            problems.append(f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style layers")
        if min(self.size, self.style_size) < 16 or self.steps < 1 or self.fine_steps < 0 or not 0 <= self.lr < float("inf"):
            problems.append("size and style_size must be >= 16, steps >= 1, fine_steps and lr >= 0")
        if problems:
            raise ValueError("Invalid Gatys settings: " + "; ".join(problems) + ".")

    def levels(self, side: int) -> tuple[int, ...]:
        """Longer sides of the levels for an output whose longer side is `side`, coarse to fine."""
        if not self.coarse_size or self.coarse_size >= side:
            return (side,)
        sizes = [self.coarse_size]
        while sizes[-1] * 2 < side:
            sizes.append(sizes[-1] * 2)
        return (*sizes, side)

    @property
    def learning_rate(self) -> float:
        return self.lr or DEFAULT_LR[self.optimizer]


@dataclass
class GatysResult:
    image: np.ndarray  # uint8 (H, W, 3) RGB
    history: list[dict]  # one record per iteration: step, level, size, content, style, tv, total
    metrics: dict = field(default_factory=dict)


def _as_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool, uint8 (0/1 or 0..255) or float (0..1), (H, W) like the content -> float32 (H, W) 0..1."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape != shape:
        raise ValueError(f"Mask shape {mask.shape} does not match the content image {shape}.")
    if mask.dtype == np.uint8 and mask.max() > 1:
        return mask.astype(np.float32) / 255.0
    return np.clip(mask.astype(np.float32), 0.0, 1.0)


def _check_fits(what: str, image: torch.Tensor, layers: tuple[str, ...]) -> None:
    """ImageError when `image` (1, 3, h, w), as it enters VGG16, is too small for the deepest of `layers`."""
    h, w = image.shape[-2:]
    need = min_side(layers)
    if min(h, w) < need:
        deepest = max(layers, key=LAYER_NAMES.index)
        raise ImageError(f"The {what} is {w}x{h} px at this level; VGG16 layer {deepest} needs at least {need} px on "
                         f"each side. Use a larger image, a larger --size, --style-size or --coarse-size (0 = one "
                         f"level), or shallower layers (e.g. --style-layers relu1_1,relu2_1,relu3_1).")


def _weighted(cfg: GatysConfig, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return cfg.content_weight * terms["content"] + cfg.style_weight * terms["style"] + cfg.tv_weight * terms["tv"]


def _resize_to(t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(t, size=hw, mode="bilinear", align_corners=False)  # (B, C, h, w)


def run(content: np.ndarray, style: np.ndarray, cfg: GatysConfig = GatysConfig(), device: str | torch.device = "cpu",
        mask: np.ndarray | None = None, vgg: VGG16 | None = None, progress: bool = True,
        keep_on_interrupt: bool = False) -> GatysResult:
    """Stylize uint8 (H, W, 3) RGB `content` with `style`. `mask` (H, W) of the content: 1 = stylize.
    `vgg` may be passed to reuse one loaded network (it must provide the configured layers).
    `keep_on_interrupt`: Ctrl-C after the first iteration returns the image so far (at full size,
    metrics["interrupted"] True) instead of raising KeyboardInterrupt; callers that need a finished
    optimization (the quality ceiling) leave it off."""
    from tqdm import tqdm

    started = time.perf_counter()
    device = torch.device(device)
    mask01 = None if mask is None else _as_mask(mask, content.shape[:2])
    content = resize_max(content, cfg.size)
    h, w = content.shape[:2]
    side = max(h, w)
    layers = tuple(dict.fromkeys(cfg.content_layers + cfg.style_layers))
    if vgg is None:
        vgg = VGG16(layers).to(device)
    elif set(layers) - set(vgg.layers):
        raise ValueError(f"The VGG16 passed in lacks layers {sorted(set(layers) - set(vgg.layers))}.")
    user_weights = dict(zip(cfg.style_layers, cfg.style_layer_weights or (1.0,) * len(cfg.style_layers)))
    full_c = to_tensor(content).to(device).contiguous()  # (1, 3, H, W); to_tensor gives a permuted view
    full_m = None if mask01 is None else _resize_to(torch.from_numpy(mask01)[None, None], (h, w)).to(device)
    levels = cfg.levels(side)
    total_steps = cfg.steps + cfg.fine_steps * (len(levels) - 1)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    bar = tqdm(total=total_steps, disable=not progress, desc="gatys", unit="it")

    def record(level: int, level_side: int, terms: dict[str, torch.Tensor], total: torch.Tensor) -> None:
        values = {k: float(v.detach()) for k, v in terms.items()} | {"total": float(total.detach())}
        if not np.isfinite(values["total"]):
            raise FloatingPointError(f"Gatys diverged at step {len(history) + 1}; lower --lr or use --optimizer adam.")
        history.append({"step": len(history) + 1, "level": level, "size": level_side,
                        **{k: round(v, 6) for k, v in values.items()}})
        bar.update(1)
        bar.set_postfix(size=level_side, content=f"{values['content']:.3f}", style=f"{values['style']:.3f}")

    image = None
    interrupted = False
    try:
        for level, level_side in enumerate(levels):
            hw = (max(1, round(h * level_side / side)), max(1, round(w * level_side / side)))
            c = full_c if hw == (h, w) else _resize_to(full_c, hw)  # (1, 3, h, w)
            m = None if full_m is None else (full_m if hw == (h, w) else _resize_to(full_m, hw))  # (1, 1, h, w)
            s = to_tensor(resize_max(style, max(16, round(cfg.style_size * level_side / side)))).to(device)
            _check_fits("content image", c, layers)  # before any work: the coarsest level is the smallest
            _check_fits("style image", s, cfg.style_layers)
            criterion = PerceptualCriterion(vgg, s, cfg.content_layers, cfg.style_layers)
            criterion.layer_weights = {n: wt * user_weights[n] for n, wt in criterion.layer_weights.items()}
            targets = criterion.content_targets(c)
            if image is None:
                start = c.clone() if cfg.init == "content" else torch.rand(c.shape, generator=gen).to(device)
            else:
                start = F.interpolate(image, size=hw, mode="bicubic", align_corners=False).clamp_(0, 1)
            free = start.contiguous().requires_grad_(True)  # (1, 3, h, w); L-BFGS views the gradient flat

            def compose() -> torch.Tensor:  # (1, 3, h, w); outside the mask the content, exactly
                return free if m is None else m * free + (1 - m) * c

            # The relative losses are means, so per-pixel gradients shrink like 1/pixels (~1e-6 at 256 px);
            # L-BFGS drops curvature pairs with s.y <= 1e-10 and would crawl. Scaled by the pixel count the
            # gradients are O(1). Adam is scale-invariant; the history is recorded unscaled.
            scale = float(c.numel()) if cfg.optimizer == "lbfgs" else 1.0

            def closure() -> torch.Tensor:  # one forward/backward pass = one step of the budget
                opt.zero_grad(set_to_none=True)
                terms = criterion(compose(), targets, m)
                total = _weighted(cfg, terms)
                # Smooth penalty for pixels outside 0..1 instead of a clamp: a clamp inside the loss has zero
                # gradient beyond the bounds and leaves pixels stuck black or white.
                objective = total + BOUNDS_WEIGHT * (free - free.detach().clamp(0, 1)).pow(2).mean()
                (objective * scale).backward()
                record(level, level_side, terms, total)
                return objective.detach() * scale

            n = cfg.steps if level == 0 else cfg.fine_steps
            try:
                if cfg.optimizer == "lbfgs" and n:
                    # One call runs the whole level: the strong-Wolfe line search keeps L-BFGS stable without
                    # a tuned step size, and max_eval caps forward/backward passes (a line search may finish a
                    # few past it). Bounds are applied in compose(), not in place: an in-place clamp would
                    # break L-BFGS's curvature pairs.
                    opt = torch.optim.LBFGS([free], lr=cfg.learning_rate, max_iter=n, max_eval=n,
                                            history_size=cfg.lbfgs_history, tolerance_grad=0.0,
                                            tolerance_change=1e-12, line_search_fn="strong_wolfe")
                    opt.step(closure)
                else:
                    opt = torch.optim.Adam([free], lr=cfg.learning_rate)
                    for _ in range(n):
                        opt.step(closure)
                        with torch.no_grad():
                            free.clamp_(0, 1)
            except KeyboardInterrupt:
                if not keep_on_interrupt or not history:
                    raise
                interrupted = True
            with torch.no_grad():
                image = compose().detach().clamp(0, 1)
                final = criterion(image, targets, m)  # at this level's size
                if interrupted and hw != (h, w):  # stopped at a coarse level: the image at full size
                    image = _resize_to(image, (h, w)).clamp(0, 1)
                    if full_m is not None:
                        image = full_m * image + (1 - full_m) * full_c
            if interrupted:
                break
    finally:
        bar.close()
    final_terms = {k: round(float(v), 6) for k, v in final.items()}
    final_terms["total"] = round(float(_weighted(cfg, final)), 6)
    out = to_uint8(image)
    metrics = {
        "final": final_terms,
        "first": {k: history[0][k] for k in ("content", "style", "tv", "total")},
        "steps": len(history),
        "planned_steps": total_steps,
        "interrupted": interrupted,
        "seconds": round(time.perf_counter() - started, 2),
        "levels": list(levels),
        "output_size": [w, h],
        "device": str(device),
        "mask_fraction": None if full_m is None else round(float(full_m.mean()), 4),
        "content_style_ratio": cfg.content_weight / cfg.style_weight if cfg.style_weight else None,
        "settings": asdict(cfg) | {"learning_rate": cfg.learning_rate},
    }
    return GatysResult(out, history, metrics)


def output_paths(out: Path) -> dict[str, Path]:
    """Where `save` writes: the image at `out`, its loss curve and metrics beside it."""
    out = Path(out)
    return {"image": out, "loss_curve": out.with_suffix(".loss.png"), "metrics": out.with_suffix(".metrics.json")}


def save(result: GatysResult, out: Path) -> dict[str, Path]:
    paths = output_paths(out)
    save_rgb(paths["image"], result.image)
    plot_history(result.history, paths["loss_curve"])
    paths["metrics"].write_text(json.dumps(result.metrics, indent=2) + "\n")
    return paths


def plot_history(history: list[dict], path: Path) -> None:
    """Loss terms (unweighted) and the weighted total per iteration, log axis; dashed lines mark level changes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("content", "style", "tv", "total"):
        values = [r[key] if r[key] > 0 else np.nan for r in history]  # content is exactly 0 at a content init
        ax.plot(steps, values, label=key, linewidth=0.9)
    for prev, cur in zip(history, history[1:]):
        if cur["level"] != prev["level"]:
            ax.axvline(cur["step"], color="grey", linestyle="--", linewidth=0.7)
            ax.text(cur["step"], ax.get_ylim()[1], f" {cur['size']} px", va="top", fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_title(f"Gatys optimization (first level {history[0]['size']} px)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
