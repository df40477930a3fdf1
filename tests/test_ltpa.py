"""Learn to Pay Attention: equations, shapes, gradients, bad arguments."""
import pytest
import torch

from attn_lesson import LTPANet, LTPAttention, ResNetBackbone


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("mode", ["pc", "dp"])
@pytest.mark.parametrize("cl, cg", [(8, 8), (4, 8)])
def test_attention_equations(mode, cl, cg):
    att = LTPAttention(cl, cg, mode)
    local, g = torch.randn(3, cl, 5, 6), torch.randn(3, cg)
    g_a, a = att(local, g)
    assert g_a.shape == (3, cg) and a.shape == (3, 1, 5, 6)
    ell = local if cl == cg else torch.einsum("oc,bchw->bohw", att.project.weight[:, :, 0, 0], local)
    if mode == "pc":
        c = torch.einsum("c,bchw->bhw", att.u.weight.flatten(), ell + g[:, :, None, None])
    else:
        c = torch.einsum("bchw,bc->bhw", ell, g)
    a_ref = torch.softmax(c.flatten(1), 1).view(3, 5, 6)
    torch.testing.assert_close(a[:, 0], a_ref)
    torch.testing.assert_close(a.sum((1, 2, 3)), torch.ones(3))
    torch.testing.assert_close(g_a, torch.einsum("bhw,bchw->bc", a_ref, ell))
    torch.testing.assert_close(att.last_map, a.detach())


def test_attention_rejects_mismatched_feature_sizes():
    att = LTPAttention(8, 16)
    with pytest.raises(ValueError, match="mismatched feature sizes: local"):
        att(torch.randn(2, 4, 5, 5), torch.randn(2, 16))
    with pytest.raises(ValueError, match="mismatched feature sizes: the global"):
        att(torch.randn(2, 8, 5, 5), torch.randn(2, 12))
    with pytest.raises(ValueError, match="mismatched feature sizes: the global"):
        att(torch.randn(2, 8, 5, 5), torch.randn(3, 16))


def test_attention_rejects_bad_mode_and_channels():
    with pytest.raises(ValueError, match="mode must be one of"):
        LTPAttention(8, 8, "cosine")
    with pytest.raises(ValueError, match="local_channels must be an int"):
        LTPAttention(0, 8)


@pytest.mark.parametrize("aggregation", ["concat", "indep"])
@pytest.mark.parametrize("mode", ["pc", "dp"])
def test_net_forward_maps_and_gradients(mode, aggregation):
    net = LTPANet(levels=(2, 3), mode=mode, aggregation=aggregation)
    x = torch.randn(4, 1, 40, 40)
    y = torch.tensor([0, 1, 2, 3])
    logits = net(x)
    assert logits.shape == (4, 10)
    torch.nn.functional.cross_entropy(logits, y).backward()
    for name, p in net.named_parameters():
        if name.startswith("backbone.head"):
            continue
        assert p.grad is not None, name
    maps = net.attention_maps(x)
    assert set(maps) == {2, 3}
    assert maps[2].shape == (4, 1, 10, 10) and maps[3].shape == (4, 1, 5, 5)
    assert net.training


def test_net_classifies_from_descriptors_only():
    net = LTPANet(levels=(1, 2, 3)).eval()
    x = torch.randn(2, 1, 40, 40)
    feats = net.backbone.features(x)
    g = net.global_fc(feats["stage3"].mean((2, 3)))
    gas = [att(feats[f"stage{l}"], g)[0] for l, att in zip(net.levels, net.attn)]
    torch.testing.assert_close(net(x), net.heads[0](torch.cat(gas, 1)))
    assert net.heads[0].in_features == 3 * 64


def test_indep_averages_the_level_logits():
    net = LTPANet(levels=(2, 3), aggregation="indep").eval()
    x = torch.randn(2, 1, 40, 40)
    feats = net.backbone.features(x)
    g = net.global_fc(feats["stage3"].mean((2, 3)))
    per = [h(att(feats[f"stage{l}"], g)[0]) for h, l, att in zip(net.heads, net.levels, net.attn)]
    torch.testing.assert_close(net(x), (per[0] + per[1]) / 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(levels=(0, 1)), "levels must be distinct stage numbers"),
    (dict(levels=(2, 2)), "levels must be distinct stage numbers"),
    (dict(levels=()), "levels must be distinct stage numbers"),
    (dict(levels=(4,)), "levels must be distinct stage numbers"),
    (dict(aggregation="sum"), "aggregation must be one of"),
    (dict(mode="xx"), "mode must be one of"),
    (dict(global_channels=0), "global_channels must be an int"),
])
def test_net_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LTPANet(**kwargs)


def test_net_uses_the_course_backbone():
    assert isinstance(LTPANet().backbone, ResNetBackbone)
