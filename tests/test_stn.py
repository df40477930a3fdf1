"""Spatial Transformer: hand-built grid and sampler vs PyTorch, identity start, gradients, errors."""
import pytest
import torch
import torch.nn.functional as F

from attn_lesson.stn import (SpatialTransformer, STNet, affine_grid_by_hand, sample_bilinear)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(2, 3, 5, 7), (1, 1, 4, 4), (3, 2, 2, 6)])
def test_hand_grid_equals_affine_grid(size, align_corners):
    theta = torch.randn(size[0], 2, 3)
    torch.testing.assert_close(affine_grid_by_hand(theta, size, align_corners),
                               F.affine_grid(theta, size, align_corners=align_corners))


@pytest.mark.parametrize("align_corners", [False, True])
def test_hand_sampler_equals_grid_sample(align_corners):
    x = torch.randn(2, 3, 6, 5)
    grid = torch.rand(2, 4, 7, 2) * 2.6 - 1.3                       # some points outside the image
    torch.testing.assert_close(sample_bilinear(x, grid, align_corners),
                               F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                             align_corners=align_corners))


def test_hand_sampler_gradient_matches():
    x = torch.randn(1, 2, 5, 5)
    theta = (torch.eye(2, 3) + 0.2 * torch.randn(2, 3)).unsqueeze(0).requires_grad_()
    g1, = torch.autograd.grad(sample_bilinear(x, affine_grid_by_hand(theta, (1, 2, 5, 5))).square().sum(), theta)
    g2, = torch.autograd.grad(F.grid_sample(x, F.affine_grid(theta, (1, 2, 5, 5), align_corners=False),
                                            align_corners=False).square().sum(), theta)
    torch.testing.assert_close(g1, g2)


def test_identity_at_initialisation_and_gradients():
    st = SpatialTransformer(1)
    x = torch.rand(3, 1, 40, 40)
    torch.testing.assert_close(st(x), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(st.last_theta, torch.eye(2, 3).expand(3, 2, 3))
    net = STNet()
    loss = F.cross_entropy(net(x), torch.tensor([1, 2, 3]))
    loss.backward()
    assert net.st.regress[-1].weight.grad.abs().sum() > 0          # theta learns from the loss
    assert net(x).shape == (3, 10) and net.attention_modules() == [net.st]


def test_out_size_and_a_known_transform():
    st = SpatialTransformer(1, out_size=(10, 10))
    x = torch.zeros(1, 1, 20, 20)
    x[..., 5:15, 5:15] = 1
    with torch.no_grad():                     # zoom: read only the centre half of the input
        st.regress[-1].bias.copy_(torch.tensor([0.5, 0, 0, 0, 0.5, 0]))
    y = st(x)
    assert y.shape == (1, 1, 10, 10)
    torch.testing.assert_close(y, torch.ones_like(y))


def test_bad_arguments():
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        SpatialTransformer(0)
    with pytest.raises(ValueError, match="out_size must be None or a \\(height, width\\) pair"):
        SpatialTransformer(1, out_size=(10,))
    with pytest.raises(ValueError, match="theta must have shape \\(B, 2, 3\\)"):
        affine_grid_by_hand(torch.zeros(2, 3, 3), (2, 1, 4, 4))
    with pytest.raises(ValueError, match="expected x \\(B, C, H, W\\) and grid"):
        sample_bilinear(torch.zeros(1, 1, 4, 4), torch.zeros(2, 4, 4, 2))


def test_localisation_net_batch_norm_option():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 40, 40) * (torch.rand(16, 1, 40, 40) > 0.8)   # sparse ink in [0, 1]
    with_bn, without = SpatialTransformer(1), SpatialTransformer(1, norm=False)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn.features)
    assert n_bn == 2 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in without.features)
    # without BN the hidden features on [0, 1] images are tiny, with BN they are of order 0.1-1
    assert float(without.features(x).abs().mean()) < 0.1 < float(with_bn.features(x).abs().mean())
    torch.testing.assert_close(with_bn(x), x, atol=1e-5, rtol=0)      # still the identity at start
    assert not STNet(norm=False).st.features[1].__class__ is torch.nn.BatchNorm2d


def test_fixed_theta_control_stays_the_identity_while_the_backbone_learns():
    x, y = torch.rand(8, 1, 40, 40), torch.arange(8)
    net = STNet(out_size=(20, 20), backbone={"stem_stride": 1}, learn_theta=False)
    learned = STNet(out_size=(20, 20), backbone={"stem_stride": 1})
    assert not any(p.requires_grad for p in net.st.parameters())
    assert all(p.requires_grad for p in learned.st.parameters())
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.1)
    stem_before = net.backbone.stem[0].weight.detach().clone()
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    assert not torch.equal(net.backbone.stem[0].weight, stem_before)        # the backbone learns
    torch.testing.assert_close(net.st.last_theta, torch.eye(2, 3).expand(8, 2, 3))
    torch.testing.assert_close(net.st(x), F.avg_pool2d(x, 2), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="learn_theta must be True or False"):
        STNet(learn_theta="no")
