"""The style network alone: resolutions x devices x dtypes x nets, and low-precision error per style.

Timed: `net(x)` under `inference_mode` on a real frame already on the device in the compute dtype
(upload and download are pipeline stages, timed in `pipeline`). CUDA runs each dtype in the layout
`realtime.config.resolve_device` gives the Stylizer, with plain and sub-pixel upsampling layers, and fp16
also replayed as a CUDA graph (as the Stylizer runs it: `resolve_cuda_graphs`); the CPU
runs the plain net in the default layout here and leaves the layout/dtype/runtime race to `cpu_paths`.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from benchmarks import media
from benchmarks.config import BenchConfig
from benchmarks.harness import measure
from benchmarks.styles import load_net, registered
from nets import registry
from nets.subpixel import fold_upsampling
from nets.train import native_bf16
from nets.transformer_net import build, count_macs
from realtime.config import resolve_device
from realtime.cuda_graph import GraphedNet

log = logging.getLogger(__name__)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Plain upsampling layers, and on CUDA also their sub-pixel form (nets.subpixel), to decide
# realtime.config.resolve_subpixel there; on the CPU the rewrite is raced in cpu_paths, and the plain
# net here stays the control of the naive baseline (same convolutions, ratio ~1.0).
SUBPIXEL = {False: (False,), True: (False, True)}


def devices(cfg: BenchConfig) -> tuple[list[str], list[dict]]:
    """The devices this machine can run, and a skip record for each it cannot."""
    ok, skipped = [], []
    for d in cfg.devices:
        if d.startswith("cuda") and not torch.cuda.is_available():
            skipped.append({"device": d, "skipped": "CUDA is not available on this machine"})
        else:
            ok.append(d)
    return ok, skipped


def native_cpu_dtypes() -> frozenset[str]:
    """The low-precision dtypes this CPU convolves in hardware (oneDNN): bf16 with AVX512-BF16 or AMX,
    fp16 with AMX-FP16. The others it emulates, up to >20x slower than fp32."""
    native = {"bf16"} if native_bf16(torch.device("cpu")) else set()
    if getattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)():
        native.add("fp16")
    return frozenset(native)


def skip_reason(cfg: BenchConfig, device: str, net: str, dtype: str, size: tuple[int, int],
                native: frozenset[str] = frozenset()) -> str | None:
    """Why this configuration is not timed, or None. `native`: the CPU's hardware low-precision dtypes
    (`native_cpu_dtypes`), timed at every size; an emulated one only on the lite net's smallest sizes."""
    if device != "cpu":
        return None
    pixels = size[0] * size[1]
    if net == "full" and pixels > cfg.full_cpu_max_pixels:
        return f"full net on the CPU only up to {cfg.full_cpu_max_pixels} pixels (~47 GMAC at 640x480)"
    if dtype != "fp32" and dtype not in native and (net != "lite" or pixels > cfg.cpu_lowp_max_pixels):
        return (f"CPU {dtype} only for the lite net up to {cfg.cpu_lowp_max_pixels} pixels: this CPU has no "
                f"native {dtype} convolutions (bf16: AVX512-BF16 or AMX; fp16: AMX-FP16) and emulates them")
    return None


def to_input(image: np.ndarray, device: str, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(device).to(dtype).div_(255.0)  # (1, 3, H, W)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@torch.inference_mode()
def run(cfg: BenchConfig) -> tuple[list[dict], list[dict]]:
    """Returns (records, skipped)."""
    ok, skipped = devices(cfg)
    native = native_cpu_dtypes()
    records = []
    for device in ok:
        for arch in cfg.nets:
            base, label = load_net(arch)
            for size in cfg.resolutions:
                image = media.frames(size, 1)[0]
                macs = count_macs(build(arch), size[1], size[0])
                for dt in cfg.dtypes:
                    why = skip_reason(cfg, device, arch, dt, size, native)
                    key = {"net": arch, "device": device, "dtype": dt, "size": list(size)}
                    if why:
                        skipped.append({**key, "section": "network", "skipped": why})
                        continue
                    channels_last = device != "cpu" and resolve_device(device)[2]
                    fmt = torch.channels_last if channels_last else torch.contiguous_format
                    x = to_input(image, device, DTYPES[dt], channels_last)
                    for subpixel in SUBPIXEL[device != "cpu"]:
                        net = build(arch).eval()
                        net.load_state_dict(base.state_dict())
                        net = (fold_upsampling(net) if subpixel else net).to(device, DTYPES[dt], memory_format=fmt)
                        log.info("network %s %s %s %dx%d subpixel=%s", arch, device, dt, *size, subpixel)
                        stats = measure(lambda: net(x), device=device, warmup=cfg.warmup, iters=cfg.iters,
                                        min_iters=cfg.min_iters, seconds=cfg.seconds)
                        row = {**key, "subpixel": subpixel, "weights": label, "channels_last": channels_last,
                               "threads": torch.get_num_threads() if device == "cpu" else None,
                               "gmac": round(macs / 1e9, 3)}
                        records.append({**row, **stats})
                        if device != "cpu" and dt == "fp16":  # the same net replayed as one CUDA graph
                            records.append({**row, "cuda_graph": True, **graph_stats(cfg, net, x, device)})
                        del net
                    del x
    return records, skipped


def graph_stats(cfg: BenchConfig, net: torch.nn.Module, x: torch.Tensor, device: str) -> dict:
    """`measure` of `net` replayed as a CUDA graph by the Stylizer's own `GraphedNet` (input copied in,
    output copied out). A capture that fails is recorded, not raised."""
    graphed = GraphedNet(net)
    try:
        graphed(x)  # captures
    except RuntimeError as exc:
        return {"n": 0, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return measure(lambda: graphed(x), device=device, warmup=cfg.warmup, iters=cfg.iters, min_iters=cfg.min_iters,
                   seconds=cfg.seconds)


def _error(ref: torch.Tensor, out: torch.Tensor) -> dict:
    d = (out.float() - ref).abs()
    u8 = (out.float().clamp(0, 1) * 255).round() - (ref.clamp(0, 1) * 255).round()
    return {"max_abs": round(float(d.max()), 5), "mean_abs": round(float(d.mean()), 6),
            "max_abs_uint8": int(u8.abs().max()), "mean_abs_uint8": round(float(u8.abs().mean()), 4)}


@torch.inference_mode()
def precision(cfg: BenchConfig) -> list[dict]:
    """max / mean |low-precision - fp32| of the output (0..1 scale and uint8 levels), per registered style,
    per device, on a real frame. The CPU uses a small frame (its fp16/bf16 are emulated, slow)."""
    ok, _ = devices(cfg)
    names = registered() or []
    if not names:  # no style registered yet: still measure the architectures, labelled random-init
        names = [None]
    out = []
    for device in ok:
        size = cfg.resolutions[0] if device == "cpu" else (640, 480)
        image = media.frames(size, 1)[0]
        for name in names:
            archs = [name.split(".", 1)[0]] if name else list(cfg.nets)
            for arch in archs:
                net32, label = (registry.load(name), name) if name else load_net(arch)
                if device == "cpu" and arch == "full":
                    size_used = (size[0] // 2 // 4 * 4, size[1] // 2 // 4 * 4)  # emulated fp16 full: keep it short
                    img = media.frames(size_used, 1)[0]
                else:
                    size_used, img = size, image
                net32 = net32.to(device)
                ref = net32(to_input(img, device, torch.float32, False)).float()
                for dt in ("fp16", "bf16"):
                    low = build(arch).eval()
                    low.load_state_dict(net32.state_dict())
                    low = low.to(device, DTYPES[dt])
                    y = low(to_input(img, device, DTYPES[dt], False))
                    out.append({"style": label, "device": device, "dtype": dt, "size": list(size_used),
                                "vs": "fp32", **_error(ref, y)})
    return out
