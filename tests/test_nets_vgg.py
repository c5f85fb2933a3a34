"""VGG16 loss network: the real ImageNet weights (from `stylecam fetch-vgg`), strict loading, shapes."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from nets_media import one_torch_thread  # noqa: F401 (autouse fixture)
from nets.vgg import VGG16, VGGWeightsError, default_weights_path


def test_weights_are_the_imagenet_ones():
    vgg = VGG16(("relu5_3",))  # every convolution, loaded strictly from the cache
    # Keras/Caffe ImageNet VGG16 block1_conv1 bias.
    expected = torch.tensor([0.7343, 0.0934, 0.0678, 0.8863])
    assert torch.allclose(vgg.convs["conv1_1"].bias[:4], expected, atol=1e-4)
    assert len(vgg.convs) == 13
    assert not any(p.requires_grad for p in vgg.parameters())


def test_named_layers_and_shapes():
    vgg = VGG16(("relu1_1", "relu2_2", "relu3_3", "conv4_2", "relu5_1"))
    feats = vgg(torch.rand(1, 3, 48, 64))
    assert feats._fields == ("relu1_1", "relu2_2", "relu3_3", "conv4_2", "relu5_1")
    assert feats.relu1_1.shape == (1, 64, 48, 64)
    assert feats.relu2_2.shape == (1, 128, 24, 32)
    assert feats.relu3_3.shape == (1, 256, 12, 16)
    assert feats.conv4_2.shape == (1, 512, 6, 8)
    assert feats.relu5_1.shape == (1, 512, 3, 4)
    assert feats.relu2_2.min() >= 0 and feats.conv4_2.min() < 0  # relu vs raw convolution
    assert "conv5_2" not in vgg.convs  # computed only up to the deepest requested layer


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(VGGWeightsError) as exc:
        VGG16(("relu1_1",), weights=tmp_path / "absent.safetensors")
    message = _one_line(exc)
    assert "stylecam fetch-vgg" in message and "absent.safetensors" in message


def test_default_path_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECAM_VGG", str(tmp_path / "elsewhere.safetensors"))
    assert default_weights_path() == tmp_path / "elsewhere.safetensors"
    with pytest.raises(VGGWeightsError, match="fetch-vgg"):
        VGG16(("relu1_1",))


def test_mismatched_file_fails(tmp_path):
    real = load_file(str(default_weights_path()))
    wrong_shape = dict(real, **{"conv1_1.weight": torch.zeros(64, 3, 5, 5)})
    save_file(wrong_shape, str(tmp_path / "shape.safetensors"))
    with pytest.raises(VGGWeightsError, match="conv1_1.weight") as exc:
        VGG16(("relu1_1",), weights=tmp_path / "shape.safetensors")
    _one_line(exc)
    shallow = {k: v for k, v in real.items() if k.startswith(("conv1_", "conv2_"))}
    save_file(shallow, str(tmp_path / "shallow.safetensors"))
    VGG16(("relu2_2",), weights=tmp_path / "shallow.safetensors")  # enough for this model
    with pytest.raises(VGGWeightsError, match="conv3_1"):  # never a network left half random
        VGG16(("relu3_1",), weights=tmp_path / "shallow.safetensors")


def test_a_file_with_nan_weights_is_damaged(tmp_path):
    """A cache of the right shapes but NaN values passed as 'already at' and training then 'diverged at step 1'."""
    real = load_file(str(default_weights_path()))
    poisoned = dict(real, **{"conv2_1.bias": torch.full_like(real["conv2_1.bias"], float("nan"))})
    save_file(poisoned, str(tmp_path / "nan.safetensors"))
    with pytest.raises(VGGWeightsError, match="NaN or infinite values at conv2_1.bias") as exc:
        VGG16(("relu2_1",), weights=tmp_path / "nan.safetensors")
    _one_line(exc)


def test_corrupt_file_fails(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x00\x01not a safetensors file" * 10)
    with pytest.raises(VGGWeightsError, match="fetch-vgg") as exc:
        VGG16(("relu1_1",), weights=path)
    _one_line(exc)


def test_unknown_layer():
    with pytest.raises(ValueError, match="relu9_9"):
        VGG16(("relu9_9",))
