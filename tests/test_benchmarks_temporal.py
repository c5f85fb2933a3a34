"""benchmarks.temporal on the bundled sample clip: the warping-error ratio is 1 for a net that leaves
the video as it is, lower for one that flattens it, higher for one that paints a texture fixed to the frame."""
from __future__ import annotations

import pytest
import torch

from benchmarks import temporal
from nets.transformer_net import NetConfig


class Pointwise(torch.nn.Module):
    """y = a * x + b per pixel, and optionally a fixed 8 px texture that stays put while the scene moves."""

    config = NetConfig(widths=(8, 8, 8), blocks=1)  # only .stride is read

    def __init__(self, a: float = 1.0, b: float = 0.0, texture: float = 0.0):
        super().__init__()
        self.a, self.b, self.texture = a, b, texture
        self.tile = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.5

    def forward(self, x):
        h, w = x.shape[-2:]
        grid = self.tile.repeat(1, 1, h // 8 + 1, w // 8 + 1)[..., :h, :w]
        return (self.a * x + self.b + self.texture * grid).clamp(0, 1)


@pytest.fixture(scope="module")
def frames():
    return temporal.sample_frames(count=12, size=(160, 128))


def test_a_net_that_changes_nothing_scores_one(frames):
    r = temporal.flicker(Pointwise(), frames)
    assert r["flicker"] == pytest.approx(1.0, abs=1e-6) and r["warp_error"] == r["input_warp_error"] > 0


def test_flattening_lowers_it_and_a_texture_fixed_to_the_frame_raises_it(frames):
    assert temporal.flicker(Pointwise(a=0.5, b=0.25), frames)["flicker"] == pytest.approx(0.5, abs=0.02)
    assert temporal.flicker(Pointwise(texture=0.3), frames)["flicker"] > 1.5


def test_noise_gain_is_one_for_a_pass_through_net_and_scales_with_contrast(frames):
    assert temporal.noise_gain(Pointwise(), frames)["noise_gain"] == pytest.approx(1.0, abs=0.02)
    assert temporal.noise_gain(Pointwise(a=0.5, b=0.25), frames)["noise_gain"] == pytest.approx(0.5, abs=0.1)
    # a texture fixed to the frame moves nothing when only noise changes
    assert temporal.noise_gain(Pointwise(texture=0.3), frames)["noise_gain"] == pytest.approx(1.0, abs=0.1)
