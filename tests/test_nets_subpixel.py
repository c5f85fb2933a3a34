"""The sub-pixel rewrite of the upsampling layers computes the same function as the nets it came from."""
import pytest
import torch

from nets_media import one_torch_thread  # noqa: F401 (autouse fixture)
from nets.subpixel import SubPixelUpsampleConv, fold_upsampling
from nets.transformer_net import ARCHS, UpsampleConv, build

SIZES = {"lite": [(16, 16), (16, 40), (72, 48)], "full": [(12, 20), (36, 28)]}  # multiples of each net's stride


def randomized(arch: str) -> torch.nn.Module:
    """A net whose every weight, bias and norm affine is random, so a wrong tap or phase shows."""
    torch.manual_seed(1)
    net = build(arch).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return net


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_folded_net_matches_the_original(arch):
    net = randomized(arch)
    folded = fold_upsampling(net)
    for hw in SIZES[arch]:
        x = torch.rand(2, 3, *hw)  # (B, 3, H, W)
        with torch.no_grad():
            want, got = net(x), folded(x)
        assert got.shape == want.shape
        assert (got - want).abs().max().item() < 1e-5, hw


def test_one_layer_matches_at_every_pixel_including_borders():
    torch.manual_seed(2)
    layer = UpsampleConv(5, 4, 3, 2).eval()
    sub = SubPixelUpsampleConv(layer)
    x = torch.randn(1, 5, 3, 7)
    with torch.no_grad():
        assert torch.allclose(sub(x), layer(x), atol=1e-5)


def test_only_scale_two_three_by_three_layers_are_rewritten_and_the_input_is_untouched():
    net = randomized("full")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_upsampling(net)
    # full: deconv1/deconv2 upsample x2 with 3x3 kernels; deconv3 is a 9x9 at scale 1 and stays.
    assert isinstance(folded.deconv1, SubPixelUpsampleConv) and isinstance(folded.deconv2, SubPixelUpsampleConv)
    assert isinstance(folded.deconv3, UpsampleConv)
    assert isinstance(net.deconv1, UpsampleConv)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    lite = fold_upsampling(randomized("lite"))  # lite: all three upsample x2 with 3x3 kernels
    assert all(isinstance(getattr(lite, n), SubPixelUpsampleConv) for n in ("deconv1", "deconv2", "deconv3"))


def test_onnxruntime_export_of_the_folded_net_keeps_dynamic_sizes():
    pytest.importorskip("onnxruntime")
    from realtime.onnx_cpu import OnnxRuntimeNet

    net = randomized("lite")
    ort_net = OnnxRuntimeNet(net, threads=1)  # exported at 64x64
    for hw in [(48, 80), (120, 96)]:
        x = torch.rand(1, 3, *hw)
        with torch.no_grad():
            want = net(x)
        assert (ort_net(x) - want).abs().max().item() < 1e-5, hw
