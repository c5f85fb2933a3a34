"""The stylizer: the only place frames become tensors and tensors become frames again.

Device, dtype, memory format and runtime come from `StyleConfig` (resolved once in `realtime.config`):
CUDA runs fp16 under `inference_mode`, each net replayed as a CUDA graph (`realtime.cuda_graph`); the CPU runs fp32, through ONNX Runtime when
`backend` says so (`realtime.onnx_cpu`, the measured fastest CPU path), with the upsampling layers in their
sub-pixel form when `subpixel` says so (`nets.subpixel`). Every style named in the config is
loaded at construction, so switching mid-stream is a pointer swap, never a stall. `scale` < 1 stylizes
a downscaled frame and upsamples the result (the lite net's cost falls with the pixel count).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from nets import adain, registry
from nets.images import ImageError
from nets.subpixel import fold_upsampling
from nets.transformer_net import pad_to_stride
from nets.vgg import VGGWeightsError
from realtime.composite import hwc
from realtime.config import StyleConfig
from realtime.cuda_graph import GraphedNet
from realtime.errors import ConfigError
from realtime.frames import Frame, check_image

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_net(name: str, alpha: float = 1.0) -> torch.nn.Module:
    """A registered style's net, or for a painting's file (A.jpg+B.jpg: mixed) the AdaIN net painting it
    with content-style trade-off `alpha` (`nets.adain`: fp32, CPU, eval mode, like the registry's)."""
    return adain.from_spec(name, alpha=alpha) if adain.is_painting_spec(name) else registry.load(name)


class Stylizer:
    def __init__(self, *, config: StyleConfig):
        if not config.styles:
            raise ConfigError("No style given.")
        self.device = torch.device(config.device)
        self.dtype = DTYPES[config.dtype]
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.scale = config.scale
        self.strength = config.strength
        self.backend, self.threads, self.subpixel = config.backend, config.threads, config.subpixel
        self.cuda_graphs = config.cuda_graphs and self.device.type == "cuda"
        if self.device.type == "cpu" and config.threads:
            torch.set_num_threads(config.threads)  # the blend and the uint8 conversions run in torch on either backend
        self.names = list(config.styles)
        try:
            self.nets = {name: self._prepare(load_net(name, config.style_alpha)) for name in self.names}
        except (registry.StyleError, ImageError, VGGWeightsError) as exc:
            raise ConfigError(str(exc)) from exc
        # worked out once: the HUD asks every frame, and a painting's spec is parsed against the file system
        self.labels = {name: adain.spec_name(name) if adain.is_painting_spec(name) else name for name in self.names}
        self.active = self.names[0]
        self.second = config.style2 or (self.names[1] if len(self.names) > 1 else self.names[0])

    def _prepare(self, net: torch.nn.Module):
        if self.backend == "onnxruntime":
            from realtime.onnx_cpu import OnnxRuntimeNet

            return OnnxRuntimeNet(net, threads=self.threads, subpixel=self.subpixel)
        if self.subpixel:
            net = fold_upsampling(net.float())
        net = net.to(self.device, self.dtype, memory_format=self.memory_format).eval()
        return GraphedNet(net) if self.cuda_graphs else net

    def label(self, name: str) -> str:
        """What the HUD shows for a style: its name, or a painting file's stem (not its whole path)."""
        return self.labels[name]

    # --- style switching (hotkeys) ---
    def step_style(self, delta: int) -> str:
        self.active = self.names[(self.names.index(self.active) + delta) % len(self.names)]
        return self.active

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        self._strength = float(min(1.0, max(0.0, value)))

    # --- conversion ---
    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) RGB -> (1, 3, H, W) in 0..1 on the device, in the compute dtype."""
        check_image(image)
        t = torch.from_numpy(image).to(self.device, non_blocking=True)  # (H, W, 3) uint8
        t = t.permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W), a view with (H, W, 3) strides
        if self.device.type == "cpu":
            # Keep the (H, W, 3) layout (channels_last strides): OpenCV resizes it without a copy and
            # to_image reads it back without a transpose.
            return t.to(self.dtype).div_(255.0)
        return t.to(self.dtype).div_(255.0).contiguous(memory_format=self.memory_format)

    def mask_tensor(self, mask: np.ndarray) -> torch.Tensor:
        """float32 (H, W) 0..1 -> (1, 1, H, W) on the device."""
        return torch.from_numpy(mask).to(self.device, self.dtype, non_blocking=True)[None, None]

    def to_image(self, t: torch.Tensor) -> np.ndarray:
        """(1, 3, H, W) 0..1 -> uint8 (H, W, 3) RGB, C-contiguous, rounded to the nearest level."""
        if t.device.type == "cpu" and t.dtype == torch.float32:
            # one OpenCV pass (scale, round, saturate): 0.36 ms at 640x480 on one thread against 0.79 for
            # the four torch passes below
            image = hwc(t)
            return cv2.addWeighted(image, 255.0, image, 0.0, 0.0, dtype=cv2.CV_8U)
        t = t[0].mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)  # (3, H, W), rounded
        return t.permute(1, 2, 0).contiguous().cpu().numpy()  # no copy when t has channels_last strides

    # --- compute ---
    @torch.inference_mode()
    def stylize(self, x: torch.Tensor, style: str | None = None) -> torch.Tensor:
        """(1, 3, H, W) 0..1 -> stylized (1, 3, H, W), blended with x by `strength`."""
        net = self.nets[style or self.active]
        h, w = x.shape[-2:]
        y = x
        if self.scale != 1.0:
            # sides of 2 lite strides at least: the reflected margin needs a side above its 8 px
            y = self._resize(x, (max(16, round(h * self.scale)), max(16, round(w * self.scale))))
        y, (hh, ww) = pad_to_stride(y, net.config.stride)
        y = net(y)[..., :hh, :ww]
        if (hh, ww) != (h, w):
            y = self._resize(y, (h, w))
        if self._strength < 1.0:
            y = torch.lerp(x, y, self._strength)
        return y

    def _resize(self, t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(1, 3, h, w) -> (1, 3, H, W), area-averaged when shrinking, bilinear when growing. On the CPU
        OpenCV does it: measured on one thread, 640x480 -> 320x240 took 0.1 ms against 2.0 ms for torch's
        antialiased bilinear, and 320x240 -> 640x480 0.2 ms against 3.4 ms."""
        if self.device.type == "cpu" and t.dtype == torch.float32:
            shrink = size[0] < t.shape[-2]
            out = cv2.resize(hwc(t), (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W), channels_last strides
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

    @torch.inference_mode()
    def warmup(self, size: tuple[int, int], runs: int = 2) -> None:
        """Run each net on a dummy frame so cuDNN autotuning and allocation happen before frame 1."""
        x = torch.zeros(1, 3, size[1], size[0], device=self.device, dtype=self.dtype)
        for name in self.names:
            for _ in range(runs if self.device.type == "cuda" else 1):
                self.stylize(x.contiguous(memory_format=self.memory_format), name)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def __call__(self, frame: Frame) -> Frame:
        """One frame, whole-frame style (what the benchmarks time)."""
        return frame.with_image(self.to_image(self.stylize(self.to_tensor(frame.image))))

    def close(self) -> None:
        self.nets.clear()
