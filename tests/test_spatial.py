"""Spatial and mixed attention (spatial gate, CBAM's channel gate, CBAM, BAM): shapes, gradients,
equations, bad arguments, equivalence with timm's CbamModule (weights copied) and the
backbone's slots."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import randomize_bn

from attn_lesson import (BAM, CBAM, ChannelGate, ResNetBackbone, SEModule, SpatialGate, bam, cbam,
                         channel_gate, spatial_gate)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)




# ---------------------------------------------------------------- spatial gate
@pytest.mark.parametrize("pool", ["avg", "max", "both"])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_spatial_gate_shapes_and_equation(pool, k):
    g = randomize_bn(SpatialGate(k, pool=pool)).eval()
    x = torch.randn(3, 6, 9, 11)
    y = g(x)
    assert y.shape == x.shape
    m = g.last_map
    assert m.shape == (3, 1, 9, 11) and not m.requires_grad
    assert m.min() > 0 and m.max() < 1
    parts = {"avg": [x.mean(1, keepdim=True)], "max": [x.amax(1, keepdim=True)],
             "both": [x.mean(1, keepdim=True), x.amax(1, keepdim=True)]}[pool]
    d = torch.cat(parts, 1)
    bn = g.conv.bn
    logit = F.batch_norm(F.conv2d(d, g.conv.conv.weight, padding=k // 2), bn.running_mean,
                         bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    torch.testing.assert_close(m, torch.sigmoid(logit))
    torch.testing.assert_close(y, x * torch.sigmoid(logit))


def test_spatial_gate_is_channel_count_agnostic_and_without_norm():
    g = SpatialGate(3, norm=False)
    assert isinstance(g.conv.bn, nn.Identity)
    for c in (1, 5, 64):
        assert g(torch.randn(2, c, 4, 4)).shape == (2, c, 4, 4)
    assert sum(p.numel() for p in g.parameters()) == 2 * 3 * 3


@pytest.mark.parametrize("bad", [0, 2, 4, -3, 1.0, True, "7"])
def test_spatial_gate_rejects_bad_kernel(bad):
    with pytest.raises(ValueError, match="kernel_size must be an odd positive int"):
        SpatialGate(bad)
    with pytest.raises(ValueError, match="kernel_size must be an odd positive int"):
        spatial_gate(bad)


def test_spatial_gate_rejects_bad_pool():
    with pytest.raises(ValueError, match="pool must be one of"):
        SpatialGate(7, pool="mean")


# ---------------------------------------------------------------- channel gate
def test_channel_gate_equation_and_avg_only_equals_se():
    g = ChannelGate(16, 4)
    x = torch.randn(2, 16, 5, 5)
    y = g(x)
    mlp = lambda z: g.fc2(F.relu(g.fc1(z)))  # noqa: E731
    s = torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    torch.testing.assert_close(y, x * s)
    torch.testing.assert_close(g.last_weights, s.flatten(1))
    # with average pooling only, CBAM's channel gate is SE with the same weights
    avg = ChannelGate(16, 4, pool="avg")
    se = SEModule(16, 4)
    se.load_state_dict(avg.state_dict())
    torch.testing.assert_close(avg(x), se(x))
    # max pooling only: the same MLP on the max-pooled vector alone
    mx = ChannelGate(16, 4, pool="max")
    mx.load_state_dict(g.state_dict())
    torch.testing.assert_close(mx(x), x * torch.sigmoid(mlp(x.amax((2, 3), keepdim=True))))


@pytest.mark.parametrize("channels, reduction", [(8, 16), (4, 5)])
def test_channel_gate_rejects_reduction_larger_than_channels(channels, reduction):
    with pytest.raises(ValueError, match="reduction larger than channels"):
        ChannelGate(channels, reduction)
    with pytest.raises(ValueError, match="reduction larger than channels"):
        CBAM(channels, reduction)
    with pytest.raises(ValueError, match="reduction larger than channels"):
        BAM(channels, reduction)


@pytest.mark.parametrize("bad", [0, -1, 2.5, None])
def test_channel_gate_rejects_bad_reduction(bad):
    with pytest.raises(ValueError, match="reduction must be an int"):
        ChannelGate(16, bad)


# ---------------------------------------------------------------- CBAM
@pytest.mark.parametrize("order", ["channel-spatial", "spatial-channel", "parallel"])
def test_cbam_orders(order):
    m = randomize_bn(CBAM(16, 4, 7, order=order)).eval()
    x = torch.randn(2, 16, 6, 6)
    y = m(x)
    ch, sp = m.channel, m.spatial
    if order == "channel-spatial":
        x1 = x * ch.attention(x)
        ref = x1 * sp.attention(x1)
    elif order == "spatial-channel":
        x1 = x * sp.attention(x)
        ref = x1 * ch.attention(x1)
    else:
        ref = x * ch.attention(x) + x * sp.attention(x)
    torch.testing.assert_close(y, ref)
    assert m.last_map.shape == (2, 1, 6, 6) and m.last_weights.shape == (2, 16)


def test_cbam_rejects_bad_order_and_kernel():
    with pytest.raises(ValueError, match="order must be one of"):
        CBAM(16, 4, order="both")
    with pytest.raises(ValueError, match="odd positive int"):
        CBAM(16, 4, kernel_size=6)


def test_cbam_matches_timm_with_copied_weights():
    cbam_mod = pytest.importorskip("timm.layers.cbam")
    ours = randomize_bn(CBAM(32, 4, 7)).eval()
    # timm's MLP has no bias by default; the official CBAM (and ours) uses biases
    theirs = cbam_mod.CbamModule(32, rd_channels=8, mlp_bias=True, spatial_kernel_size=7).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, 32, 9, 9)
    torch.testing.assert_close(ours(x), theirs(x))


def test_cbam_matches_official_max_mean_order_after_swapping_conv_inputs():
    """The authors' code stacks [max, mean]; swapping the conv's two input channels maps it to ours."""
    ours = randomize_bn(SpatialGate(7)).eval()
    w = ours.conv.conv.weight                              # (1, 2, 7, 7), inputs [avg, max]
    x = torch.randn(2, 8, 10, 10)
    official_in = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
    bn = ours.conv.bn
    logit = F.batch_norm(F.conv2d(official_in, w.flip(1), padding=3), bn.running_mean,
                         bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    torch.testing.assert_close(ours(x), x * torch.sigmoid(logit))


# ---------------------------------------------------------------- BAM
@pytest.mark.parametrize("fusion", ["sum", "product", "max"])
def test_bam_equation(fusion):
    m = randomize_bn(BAM(16, 4, 2, fusion=fusion)).eval()
    x = torch.randn(2, 16, 8, 8)
    y = m(x)
    mc, ms = m.logits(x)
    assert mc.shape == (2, 16, 1, 1) and ms.shape == (2, 1, 8, 8)
    fused = {"sum": mc + ms, "product": mc * ms, "max": torch.maximum(mc, ms)}[fusion]
    M = torch.sigmoid(fused)
    torch.testing.assert_close(y, x + x * M)
    torch.testing.assert_close(m.last_map, M.mean(1, keepdim=True))
    torch.testing.assert_close(m.last_weights, torch.sigmoid(mc).flatten(1))
    torch.testing.assert_close(m.last_spatial, torch.sigmoid(ms))


@pytest.mark.parametrize("d", [1, 2, 4])
def test_bam_spatial_branch_keeps_size_and_uses_dilation(d):
    m = BAM(16, 4, d)
    dil = [c.dilation for c in m.spatial_branch if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)]
    assert dil == [(d, d), (d, d)]
    assert m(torch.randn(2, 16, 5, 7)).shape == (2, 16, 5, 7)


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bam_rejects_bad_dilation(bad):
    with pytest.raises(ValueError, match="dilation must be an int >= 1"):
        BAM(16, 4, bad)


def test_bam_rejects_bad_fusion():
    with pytest.raises(ValueError, match="fusion must be one of"):
        BAM(16, 4, fusion="mean")


# ---------------------------------------------------------------- gradients and backbone slots
@pytest.mark.parametrize("make", [lambda: SpatialGate(7), lambda: ChannelGate(16, 4),
                                  lambda: CBAM(16, 4), lambda: BAM(16, 4)])
def test_gradients_reach_every_parameter(make):
    m = make()
    x = torch.randn(4, 16, 6, 6, requires_grad=True)
    m(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("factory", [spatial_gate(7), channel_gate(4), cbam(4), bam(4)])
def test_factories_fit_the_block_slot(factory):
    net = ResNetBackbone(attention=factory)
    assert net(torch.randn(2, 1, 40, 40)).shape == (2, 10)
    assert len(net.attention_modules()) == 3


def test_bam_between_stages():
    net = ResNetBackbone(stage_attention=bam(4))
    mods = net.attention_modules()
    assert [type(m) for m in mods] == [BAM, BAM]          # after stages 1 and 2, not after 3
    assert [m.channels for m in mods] == [16, 32]
    x = torch.randn(2, 1, 40, 40)
    assert net(x).shape == (2, 10)
    feats = net.features(x)
    assert mods[0].last_map.shape == (2, 1, 20, 20) and mods[1].last_map.shape == (2, 1, 10, 10)
    # the features are the stages' outputs after BAM
    torch.testing.assert_close(feats["stage1"], net.transitions[0](net.stages[0](feats["stem"])))


def test_baseline_state_dict_unchanged_by_transition_slots():
    keys = set(ResNetBackbone().state_dict())
    assert not any(k.startswith("transitions") for k in keys)
