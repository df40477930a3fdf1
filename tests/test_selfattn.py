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
    from attn_lesson.arms import build_model
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


# ------------------------------------------------------------ CCNet: criss-cross attention
from attn_lesson.selfattn import CrissCrossAttention2d, GlobalContext2d, criss_cross_mask  # noqa: E402


def _criss_cross(channels=8, reduction=2, recurrence=1, gamma=0.7):
    m = CrissCrossAttention2d(channels, reduction, recurrence)
    with torch.no_grad():
        m.gamma.fill_(gamma)
    return m


def test_criss_cross_mask_is_the_row_and_the_column():
    mask = criss_cross_mask(3, 4)
    assert mask.shape == (12, 12) and mask.dtype == torch.bool
    assert (mask.sum(-1) == 3 + 4 - 1).all()                       # the centre counted once
    assert torch.equal(mask, mask.T) and mask.diagonal().all()
    assert mask[1 * 4 + 2].nonzero().flatten().tolist() == [2, 4, 5, 6, 7, 10]   # row 1, column 2


def test_criss_cross_equals_full_attention_under_the_row_column_mask():
    m = _criss_cross()
    x = torch.randn(2, 8, 5, 7)
    q, k, v = (conv(x).flatten(2) for conv in (m.query, m.key, m.value))     # (B, C', N), (B, C, N)
    logits = (q.transpose(1, 2) @ k).masked_fill(~criss_cross_mask(5, 7), float("-inf"))
    a = torch.softmax(logits, dim=-1)                                         # (B, N, N)
    expected = 0.7 * (v @ a.transpose(1, 2)).view_as(x) + x
    torch.testing.assert_close(m(x), expected)
    torch.testing.assert_close(m.dense_attention(), a)
    assert (m.dense_attention()[:, ~criss_cross_mask(5, 7)] == 0).all()


def test_criss_cross_weights_sum_to_one_over_h_plus_w_minus_1_entries():
    m = _criss_cross()
    x = torch.randn(3, 8, 5, 6)
    m(x)
    a = m.last_attention
    assert a.shape == (3, 5, 6, 5 + 6)
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 5, 6))
    own_row = a[..., :5].diagonal(dim1=1, dim2=3)                  # column part at row i' = i
    assert (own_row == 0).all()
    assert ((a > 0).sum(-1) == 5 + 6 - 1).all()                    # every other entry is positive


def test_criss_cross_starts_as_the_identity_and_gamma_learns():
    m = CrissCrossAttention2d(16, recurrence=2)
    x = torch.randn(2, 16, 5, 7, requires_grad=True)
    y = m(x)
    torch.testing.assert_close(y, x)
    y.square().sum().backward()
    assert m.gamma.grad is not None and m.gamma.grad.abs() > 0


@pytest.mark.parametrize("recurrence", [1, 2])
def test_criss_cross_reach_is_the_cross_after_one_pass_and_everything_after_two(recurrence):
    m = _criss_cross(channels=4, reduction=2, recurrence=recurrence, gamma=1.0).double()
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    i, j = 2, 3
    m(x)[0, :, i, j].sum().backward()
    support = x.grad[0].abs().sum(0) > 0                           # (H, W)
    cross = criss_cross_mask(5, 6)[i * 6 + j].view(5, 6)
    assert torch.equal(support, cross if recurrence == 1 else torch.ones_like(cross))


def test_criss_cross_matches_a_slow_loop_per_pixel():
    m = _criss_cross(channels=6, reduction=3, recurrence=2, gamma=0.5)
    x = torch.randn(2, 6, 4, 5)

    def one_pass(x):
        q, k, v = m.query(x), m.key(x), m.value(x)
        y = torch.empty_like(x)
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                keys = [(r, j) for r in range(x.shape[2]) if r != i] + [(i, s) for s in range(x.shape[3])]
                logits = torch.stack([(q[:, :, i, j] * k[:, :, r, s]).sum(1) for r, s in keys], 1)
                weights = torch.softmax(logits, dim=1)                          # (B, H + W - 1)
                values = torch.stack([v[:, :, r, s] for r, s in keys], 2)       # (B, C, H + W - 1)
                y[:, :, i, j] = 0.5 * (values @ weights[:, :, None])[..., 0] + x[:, :, i, j]
        return y

    torch.testing.assert_close(m(x), one_pass(one_pass(x)))


def test_criss_cross_handles_a_single_row_and_float64():
    m = _criss_cross().double()
    x = torch.randn(1, 8, 1, 4, dtype=torch.float64)
    assert torch.isfinite(m(x)).all()
    torch.testing.assert_close(m.last_attention[..., 1:].sum(-1), torch.ones(1, 1, 4, dtype=torch.float64))
    assert m.dense_attention().dtype == torch.float64


def test_dense_attention_needs_a_forward_pass():
    with pytest.raises(RuntimeError, match="forward pass first"):
        CrissCrossAttention2d(8).dense_attention()


# ------------------------------------------------------------ GCNet: global context block
def _timm_gc(channels, planes, fusion):
    from timm.layers import GlobalContext
    fuse_add = fusion == "add"
    return GlobalContext(channels, fuse_add=fuse_add, fuse_scale=not fuse_add, rd_channels=planes)


def _copy_into_timm(ours, theirs):
    """Our GlobalContext2d's weights into timm's GlobalContext (same layers, other names)."""
    mlp = theirs.mlp_add if ours.fusion == "add" else theirs.mlp_scale
    conv1, norm, _, conv2 = ours.transform
    with torch.no_grad():
        theirs.conv_attn.load_state_dict(ours.context_mask.state_dict())
        mlp.fc1.load_state_dict(conv1.state_dict())
        mlp.norm.weight.copy_(norm.weight.view(-1))                 # (P, 1, 1) -> (P,)
        mlp.norm.bias.copy_(norm.bias.view(-1))
        mlp.norm.eps = norm.eps                                     # timm 1e-6, nn.LayerNorm 1e-5
        mlp.fc2.load_state_dict(conv2.state_dict())


def _randomise_gc(m):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))                            # last conv non-zero too
    return m


@pytest.mark.parametrize("fusion", ["add", "scale"])
def test_global_context_matches_timm_with_copied_weights(fusion):
    ours = _randomise_gc(GlobalContext2d(16, reduction=4, fusion=fusion))
    theirs = _timm_gc(16, 4, fusion)
    _copy_into_timm(ours, theirs)
    x = torch.randn(3, 16, 5, 7)
    y = ours(x)
    assert (y - x).abs().max() > 0.1                               # the block changes x
    torch.testing.assert_close(y, theirs(x))


def test_timm_layernorm2d_on_a_1x1_map_is_layernorm_over_p_1_1():
    from timm.layers import LayerNorm2d
    ln = torch.nn.LayerNorm([6, 1, 1])
    ln2d = LayerNorm2d(6, eps=ln.eps)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(6, 1, 1))
        ln.bias.copy_(torch.randn(6, 1, 1))
        ln2d.weight.copy_(ln.weight.view(-1))
        ln2d.bias.copy_(ln.bias.view(-1))
    c = torch.randn(4, 6, 1, 1)
    torch.testing.assert_close(ln(c), ln2d(c))
    x = torch.randn(4, 6, 2, 2)                                    # not on a larger map
    assert not torch.allclose(torch.nn.LayerNorm([6, 2, 2])(x), LayerNorm2d(6)(x))


def test_global_context_by_hand():
    m = _randomise_gc(GlobalContext2d(8, reduction=2))
    x = torch.randn(2, 8, 3, 5)
    a = torch.softmax(m.context_mask(x).flatten(1), dim=1)         # (B, N)
    c = (x.flatten(2) * a[:, None, :]).sum(-1)                     # (B, C)
    h = m.transform[0](c[:, :, None, None]).flatten(1)             # (B, P)
    h = (h - h.mean(1, keepdim=True)) / torch.sqrt(h.var(1, unbiased=False, keepdim=True) + 1e-5)
    h = torch.relu(h * m.transform[1].weight.view(1, -1) + m.transform[1].bias.view(1, -1))
    t = m.transform[3](h[:, :, None, None])
    torch.testing.assert_close(m(x), x + t)
    torch.testing.assert_close(m.last_attention, a)
    torch.testing.assert_close(m.last_attention.sum(1), torch.ones(2))


def test_global_context_at_initialisation_add_is_identity_and_scale_halves():
    x = torch.randn(2, 16, 5, 5, requires_grad=True)
    add = GlobalContext2d(16, reduction=4, fusion="add")
    y = add(x)
    assert torch.equal(y, x)
    y.square().sum().backward()
    assert add.transform[3].weight.grad.abs().sum() > 0            # the zero conv learns
    scale = GlobalContext2d(16, reduction=4, fusion="scale")
    assert torch.equal(scale(x), x * 0.5)


def test_global_context_avg_pooling_is_the_mean():
    m = _randomise_gc(GlobalContext2d(8, reduction=2, pooling="avg"))
    x = torch.randn(2, 8, 4, 6)
    torch.testing.assert_close(m.context(x), x.mean(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(m(x), x + m.transform(x.mean(dim=(2, 3), keepdim=True)))
    torch.testing.assert_close(m.last_attention, torch.full((2, 24), 1 / 24))
    assert not hasattr(m, "context_mask")


def test_global_context_with_one_or_two_hidden_channels_barely_sees_the_context():
    xs = torch.randn(20, 1, 8, 4, 4)
    def terms(m):                                                  # t(c) per input, (20, C)
        return torch.stack([(m(x) - x)[0, :, 0, 0] for x in xs])
    one = _randomise_gc(GlobalContext2d(8, reduction=8))           # P = 1: LayerNorm of one number is 0
    assert one.planes == 1
    assert torch.unique(terms(one).round(decimals=5), dim=0).shape[0] == 1
    two = _randomise_gc(GlobalContext2d(8, reduction=4))           # P = 2: LayerNorm gives about +-(1, -1)
    _, norm, _, conv2 = two.transform
    signs = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])[:, :, None, None]
    candidates = conv2(torch.relu(signs * norm.weight + norm.bias))[:, :, 0, 0]   # (2, C)
    distance = torch.cdist(terms(two), candidates).min(dim=1).values
    assert distance.max() < 1e-2
    four = _randomise_gc(GlobalContext2d(8, reduction=2))          # P = 4 does depend on the context
    assert torch.unique(terms(four).round(decimals=5), dim=0).shape[0] > 10


def test_ccnet_and_gcnet_factories_fit_the_backbone():
    for factory, kind in ((selfattn.criss_cross(), CrissCrossAttention2d),
                          (selfattn.criss_cross(reduction=4, recurrence=2), CrissCrossAttention2d),
                          (selfattn.global_context(reduction=4), GlobalContext2d),
                          (selfattn.global_context(reduction=8, fusion="scale", pooling="avg"), GlobalContext2d)):
        net = ResNetBackbone(stage_attention=factory)
        assert net(torch.randn(2, 1, 40, 40)).shape == (2, 10)
        assert [type(t) for t in net.attention_modules()] == [kind, kind]
    rcca = selfattn.criss_cross(recurrence=2)(16)
    assert rcca.recurrence == 2 and rcca.query.out_channels == 2
    gc = selfattn.global_context(fusion="scale")(64)
    assert (gc.planes, gc.fusion, gc.pooling) == (4, "scale", "att")


def test_ccnet_and_gcnet_bad_arguments():
    with pytest.raises(ValueError, match=r"channels \(12\) must be divisible by reduction \(8\)"):
        CrissCrossAttention2d(12)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"recurrence must be a positive int, got {bad!r}"):
            CrissCrossAttention2d(8, recurrence=bad)
    with pytest.raises(ValueError, match=r"expected a feature map of shape \(B, 8, H, W\), got \(1, 4, 3, 3\)"):
        CrissCrossAttention2d(8)(torch.randn(1, 4, 3, 3))
    with pytest.raises(ValueError, match="w must be a positive int, got 0"):
        criss_cross_mask(3, 0)
    with pytest.raises(ValueError, match=r"P = channels // reduction >= 1, got channels=8, reduction=16"):
        GlobalContext2d(8)
    with pytest.raises(ValueError, match=r"fusion must be one of \('add', 'scale'\), got 'mul'"):
        GlobalContext2d(16, fusion="mul")
    with pytest.raises(ValueError, match=r"pooling must be one of \('att', 'avg'\), got 'max'"):
        GlobalContext2d(16, pooling="max")
    with pytest.raises(ValueError, match=r"expected a feature map of shape \(B, 16, H, W\)"):
        GlobalContext2d(16)(torch.randn(16, 4, 4))
