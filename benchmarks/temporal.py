"""Temporal stability of a style network on video: how much it flickers between frames beyond what the
motion explains (the warping error of video style transfer, Ruder et al. 2016, "Artistic style transfer
for videos").

Optical flow of the input frames (OpenCV's Farneback) carries the stylized frame t-1 onto frame t; the
mean absolute difference to the stylized frame t, over pixels whose flow is consistent forward and
backward (no occlusions), is the network's warping error. The same error on the input frames is the floor
that the flow itself leaves. Their ratio is the score: about 1 when the painted strokes move with the
scene, above 1 when they shimmer or stay fixed to the frame while the scene moves (a texture locked to the
net's stride grid does both).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from nets.transformer_net import pad_to_stride

CONSISTENT_PX = 1.0  # forward + backward flow within this many pixels: the pixel is visible in both frames
NOISE_LEVELS = 2.0  # std of the pixel noise noise_gain adds, of 255 (a webcam's grain at good light)


def sample_frames(count: int = 40, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """The first `count` frames of the bundled sample clip (a man talking in a car), uint8 RGB at `size`
    (W, H): the CPU's processing size of a 640x480 camera."""
    import av

    from realtime.sources import decoded_rgb, sample_path

    with av.open(str(sample_path())) as clip:
        frames = [decoded_rgb(f) for _, f in zip(range(count), clip.decode(video=0))]
    return [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames]


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow from grey frame a to grey frame b: a(y, x) ~ b(y + v, x + u)."""
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warping_errors(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> tuple[float, float]:
    """(input error, output error): mean |frame_t - warp(frame_t-1)| in 0..1 over consistent pixels,
    the flow computed once on the inputs and applied to both."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in inputs]
    err_in, err_out = [], []
    for t in range(1, len(inputs)):
        back = _flow(grey[t], grey[t - 1])  # where each pixel of frame t was in frame t-1
        fwd = _flow(grey[t - 1], grey[t])
        round_trip = back + _warp(fwd, back)  # ~0 where the pixel is visible in both frames
        valid = np.linalg.norm(round_trip, axis=2) < CONSISTENT_PX
        for src, errs in ((inputs, err_in), (outputs, err_out)):
            moved = _warp(src[t - 1].astype(np.float32), back)
            errs.append(np.abs(src[t].astype(np.float32) - moved)[valid].mean() / 255.0)
    return float(np.mean(err_in)), float(np.mean(err_out))


def stylize_frames(net: torch.nn.Module, frames: list[np.ndarray], device: str | torch.device = "cpu") -> list[np.ndarray]:
    """`net` on each uint8 RGB frame (padded to its stride, cropped back), as uint8 RGB."""
    outputs = []
    with torch.inference_mode():
        for f in frames:
            x = torch.from_numpy(f).permute(2, 0, 1)[None].float().div(255).to(device)
            padded, (h, w) = pad_to_stride(x, net.config.stride)
            y = net(padded)[..., :h, :w]
            outputs.append((y[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy())
    return outputs


def flicker(net: torch.nn.Module, frames: list[np.ndarray], device: str | torch.device = "cpu") -> dict[str, float]:
    """The net's warping error on `frames` over the inputs' own (the score), with both errors."""
    err_in, err_out = warping_errors(frames, stylize_frames(net, frames, device))
    return {"flicker": err_out / max(err_in, 1e-9), "warp_error": err_out, "input_warp_error": err_in}


def noise_gain(net: torch.nn.Module, frames: list[np.ndarray], device: str | torch.device = "cpu",
               levels: float = NOISE_LEVELS, every: int = 4) -> dict[str, float]:
    """How much of a frame's pixel noise the net passes on: mean |net(frame + noise) - net(frame)| over
    mean |noise|, Gaussian noise of `levels` (of 255) on every `every`-th frame, a fixed seed. A still
    scene's frames differ by such noise; a net that amplifies it (gain near or above 1) repaints its
    strokes every frame. On the shipped nets it ranks them nearly as `flicker` does (docs/styles.md)."""
    clean = frames[::every]
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, levels, f.shape), 0, 255).round().astype(np.uint8) for f in clean]
    before, after = stylize_frames(net, clean, device), stylize_frames(net, noisy, device)
    out_change = np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(before, after)])
    in_change = np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(clean, noisy)])
    return {"noise_gain": float(out_change / max(in_change, 1e-9))}
