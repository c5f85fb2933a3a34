"""Feed-forward style network (Johnson et al., "Perceptual Losses for Real-Time Style Transfer", 2016).

Contract: input (B, 3, H, W) RGB in 0..1, output (B, 3, H, W) RGB in 0..1 (final sigmoid, so fp16
activations stay bounded). H and W must be multiples of `NetConfig.stride` (8 for lite, 4 for full);
`nets.transformer_net.pad_to_stride` does that for arbitrary frames.

Borders: the lite net painted coloured stripes and dots in the frame's outer ~8 px (`nets.losses.border_texture`
up to 3.5x the photo's own on the astronaut photo, for 6 of 10 styles; the full nets stay at the photo's level).
`NetConfig.margin` reflect-extends the input by that many px on each side inside `forward` and crops the output
back, so that texture falls outside the frame: one lite stride (8 px) brings all ten to the photo's level
(4 px does not; 16 px gains nothing). It costs the extra pixels: +6% at 640x480, +12% at 320x240.

Two shapes from one class:
- full: 32/64/128 channels, 5 residual blocks, 9x9 stem: ~47 GMAC per 640x480 frame (for CUDA).
- lite: 16/32/64 channels, 3 depthwise-separable residual blocks, 3x3 stride-2 stem (downsample early,
  no 9x9 convolution at full resolution), an 8 px margin: ~1.26 GMAC at 640x480, ~0.33 at 320x240 (for a 2-core
  CPU).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    widths: tuple[int, int, int] = (32, 64, 128)
    blocks: int = 5
    separable: bool = False  # depthwise-separable residual blocks
    stem_kernel: int = 9
    stem_stride: int = 1  # 2 = downsample in the first layer (lite)
    margin: int = 0  # px of reflected frame added on each side before the net and cropped after (see above)

    def __post_init__(self):
        if self.margin % self.stride:
            raise ValueError(f"margin {self.margin} must be a multiple of the stride {self.stride}.")

    @property
    def stride(self) -> int:
        """Total downsampling factor: input sides must be multiples of it."""
        return 4 * self.stem_stride

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        return cls(**{**d, "widths": tuple(d["widths"])})


ARCHS = {
    "full": NetConfig(),
    "lite": NetConfig(widths=(16, 32, 64), blocks=3, separable=True, stem_kernel=3, stem_stride=2,
                      margin=8),
}


def instance_norm_inference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Instance norm of (B, C, H, W) from a few parallel reductions and one fused multiply-add, its
    statistics in fp32. PyTorch's CUDA instance norm reduces each channel in one thread block: at 1080p
    in fp16 the full net's 18 norms took 10 of its 19 ms on an H200 (`benchmarks/cuda_probe.py`).
    The mean is rounded to x's dtype before centering and the rounding is carried in the shift, so a
    channel whose mean dwarfs its spread keeps its precision in fp16."""
    mean32 = x.mean(dim=(2, 3), keepdim=True, dtype=torch.float32)  # (B, C, 1, 1)
    mean = mean32.to(x.dtype)
    centered = x - mean
    rest = mean32 - mean.float()  # what the rounded mean left in `centered`
    norm = torch.linalg.vector_norm(centered, dim=(2, 3), keepdim=True, dtype=torch.float32)
    var = norm.square() / (x.shape[2] * x.shape[3]) - rest.square()
    scale = weight.float().view(1, -1, 1, 1) * torch.rsqrt(var.clamp_min(0) + eps)
    shift = bias.float().view(1, -1, 1, 1) - rest * scale
    return torch.addcmul(shift.to(x.dtype), centered, scale.to(x.dtype))


class InstanceNorm(nn.InstanceNorm2d):
    """`nn.InstanceNorm2d(affine=True)` (same parameters, same function) that runs inference on CUDA
    through `instance_norm_inference`; training and the CPU (oneDNN, ONNX export) keep PyTorch's own."""

    def __init__(self, channels: int, affine: bool = True):
        super().__init__(channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and self.affine and not torch.is_grad_enabled():
            return instance_norm_inference(x, self.weight, self.bias, self.eps)
        return super().forward(x)


class ConvLayer(nn.Sequential):
    """Reflection pad + conv: reflection avoids dark borders that zero padding paints in."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride, groups=groups))


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1: ~8x fewer MACs than a dense 3x3 at 64 channels."""

    def __init__(self, channels: int):
        super().__init__(ConvLayer(channels, channels, 3, groups=channels), nn.Conv2d(channels, channels, 1))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, separable: bool):
        super().__init__()
        make = (lambda: SeparableConv(channels)) if separable else (lambda: ConvLayer(channels, channels, 3))
        self.conv1, self.in1 = make(), InstanceNorm(channels, affine=True)
        self.conv2, self.in2 = make(), InstanceNorm(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class UpsampleConv(nn.Module):
    """Nearest upsample then convolve instead of a transposed conv: avoids checkerboard artifacts
    (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016)."""

    def __init__(self, cin: int, cout: int, kernel: int, scale: int):
        super().__init__()
        self.scale = scale
        self.conv = ConvLayer(cin, cout, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale > 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return self.conv(x)


class TransformerNet(nn.Module):
    def __init__(self, config: NetConfig = ARCHS["full"]):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.widths
        k, s = config.stem_kernel, config.stem_stride
        self.conv1, self.in1 = ConvLayer(3, c1, k, s), InstanceNorm(c1, affine=True)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, 2), InstanceNorm(c2, affine=True)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, 2), InstanceNorm(c3, affine=True)
        self.res = nn.Sequential(*(ResidualBlock(c3, config.separable) for _ in range(config.blocks)))
        self.deconv1, self.in4 = UpsampleConv(c3, c2, 3, 2), InstanceNorm(c2, affine=True)
        self.deconv2, self.in5 = UpsampleConv(c2, c1, 3, 2), InstanceNorm(c1, affine=True)
        self.deconv3 = UpsampleConv(c1, 3, k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) 0..1 -> (B, 3, H, W) 0..1
        m = self.config.margin
        if m:
            x = F.pad(x, (m, m, m, m), mode="reflect")  # (B, 3, H+2m, W+2m); needs sides above m
        y = F.relu(self.in1(self.conv1(x)))  # (B, c1, H/s, W/s)
        y = F.relu(self.in2(self.conv2(y)))  # (B, c2, H/2s, W/2s)
        y = F.relu(self.in3(self.conv3(y)))  # (B, c3, H/4s, W/4s)
        y = self.res(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        y = torch.sigmoid(self.deconv3(y))
        return y[..., m:-m, m:-m] if m else y


def build(arch: str) -> TransformerNet:
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}; known: {', '.join(ARCHS)}.")
    return TransformerNet(ARCHS[arch])


def pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) so H and W are multiples of `stride`; returns the padded tensor and the
    original (H, W) so the caller can crop the output back."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def count_macs(net: TransformerNet, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass at (height, width), counted from conv layers."""
    macs = 0

    def hook(mod: nn.Conv2d, _inp, out):
        nonlocal macs
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        macs += out.numel() * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, height, width))
    for h in handles:
        h.remove()
    return macs
