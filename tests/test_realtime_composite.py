"""Compositing and download on the CPU: OpenCV's one-pass blend and uint8 conversion give what the
torch formulas give, for every mode and tensor layout; the frame loop's allocator setting takes."""
from __future__ import annotations

import platform

import numpy as np
import pytest
import torch

from realtime.allocator import keep_frame_buffers
from realtime.composite import Compositor, blend, hwc
from realtime.config import StyleConfig
from realtime.stylize import Stylizer


def frames(h: int = 48, w: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x, a, b = (torch.rand(1, 3, h, w, generator=g) for _ in range(3))
    mask = torch.rand(1, 1, h, w, generator=g)
    mask[..., :4, :] = 0.0  # pure background rows
    mask[..., -4:, :] = 1.0  # pure person rows
    return x, a, b, mask


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("mode,expect", [
    ("background", lambda x, a, b, m: x * m + a * (1 - m)),
    ("person", lambda x, a, b, m: a * m + x * (1 - m)),
    ("split", lambda x, a, b, m: a * m + b * (1 - m)),
    ("full", lambda x, a, b, m: a),
])
def test_cpu_compositor_matches_the_blend_formula(layout, mode, expect):
    x, a, b, mask = frames()
    if layout == "channels_last":
        x, a, b = (t.contiguous(memory_format=torch.channels_last) for t in (x, a, b))
    out = Compositor(mode=mode)(x, a, mask, b)
    assert out.shape == (1, 3, 48, 64) and out.dtype == torch.float32
    # OpenCV divides by the weights' sum plus a tiny epsilon: 1e-5 relative, far below a uint8 level
    torch.testing.assert_close(out, expect(x, a, b, mask), atol=2e-5, rtol=0)
    if mode == "background":  # the mask's ends: frame untouched where person, stylized where background
        torch.testing.assert_close(out[..., -4:, :], x[..., -4:, :], atol=2e-5, rtol=0)
        torch.testing.assert_close(out[..., :4, :], a[..., :4, :], atol=2e-5, rtol=0)


def test_blend_outside_cpu_fp32_is_torch_lerp():
    x, a, _, mask = frames()
    x, a, mask = x.bfloat16(), a.bfloat16(), mask.bfloat16()
    assert torch.equal(blend(a, x, mask), torch.lerp(a, x, mask))


def test_hwc_is_a_view_for_channels_last_and_a_copy_otherwise():
    t = torch.rand(1, 3, 8, 10)
    cl = t.contiguous(memory_format=torch.channels_last)
    assert np.shares_memory(hwc(cl), cl.numpy())
    assert not np.shares_memory(hwc(t), t.numpy())
    assert np.array_equal(hwc(t), hwc(cl)) and hwc(t).flags.c_contiguous and hwc(t).shape == (8, 10, 3)


@pytest.fixture(scope="module")
def stylizer(style_name) -> Stylizer:
    return Stylizer(config=StyleConfig(styles=(style_name,), backend="torch"))


def test_cpu_download_rounds_and_saturates_like_the_torch_formula(stylizer):
    g = torch.Generator().manual_seed(1)
    levels = torch.randint(-40, 300, (1, 3, 40, 50), generator=g).float()
    offsets = torch.rand(1, 3, 40, 50, generator=g) * 0.8 - 0.4  # never a tie at .5
    t = (levels + offsets) / 255.0
    t[0, 0, 0, :3] = torch.tensor([-0.3, 1.7, 1.0])
    expect = (t[0] * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    for layout in (torch.contiguous_format, torch.channels_last):
        out = stylizer.to_image(t.contiguous(memory_format=layout))
        assert out.dtype == np.uint8 and out.shape == (40, 50, 3) and out.flags.c_contiguous
        assert np.array_equal(out, expect)
    assert list(out[0, :3, 0]) == [0, 255, 255]


def test_download_of_other_dtypes_keeps_the_torch_path(stylizer):
    t = torch.rand(1, 3, 16, 20).bfloat16()
    out = stylizer.to_image(t).astype(np.int16)
    assert out.shape == (16, 20, 3)
    assert np.abs(out - stylizer.to_image(t.float())).max() <= 1  # bf16's own rounding of x * 255


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_frame_loop_malloc_thresholds():
    assert keep_frame_buffers()
