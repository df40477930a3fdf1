"""Residual Attention Network: mask branch, ARL vs NAL, activations, shapes, bad arguments."""
import pytest
import torch

from attn_lesson import ResNetBackbone
from attn_lesson.residual import (AttentionModule, ResidualAttentionNet, SoftMaskBranch,
                                  mask_activation)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("depth, size", [(1, 10), (2, 20), (3, 8)])
def test_mask_branch_shapes_and_range(depth, size):
    br = SoftMaskBranch(6, depth).eval()
    with torch.no_grad():
        m = br(torch.randn(2, 6, size, size))
    assert m.shape == (2, 6, size, size)
    assert float(m.min()) > 0 and float(m.max()) < 1


def test_activations():
    z = torch.randn(2, 5, 4, 6)
    torch.testing.assert_close(mask_activation(z, "mixed"), torch.sigmoid(z))
    ch = mask_activation(z, "channel")
    torch.testing.assert_close(ch.norm(dim=1), torch.ones(2, 4, 6))
    sp = torch.logit(mask_activation(z, "spatial"))          # standardised maps before the sigmoid
    torch.testing.assert_close(sp.mean((2, 3)), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(sp.std((2, 3), unbiased=False), torch.ones(2, 5), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="activation must be one of"):
        mask_activation(z, "softmax")


@pytest.mark.parametrize("learning", ["arl", "nal"])
def test_zero_mask_gives_trunk_or_zeros(learning):
    mod = AttentionModule(4, depth=1, learning=learning, pre=0, post=0).eval()
    mod.mask.forward = lambda x: torch.zeros_like(x)       # M = 0
    x = torch.randn(2, 4, 6, 6)
    out = mod(x)
    expected = mod.trunk(x) if learning == "arl" else torch.zeros_like(x)
    torch.testing.assert_close(out, expected)


def test_module_equation_and_mask_record():
    mod = AttentionModule(4, depth=2, learning="arl").eval()
    x = torch.randn(2, 4, 8, 8)
    h = mod.pre(x)
    expected = mod.post((1 + mod.mask(h)) * mod.trunk(h))
    torch.testing.assert_close(mod(x), expected)
    torch.testing.assert_close(mod.last_mask, mod.mask(h))
    mod.learning = "nal"
    torch.testing.assert_close(mod(x), mod.post(mod.mask(h) * mod.trunk(h)))


def test_network_shapes_gradients_and_baseline():
    net = ResidualAttentionNet(modules=(2, 1), mask_depths=(2, 1))
    x = torch.randn(3, 1, 40, 40)
    out = net(x)
    assert out.shape == (3, 10) and len(net.attention_modules()) == 3
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    feats = net.features(x)
    assert feats["stage1"].shape == (3, 16, 20, 20) and feats["stage3"].shape == (3, 64, 5, 5)
    assert net.attention_modules()[0].last_mask.shape == (3, 16, 20, 20)
    torch.manual_seed(1)
    base = ResidualAttentionNet(modules=(0, 0)).eval()
    torch.manual_seed(1)
    ref = ResNetBackbone().eval()
    torch.testing.assert_close(base(x), ref(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth \\(of the mask branch\\) must be an int >= 1"):
        SoftMaskBranch(4, depth=0)
    with pytest.raises(ValueError, match="divisible by 4; got a 10x10 map"):
        SoftMaskBranch(4, depth=2)(torch.randn(1, 4, 10, 10))
    with pytest.raises(ValueError, match="divisible by 2; got a 5x6 map"):
        SoftMaskBranch(4, depth=1)(torch.randn(1, 4, 5, 6))
    with pytest.raises(ValueError, match="learning must be 'arl'"):
        AttentionModule(4, learning="residual")
    with pytest.raises(ValueError, match="activation must be one of"):
        AttentionModule(4, activation="tanh")
    with pytest.raises(ValueError, match="trunk must be an int >= 1"):
        AttentionModule(4, trunk=0)
    with pytest.raises(ValueError, match="one entry per stage but the last"):
        ResidualAttentionNet(modules=(1, 1, 1))
    with pytest.raises(ValueError, match="every entry of modules must be an int >= 0"):
        ResidualAttentionNet(modules=(-1, 1))
    with pytest.raises(ValueError, match="divisible by 8"):        # depth 3 on a 20x20 stage-1 map
        ResidualAttentionNet(mask_depths=(3, 1))(torch.randn(1, 1, 40, 40))


def test_network_passes_unit_counts_to_every_module():
    net = ResidualAttentionNet(modules=(2, 1), pre=0, trunk=1, post=0)
    for mod in net.attention_modules():
        assert len(mod.pre) == 0 and len(mod.trunk) == 1 and len(mod.post) == 0
    with pytest.raises(ValueError, match="trunk must be an int >= 1"):
        ResidualAttentionNet(modules=(1, 1), trunk=0)
    with pytest.raises(ValueError, match="pre must be an int >= 0"):
        ResidualAttentionNet(modules=(1, 1), pre=-1)
