"""Perceptual losses: Gram normalization, masks that honour their region, TV, the shared criterion."""
import pytest
import torch

from nets_media import painting, photo, one_torch_thread  # noqa: F401 (autouse fixture)
from nets.images import to_tensor
from nets.losses import PerceptualCriterion, content_loss, gram, style_loss, tv_loss
from nets.vgg import VGG16


def test_gram_is_normalized_by_c_h_w():
    torch.manual_seed(0)
    f = torch.rand(2, 8, 5, 7)
    flat = f.reshape(2, 8, 35)
    assert torch.allclose(gram(f), flat @ flat.transpose(1, 2) / (8 * 35), atol=1e-6)
    # Constant features: the Gram does not depend on the image size.
    assert torch.allclose(gram(torch.full((1, 4, 6, 6), 3.0)), torch.full((1, 4, 4), 9 / 4))
    assert torch.allclose(gram(torch.full((1, 4, 24, 30), 3.0)), torch.full((1, 4, 4), 9 / 4))


def test_masked_gram_measures_only_the_region():
    torch.manual_seed(0)
    f = torch.rand(1, 6, 8, 10)
    left = torch.zeros(1, 1, 8, 10)
    left[..., :4] = 1
    # Same as the Gram of the region alone, normalized by its own area.
    assert torch.allclose(gram(f, left), gram(f[..., :4]), atol=1e-6)
    changed = f.clone()
    changed[..., 4:] = torch.rand(1, 6, 8, 6) * 5  # what happens outside the mask does not count
    assert torch.allclose(gram(changed, left), gram(f, left), atol=1e-6)
    assert torch.allclose(gram(f, torch.ones(1, 1, 8, 10)), gram(f), atol=1e-6)
    targets = {"a": gram(f[..., :4])}
    assert style_loss({"a": changed}, targets, mask=left).item() == pytest.approx(0.0, abs=1e-10)
    assert style_loss({"a": changed}, targets).item() > 1e-3


def test_masked_gram_resizes_the_mask():
    f = torch.rand(1, 3, 4, 4)
    fine = torch.zeros(1, 1, 16, 16)
    fine[..., :8] = 1  # left half at 4x the feature resolution
    assert torch.allclose(gram(f, fine), gram(f[..., :2]), atol=1e-6)


def test_content_and_tv():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert content_loss(a, b).item() == pytest.approx(0.25)
    assert tv_loss(b).item() == 0
    stripes = torch.zeros(1, 3, 4, 4)
    stripes[..., 1::2] = 1  # every horizontal neighbour differs by 1, vertical ones by 0
    assert tv_loss(stripes).item() == pytest.approx(1.0)


def test_criterion_is_relative():
    vgg = VGG16(("relu1_1", "relu2_1", "relu2_2", "relu3_1"))
    content = to_tensor(photo("astronaut", 64))
    style = to_tensor(painting(64))
    crit = PerceptualCriterion(vgg, style, ("relu2_2",), ("relu1_1", "relu2_1", "relu3_1"))
    targets = crit.content_targets(content)
    same = crit(content, targets)
    assert same["content"].item() == 0
    matched = crit(style, crit.content_targets(style))
    assert matched["style"].item() < 1e-6  # the painting matches its own Grams
    photo_vs_painting = crit(content, targets)["style"].item()
    assert 0.1 < photo_vs_painting < 100  # relative: order 1 for unrelated images, not 1e5
    torch.manual_seed(0)
    noise = crit(torch.rand_like(content), targets)
    assert noise["content"].item() > 0.1 and noise["tv"].item() > 0.3
    by_layer = crit.style_by_layer(content)
    assert list(by_layer) == ["relu1_1", "relu2_1", "relu3_1"] and min(by_layer.values()) > 0
    assert sum(by_layer.values()) == pytest.approx(photo_vs_painting, rel=1e-5)


def test_stride_lattice_finds_a_pattern_on_the_grid_and_not_in_a_photo():
    from nets.losses import stride_lattice
    from nets_media import photo

    rgb = torch.from_numpy(photo("astronaut", 256)).permute(2, 0, 1)[None].float() / 255
    tile = torch.rand(1, 3, 8, 8)
    gridded = (rgb + 0.2 * (tile.repeat(1, 1, 32, 32) - 0.5)).clamp(0, 1)  # an 8 px texture over the photo
    plain, on_grid = float(stride_lattice(rgb, 8)), float(stride_lattice(gridded, 8))
    assert plain < 0.01 and on_grid > 0.04  # the texture's RMS is 0.2 * 0.29 = 0.058
    assert float(stride_lattice(gridded[..., 3:, 5:], 8)) > 0.04  # the grid's phase does not matter
    assert float(stride_lattice(torch.full((2, 3, 16, 16), 0.4), 8).max()) < 1e-6  # float rounding only


def test_shift_loss_is_zero_for_a_shift_equivariant_net_and_not_for_a_gridded_one():
    from nets.losses import shift_loss

    x = torch.rand(2, 3, 64, 64)
    smooth = torch.nn.Conv2d(3, 3, 1)  # pointwise: equivariant everywhere, borders included
    tile = torch.rand(1, 3, 8, 8)

    def gridded(batch):  # paints a texture fixed to its own 8 px grid
        h, w = batch.shape[-2:]
        return batch + tile.repeat(1, 1, h // 8, w // 8)

    with torch.no_grad():
        for _ in range(5):  # random shifts
            assert float(shift_loss(smooth, x, smooth(x), 8)) < 1e-10
            assert float(shift_loss(gridded, x, gridded(x), 8)) > 1e-3
    with pytest.raises(ValueError, match="at least 2 strides"):  # the moved crop would be empty
        shift_loss(smooth, x[..., :12, :12], smooth(x[..., :12, :12]), 8)


def test_noise_loss_is_zero_for_a_noise_blind_net_and_grows_with_the_nets_gain():
    from nets.losses import noise_loss

    x = torch.rand(2, 3, 32, 32)
    constant = lambda batch: torch.full_like(batch, 0.5)  # ignores its input, noise included
    identity = lambda batch: batch
    amplifier = lambda batch: 4 * batch  # repaints every pixel with 4x the noise
    torch.manual_seed(0)
    assert float(noise_loss(constant, x, constant(x))) == 0.0
    quiet, loud = float(noise_loss(identity, x, identity(x))), float(noise_loss(amplifier, x, amplifier(x)))
    assert 0.5 * 0.02 ** 2 < quiet < 0.02 ** 2  # clamping at 0 and 1 trims some of the noise's variance
    assert loud == pytest.approx(16 * quiet, rel=0.2)


def test_warp_loss_is_zero_for_a_net_whose_paint_moves_with_the_picture():
    """A pointwise net commutes with any resampling: it pays nothing. A net that lays a texture fixed to
    the frame (not to the picture) pays for it, and more for a stronger texture."""
    from nets.losses import warp_loss

    x = to_tensor(photo("astronaut", 96))
    pointwise = torch.nn.Conv2d(3, 3, 1)
    pattern = torch.rand(1, 3, 96, 96)
    fixed = lambda strength: (lambda batch: batch + strength * pattern)  # noqa: E731
    torch.manual_seed(0)
    with torch.no_grad():
        assert float(warp_loss(pointwise, x, pointwise(x))) < 1e-10
        weak, strong = (float(warp_loss(fixed(s), x, fixed(s)(x))) for s in (0.05, 0.2))
    assert weak > 1e-4 and strong == pytest.approx(16 * weak, rel=0.3)
    with pytest.raises(ValueError, match="sides over 32 px"):
        warp_loss(pointwise, x[..., :32, :32], pointwise(x[..., :32, :32]))


def test_random_motion_moves_pixels_by_what_it_says():
    """A pure move of the sampling grid shifts the picture by at most `shift` pixels each way; a pure
    turn keeps pixels square on a wide frame (a 90-degree turn of a 2:1 frame maps its middle row onto
    its middle column's span, not stretched)."""
    from nets.losses import random_motion

    theta = random_motion(64, 60, 120, shift=3, degrees=0, zoom=0, generator=torch.Generator().manual_seed(0))
    moves = theta[:, :, 2] * torch.tensor([120 / 2, 60 / 2])  # normalized -> pixels
    assert moves.abs().max() <= 3 and moves.abs().max() > 2  # uniform over the range
    assert torch.allclose(theta[:, :, :2], torch.eye(2).expand(64, 2, 2))
    turn = random_motion(1, 60, 120, shift=0, degrees=90, zoom=0, generator=torch.Generator().manual_seed(0))
    pixel = torch.diag(torch.tensor([120 / 2, 60 / 2]))  # normalized -> pixel coordinates
    in_pixels = pixel @ turn[0, :, :2] @ torch.linalg.inv(pixel)
    assert torch.allclose(in_pixels @ in_pixels.T, torch.eye(2) * float(torch.linalg.det(in_pixels)), atol=1e-5)


def test_border_texture_finds_stripes_along_the_edges_and_not_in_a_photo():
    from nets.losses import border_texture

    x = to_tensor(photo("astronaut", 256))
    own = float(border_texture(x))
    assert 0.3 < own < 1.0  # a photo's edges are about as detailed as its inside
    striped = x.clone()
    striped[..., :, :3] = torch.rand(1, 3, 256, 3)  # noise in the outer 3 px of the left side
    striped[..., :3, :] = torch.rand(1, 3, 3, 256)
    assert float(border_texture(striped)) > 2 * own
