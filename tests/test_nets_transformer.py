"""Style networks: shapes, dtypes and range for both architectures, odd sizes, MAC budget, fp16 parity."""
import copy

import pytest
import torch

from nets_media import photo, one_torch_thread  # noqa: F401 (autouse fixture)
from nets.images import to_tensor
import dataclasses

import torch.nn.functional as F

from nets.transformer_net import ARCHS, NetConfig, TransformerNet, build, count_macs, pad_to_stride

# fp16 on CUDA vs fp32, both on the same input: at most ~5 grey levels anywhere and half a grey level
# on average. Measured with fp16 on CPU for reference: max 0.0019, mean 0.0003 (random init, 128 px).
FP16_MAX_ABS, FP16_MEAN_ABS = 2e-2, 2e-3


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("hw", [(37, 53), (48, 64)])
def test_shapes_dtype_and_range_at_odd_sizes(arch, hw):
    torch.manual_seed(0)
    net = build(arch).eval()
    stride = net.config.stride
    x = torch.rand(2, 3, *hw)  # (B, 3, H, W)
    padded, (h, w) = pad_to_stride(x, stride)
    assert (h, w) == hw
    assert padded.shape[-2] % stride == 0 and padded.shape[-1] % stride == 0
    assert padded.shape[-2] - h < stride and padded.shape[-1] - w < stride
    assert torch.equal(padded[..., :h, :w], x)  # padding only appends
    with torch.no_grad():
        y = net(padded)
    assert y.shape == padded.shape and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1  # sigmoid output, RGB 0..1
    assert y[..., :h, :w].shape == x.shape


def test_strides():
    assert build("lite").config.stride == 8 and build("full").config.stride == 4


def test_margin_is_the_bare_net_on_the_reflected_frame_cropped_back():
    """The lite net runs on the frame reflect-extended by its margin, and the output is the frame's own
    size: the border texture it paints lands in the margin, outside the frame."""
    torch.manual_seed(0)
    net = build("lite").eval()
    assert net.config.margin == 8 and build("full").config.margin == 0
    bare = TransformerNet(dataclasses.replace(net.config, margin=0)).eval()
    bare.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        y = net(x)
        want = bare(F.pad(x, (8, 8, 8, 8), mode="reflect"))[..., 8:-8, 8:-8]
        assert y.shape == x.shape and torch.allclose(y, want, atol=1e-6)
        assert not torch.allclose(y, bare(x), atol=1e-3)  # the margin changes what the net sees


def test_margin_must_keep_sides_on_the_stride():
    with pytest.raises(ValueError, match="multiple of the stride"):
        NetConfig(stem_stride=2, margin=4)


def test_mac_budgets():
    # The lite net is designed for a 2-core CPU: <= ~0.4 GMAC at 320x240 (DEVELOPERS.md: ~0.34 with its margin).
    assert count_macs(build("lite"), 240, 320) < 0.4e9
    # MACs scale with pixels; full at 160x120 x 16 = full at 640x480 ~ 47 GMAC.
    assert count_macs(build("full"), 120, 160) * 16 == pytest.approx(47e9, rel=0.1)


def test_unknown_arch():
    with pytest.raises(ValueError, match="lite"):
        build("huge")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_fp16_cuda_matches_fp32(arch):
    torch.manual_seed(0)
    net32 = build(arch).eval().cuda()
    net16 = copy.deepcopy(net32).half()
    x, _ = pad_to_stride(to_tensor(photo("astronaut", 256)).cuda(), net32.config.stride)
    with torch.inference_mode():
        y32 = net32(x)
        y16 = net16(x.half())
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    err = (y32 - y16.float()).abs()
    assert err.max().item() < FP16_MAX_ABS and err.mean().item() < FP16_MEAN_ABS, (err.max().item(), err.mean().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_inference_instance_norm_matches_pytorch_to_the_dtype_rounding(dtype):
    """The CUDA inference path's instance norm, run here on the CPU: same function as F.instance_norm, also
    for channels whose mean dwarfs their spread (a naive x * scale + shift in fp16 loses those)."""
    from nets.transformer_net import instance_norm_inference

    torch.manual_seed(0)
    means = torch.tensor([0.0, 100.0, -50.0, 3.0, 0.01, 30.0, -7.0, 20.0]).view(1, -1, 1, 1)
    x = (torch.randn(2, 8, 37, 53) * 0.5 + means).to(dtype)
    weight, bias = torch.rand(8) + 0.5, torch.randn(8)
    ref = F.instance_norm(x.double(), weight=weight.double(), bias=bias.double(), eps=1e-5)
    y = instance_norm_inference(x, weight, bias, 1e-5)
    rounding = (ref.to(dtype).double() - ref).abs().max().item()  # what storing the exact answer costs
    assert y.dtype == dtype and y.shape == x.shape
    assert (y.double() - ref).abs().max().item() <= max(2 * rounding, 1e-4)


def test_instance_norm_keeps_the_weights_layout_and_the_cpu_path():
    from nets.transformer_net import InstanceNorm

    norm = InstanceNorm(4)
    assert set(norm.state_dict()) == set(torch.nn.InstanceNorm2d(4, affine=True).state_dict()) == {"weight", "bias"}
    x = torch.randn(1, 4, 9, 11)
    with torch.no_grad():  # CPU: PyTorch's own kernel (what ONNX export and oneDNN see)
        assert torch.equal(norm(x), F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=norm.eps))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inference_instance_norm_matches_pytorch():
    from nets.transformer_net import InstanceNorm

    norm = InstanceNorm(16).cuda()
    x = torch.randn(2, 16, 67, 45, device="cuda") * 3 + 40
    ref = F.instance_norm(x.double(), weight=norm.weight.double(), bias=norm.bias.double(), eps=norm.eps)
    with torch.inference_mode():
        y32, y16 = norm(x), norm.half()(x.half())
    assert (y32.double() - ref).abs().max().item() < 1e-3
    assert (y16.double() - ref).abs().max().item() < 1e-2
