"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016) on VGG16 features.

All features are (B, C, H, W). Gram matrices are normalized by C*H*W so their scale does not depend
on the image size; with a mask, by C * (mask area) so a style measured on a region is comparable
with one measured on a whole image (seed: targeted / masked style transfer).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gram(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C). `mask` (B, 1, h, w) in 0..1 is resized to (H, W) and weights pixels."""
    b, c, h, w = features.shape
    if mask is not None:
        m = F.interpolate(mask.to(features.dtype), size=(h, w), mode="bilinear", align_corners=False)
        features = features * m
        area = m.sum(dim=(1, 2, 3)).clamp_min(1.0).view(b, 1, 1)
    else:
        area = torch.full((b, 1, 1), float(h * w), device=features.device, dtype=features.dtype)
    flat = features.reshape(b, c, h * w).float()  # Grams in fp32: sums of H*W products overflow fp16
    return flat @ flat.transpose(1, 2) / (c * area.float())


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features.float(), target.float())


def style_loss(features: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor],
               layer_weights: dict[str, float] | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over layers of weight * MSE(Gram(features), target Gram). Target Grams may have batch 1."""
    total = 0.0
    for name, target in target_grams.items():
        g = gram(features[name], mask)
        w = 1.0 if layer_weights is None else layer_weights.get(name, 1.0)
        total = total + w * F.mse_loss(g, target.expand_as(g))
    return total


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation (mean absolute difference of neighbours) of (B, C, H, W): discourages noise."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return dx + dy


class PerceptualCriterion:
    """Content + style + TV loss against one style image, shared by training, Gatys and the quality
    benchmark so their numbers are comparable.

    Each term is made relative so recipes transfer between layers and paintings: the style loss of a
    layer is MSE(Gram, target Gram) / mean(target Gram^2), averaged over layers (Caffe VGG16's Gram
    magnitudes differ by ~10^5 between relu2_2 and relu4_3); the content loss is MSE(features, target)
    / mean(target^2), averaged over content layers. Both are ~1 for an unrelated image, 0 for a match.
    """

    def __init__(self, vgg, style_image: torch.Tensor, content_layers: tuple[str, ...],
                 style_layers: tuple[str, ...], style_mask: torch.Tensor | None = None):
        self.vgg, self.content_layers, self.style_layers = vgg, content_layers, style_layers
        with torch.no_grad():
            feats = vgg(style_image)._asdict()  # style_image: (1, 3, H, W) 0..1
            self.target_grams = {n: gram(feats[n], style_mask) for n in style_layers}
        self.layer_weights = {n: 1.0 / (len(style_layers) * g.pow(2).mean().item()) for n, g in self.target_grams.items()}

    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            feats = self.vgg(content)._asdict()
        return {n: feats[n] for n in self.content_layers}

    def __call__(self, output: torch.Tensor, content_targets: dict[str, torch.Tensor],
                 mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """output (B, 3, H, W) 0..1; `mask` (B, 1, H, W) limits the style loss to a region."""
        feats = self.vgg(output)._asdict()
        content = sum(content_loss(feats[n], t) / t.float().pow(2).mean().clamp_min(1e-8)
                      for n, t in content_targets.items()) / len(content_targets)
        style = style_loss(feats, self.target_grams, self.layer_weights, mask)
        return {"content": content, "style": style, "tv": tv_loss(output)}

    @torch.no_grad()
    def style_by_layer(self, output: torch.Tensor) -> dict[str, float]:
        """The style term of `output` (B, 3, H, W) split by layer: the parts sum to the "style" of __call__."""
        feats = self.vgg(output)._asdict()
        return {n: float(self.layer_weights[n] * F.mse_loss(gram(feats[n]), t.expand(len(output), -1, -1)))
                for n, t in self.target_grams.items()}


def stride_lattice(image: torch.Tensor, period: int) -> torch.Tensor:
    """How much of (B, C, H, W) is a pattern locked to a `period`-pixel grid: the RMS, over the period x
    period phases, of the image averaged per phase (pixel (y, x) belongs to phase (y % period, x % period)).
    A network with strided layers can paint a texture on its own stride grid (a regular dot or diagonal
    grid, seen on the Delaunay and Kandinsky nets); photos score ~0.002, those nets ~0.018 at period 8.
    Returns (B,), in the image's units."""
    b, c, h, w = image.shape
    h, w = h // period * period, w // period * period
    tiles = image[:, :, :h, :w].float().reshape(b, c, h // period, period, w // period, period)
    phases = tiles.mean(dim=(2, 4))  # (B, C, period, period)
    return (phases - phases.mean(dim=(2, 3), keepdim=True)).pow(2).mean(dim=(1, 2, 3)).sqrt()


def border_texture(image: torch.Tensor, band: int = 4) -> torch.Tensor:
    """Fine texture along the frame's edges against the inside: the mean absolute high-pass (the pixel
    minus its 3x3 mean, on the channel mean) over the outer `band` px, divided by the same over the part
    more than 4 bands in. A net that paints stripes or dots at the borders scores above the photo it got
    (the astronaut photo: 0.56; the lite nets before `NetConfig.margin`: up to 1.97). Returns (B,)."""
    g = image.float().mean(1, keepdim=True)  # (B, 1, H, W)
    high = (g - F.avg_pool2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), 3, 1)).abs()[:, 0]  # (B, H, W)
    edge = torch.ones_like(high[0], dtype=torch.bool)
    edge[band:-band, band:-band] = False
    inner = high[:, 4 * band:-4 * band, 4 * band:-4 * band].mean(dim=(1, 2))
    return high[:, edge].mean(dim=1) / inner.clamp_min(1e-8)


def shift_loss(net, batch: torch.Tensor, output: torch.Tensor, stride: int) -> torch.Tensor:
    """Shift equivariance: `net` on the photo moved by (dy, dx) pixels, each in 1..stride-1 (off the net's
    stride grid), against the same pixels of `output` = net(batch). A texture that belongs to the stride
    grid rather than to the photo (`stride_lattice`) moves with the grid, not with the photo, and costs
    here; a net whose strokes follow the photo pays nothing. The moved crop's border is compared too: there
    it sees reflection padding where `output` saw the photo, so the net's own border texture (coloured
    blocks along the frame's edges) costs as well; measured on the Delaunay net, comparing only pixels 2
    strides in left more of it. Mean squared difference of 0..1 pixels; sides of at least 2 strides."""
    b, c, h, w = batch.shape
    if min(h, w) < 2 * stride:
        raise ValueError(f"shift_loss needs sides of at least 2 strides ({2 * stride} px), not {h}x{w}.")
    dy, dx = (int(v) for v in torch.randint(1, stride, (2,)))
    hh, ww = h - stride, w - stride  # the crop keeps sides that are multiples of the stride
    moved = net(batch[:, :, dy:dy + hh, dx:dx + ww])  # (B, 3, hh, ww)
    return F.mse_loss(moved.float(), output[:, :, dy:dy + hh, dx:dx + ww].float())


NOISE_SIGMA = 0.02  # std of the pixel noise noise_loss adds, in 0..1 (~5 of 255 levels: a webcam's grain)


def noise_loss(net, batch: torch.Tensor, output: torch.Tensor, sigma: float = NOISE_SIGMA) -> torch.Tensor:
    """Noise stability (Gupta et al. 2017, "Characterizing and Improving Stability in Neural Style
    Transfer"): `net` on the photo with Gaussian pixel noise of std `sigma` added, against `output` =
    net(batch). Consecutive video frames of a still scene differ by sensor and compression noise; a net
    that amplifies it repaints its strokes every frame. On the shipped full nets, the output change per
    unit of input noise ranks them nearly as their flicker on the sample clip does (docs/styles.md).
    Mean squared difference of 0..1 pixels."""
    noisy = (batch + sigma * torch.randn_like(batch)).clamp(0, 1)
    return F.mse_loss(net(noisy).float(), output.float())


def random_motion(b: int, h: int, w: int, *, shift: float = 4.0, degrees: float = 2.0, zoom: float = 0.03,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 2, 3) affine sampling grids' thetas (`F.affine_grid`, align_corners=False) of a small camera
    motion each: a turn of up to `degrees`, a zoom of up to `zoom`, a move of up to `shift` pixels each
    way, all uniform and sub-pixel, as between consecutive frames of a hand-held or talking-head video."""
    u = torch.rand(b, 4, generator=generator) * 2 - 1
    angle, scale = u[:, 0] * degrees * torch.pi / 180, 1 + u[:, 1] * zoom
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    aspect = h / w  # normalized coordinates run -1..1 on both sides: a turn must keep pixels square
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos, -sin * aspect, u[:, 2] * 2 * shift / w
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin / aspect, cos, u[:, 3] * 2 * shift / h
    return theta


def warp_loss(net, batch: torch.Tensor, output: torch.Tensor, margin: int = 8, **motion) -> torch.Tensor:
    """Motion consistency (as ReCoNet and Huang et al. 2017 train on optical flow, here on a known
    synthetic flow): `net` on the photo moved by a small random camera motion (`random_motion`: sub-pixel,
    with a turn and a zoom), against `output` = net(batch) moved the same way. A net whose strokes follow
    the picture pays nothing; strokes that are repainted when the picture moves by a fraction of a pixel
    (what the flicker measure on video sees) cost. Pixels within `margin` of the frame's edge, where the
    moved picture is reflected, are not compared. Mean squared difference of 0..1 pixels."""
    b, _, h, w = batch.shape
    if min(h, w) <= 4 * margin:
        raise ValueError(f"warp_loss needs sides over {4 * margin} px, not {h}x{w}.")
    theta = random_motion(b, h, w, **motion).to(batch.device)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    moved = F.grid_sample(batch.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    expected = F.grid_sample(output.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    inside = (grid.abs() <= torch.tensor([1 - 2 * margin / w, 1 - 2 * margin / h], device=grid.device)).all(-1)
    diff = (net(moved.to(batch.dtype)).float() - expected) ** 2  # (B, 3, H, W)
    return (diff * inside[:, None]).sum() / (inside.sum() * diff.shape[1]).clamp_min(1)
