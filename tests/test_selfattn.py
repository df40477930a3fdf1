"""Self-attention: SAGAN layer, non-local block (4 pairwise functions), DANet's PAM and CAM."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from attn_lesson import selfattn
from attn_lesson.models import ResNetBackbone
from attn_lesson.selfattn import ChannelAttention2d, NonLocal2d, SelfAttention2d


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomise(module):
    """Non-zero residual weights, so that a test sees the attention branch."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in ("gamma", "beta", "bn.weight"):
                p.fill_(0.7)
    return module


@pytest.mark.parametrize("make", [lambda: SelfAttention2d(16), lambda: SelfAttention2d(16, sdpa=True),
                                  *[lambda f=f: NonLocal2d(16, f) for f in selfattn.PAIRWISE],
                                  lambda: NonLocal2d(16, "embedded", subsample=True),
                                  lambda: ChannelAttention2d(16), lambda: ChannelAttention2d(16, "official")])
def test_identity_at_initialisation_shapes_and_gradients(make):
    m = make()
    x = torch.randn(2, 16, 6, 8, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)                      # gamma = 0, or BN scale = 0
    y.square().sum().backward()
    scale = m.gamma if hasattr(m, "gamma") else m.beta if hasattr(m, "beta") else m.bn.weight
    assert scale.grad is not None and scale.grad.abs().sum() > 0   # the residual scale learns


@pytest.mark.parametrize("make", [lambda: SelfAttention2d(16), lambda: NonLocal2d(16, "embedded"),
                                  lambda: NonLocal2d(16, "gaussian"), lambda: ChannelAttention2d(16),
                                  lambda: ChannelAttention2d(16, "official")])
def test_softmax_rows_sum_to_one(make):
    m = make()
    m(torch.randn(3, 16, 5, 4))
    a = m.last_attention
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    assert (a >= 0).all()


def test_sagan_by_hand_and_against_sdpa():
    m = _randomise(SelfAttention2d(16, reduction=8))
    x = torch.randn(2, 16, 5, 6)
    q, k, v = (conv(x).flatten(2) for conv in (m.query, m.key, m.value))     # (B, C', N)
    a = torch.softmax(q.transpose(1, 2) @ k, dim=-1)                          # (B, N, N) rows = queries
    o = (v @ a.transpose(1, 2)).view_as(x)                                    # V A^T
    torch.testing.assert_close(m(x), 0.7 * o + x)
    torch.testing.assert_close(m.last_attention, a)
    fused = SelfAttention2d(16, reduction=8, sdpa=True)
    fused.load_state_dict(m.state_dict())
    with sdpa_kernel(SDPBackend.MATH):
        torch.testing.assert_close(fused(x), m(x))
    assert fused.last_attention is None


def test_embedded_gaussian_nonlocal_is_self_attention():
    nl = NonLocal2d(16, "embedded", reduction=2)
    sa = SelfAttention2d(16, reduction=2)
    sa.query.load_state_dict(nl.theta.state_dict())
    sa.key.load_state_dict(nl.phi.state_dict())
    x = torch.randn(2, 16, 4, 5)
    nl(x), sa(x)
    torch.testing.assert_close(nl.last_attention, sa.last_attention)


def test_dot_and_concat_normalise_by_the_number_of_keys():
    x = torch.randn(2, 8, 4, 4)
    dot = NonLocal2d(8, "dot")
    th, ph = dot.theta(x).flatten(2), dot.phi(x).flatten(2)
    torch.testing.assert_close(dot.affinity(x), th.transpose(1, 2) @ ph / 16)
    cat = NonLocal2d(8, "concat", subsample=True)
    th, ph = cat.theta(x).flatten(2), F.max_pool2d(cat.phi(x), 2).flatten(2)   # (B, 4, 16), (B, 4, 4)
    n, m = th.shape[-1], ph.shape[-1]
    pairs = torch.cat([th[:, :, :, None].expand(-1, -1, n, m), ph[:, :, None, :].expand(-1, -1, n, m)], 1)
    brute = F.relu(cat.w_f(pairs))[:, 0] / m                                # conv on every [theta_i, phi_j]
    torch.testing.assert_close(cat.affinity(x), brute)
    assert cat.affinity(x).shape == (2, 16, 4)


def test_gaussian_uses_the_features_themselves():
    x = torch.randn(1, 4, 3, 3)
    g = NonLocal2d(4, "gaussian")
    flat = x.flatten(2)[0]
    torch.testing.assert_close(g.affinity(x)[0], torch.softmax(flat.T @ flat, -1))
    assert not hasattr(g, "theta")


def test_cam_official_is_softmax_of_minus_the_gram_matrix():
    x = torch.randn(2, 6, 4, 4)
    flat = x.flatten(2)
    e = flat @ flat.transpose(1, 2)
    paper, official = ChannelAttention2d(6), ChannelAttention2d(6, "official")
    paper(x), official(x)
    torch.testing.assert_close(paper.last_attention, torch.softmax(e, -1))
    torch.testing.assert_close(official.last_attention, torch.softmax(-e, -1))
    # the official form gives the most weight to the least similar channel
    assert torch.equal(official.last_attention.argmax(-1), e.argmin(-1))


def test_factories_fit_the_backbone_between_stages():
    for factory in (selfattn.sagan(), selfattn.pam(), selfattn.nonlocal_block("dot"), selfattn.cam()):
        net = ResNetBackbone(stage_attention=factory)
        assert net(torch.randn(2, 1, 40, 40)).shape == (2, 10)
        assert len(net.attention_modules()) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"channels \(12\) must be divisible by reduction \(8\)"):
        SelfAttention2d(12)
    with pytest.raises(ValueError, match="pairwise must be one of"):
        NonLocal2d(16, "cosine")
    with pytest.raises(ValueError, match="must be divisible by reduction"):
        NonLocal2d(15, reduction=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        ChannelAttention2d(8, "max")
    with pytest.raises(ValueError, match="reduction must be a positive int"):
        SelfAttention2d(8, reduction=0)
    with pytest.raises(ValueError, match=r"expected a feature map of shape \(B, 16, H, W\)"):
        SelfAttention2d(16)(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match=r"expected a feature map of shape \(B, 16, H, W\)"):
        NonLocal2d(16)(torch.randn(16, 4, 4))


def test_reference_arms_can_name_the_self_attention_factories():
    from attn_lesson.results import build_model
    net = build_model({"stage_attention": {"name": "nonlocal_block", "pairwise": "concat"}})
    assert [type(m).__name__ for m in net.attention_modules()] == ["NonLocal2d", "NonLocal2d"]
    net = build_model({"stage_attention": {"name": "cam", "mode": "official"}})
    assert net.attention_modules()[0].mode == "official"


def test_stage_attention_at_places_one_layer_where_asked():
    net = ResNetBackbone(stage_attention=selfattn.sagan(), stage_attention_at=(2,))
    assert [type(t).__name__ for t in net.transitions] == ["Identity", "SelfAttention2d", "Identity"]
    last = ResNetBackbone(stage_attention=selfattn.cam(), stage_attention_at=[3])   # before pooling
    assert isinstance(last.transitions[2], ChannelAttention2d)
    assert last(torch.randn(2, 1, 32, 96)).shape == (2, 10)
    default = ResNetBackbone(stage_attention=selfattn.sagan())
    assert [type(t).__name__ for t in default.transitions] == ["SelfAttention2d"] * 2 + ["Identity"]
    for bad in ((0,), (4,), (2, 2), (), "2", (True,)):
        with pytest.raises(ValueError, match="stage_attention_at must be None or distinct stage numbers in 1..3"):
            ResNetBackbone(stage_attention=selfattn.sagan(), stage_attention_at=bad)
    with pytest.raises(ValueError, match="needs a stage_attention factory"):
        ResNetBackbone(stage_attention_at=(2,))


def test_uniform_nonlocal_broadcasts_the_global_mean_of_g():
    import attn_lesson as al
    torch.manual_seed(0)
    blk = al.UniformNonLocal2d(8, reduction=2).eval()
    with torch.no_grad():
        blk.bn.weight.fill_(1.0)
    x = torch.randn(2, 8, 4, 6)
    y = blk(x)
    g_mean = blk.g(x).mean(dim=(2, 3), keepdim=True).expand(-1, -1, 4, 6)
    expected = x + blk.bn(blk.w_z(g_mean))
    torch.testing.assert_close(y, expected)
    assert not hasattr(blk, "theta") and not hasattr(blk, "phi")
    a = blk.last_attention
    assert a.shape == (2, 24, 24) and torch.allclose(a, torch.full_like(a, 1 / 24))
    sub = al.UniformNonLocal2d(8, subsample=True)
    sub(x)
    assert sub.last_attention.shape == (2, 24, 6)
    # starts as the identity, as every non-local block does
    torch.testing.assert_close(al.UniformNonLocal2d(8).eval()(x), x)
    with pytest.raises(ValueError):
        blk(torch.randn(2, 5, 4, 6))
    with pytest.raises(ValueError):
        al.UniformNonLocal2d(8, reduction=3)
    assert isinstance(al.selfattn.uniform_nonlocal()(8), al.UniformNonLocal2d)
