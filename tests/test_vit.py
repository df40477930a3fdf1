"""Vision Transformer: MHSA against nn.MultiheadAttention, the two backends and their pitfalls,
ViT shapes for both stems, attention rollout, FLOPs of one attention layer."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from attn_lesson import (EncoderBlock, MultiHeadSelfAttention, PatchEmbed, ViT, attention_rollout,
                         cls_rollout_map, count_flops, mhsa_flops)


def _random_attention(layers, B=2, h=3, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(3 * torch.randn(B, h, T, T, generator=g), -1) for _ in range(layers)]


# --- MHSA against torch's own module ---------------------------------------------------------
@pytest.mark.parametrize("heads", [1, 4])
def test_explicit_mhsa_equals_torch_multihead_attention(heads):
    torch.manual_seed(0)
    ours = MultiHeadSelfAttention(16, heads).eval()
    with torch.no_grad():                      # non-zero biases, so a mis-copied bias shows
        ours.qkv.bias.normal_()
        ours.proj.bias.normal_()
    mha = ours.to_torch().eval()
    x = torch.randn(3, 7, 16)
    y = ours(x)
    y_t, w_t = mha(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(y, y_t, atol=1e-5, rtol=1e-5)
    assert ours.last_attention.shape == (3, heads, 7, 7)
    torch.testing.assert_close(ours.last_attention, w_t, atol=1e-6, rtol=1e-5)
    _, w_mean = mha(x, x, x)                   # default: averaged over heads
    assert w_mean.shape == (3, 7, 7)
    torch.testing.assert_close(ours.last_attention.mean(1), w_mean, atol=1e-6, rtol=1e-5)


def test_from_torch_round_trip():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
    ours = MultiHeadSelfAttention.from_torch(mha).eval()
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(ours(x), mha(x, x, x, need_weights=False)[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="batch_first"):
        MultiHeadSelfAttention.from_torch(nn.MultiheadAttention(8, 2))


# --- the two backends -----------------------------------------------------------------------
def test_explicit_equals_sdpa():
    torch.manual_seed(0)
    m = MultiHeadSelfAttention(32, 4).eval()
    x = torch.randn(2, 9, 32)
    y_explicit = m(x)
    m.backend = "sdpa"
    torch.testing.assert_close(m(x), y_explicit, atol=1e-5, rtol=1e-5)


def test_sdpa_dropout_is_off_in_eval_but_raw_sdpa_is_not():
    torch.manual_seed(0)
    m = MultiHeadSelfAttention(16, 2, dropout=0.5, backend="sdpa").eval()
    x = torch.randn(2, 6, 16)
    torch.testing.assert_close(m(x), m(x))
    m.backend = "explicit"
    torch.testing.assert_close(m(x), m.eval()(x))
    # the pitfall: the raw function drops weights whatever the module's mode
    q = torch.randn(2, 2, 6, 8)
    assert not torch.allclose(F.scaled_dot_product_attention(q, q, q, dropout_p=0.5),
                              F.scaled_dot_product_attention(q, q, q, dropout_p=0.5))
    # ... and in training the module does drop
    m.train()
    m.backend = "sdpa"
    assert not torch.allclose(m(x), m(x))


def test_hooks_and_weights_only_on_the_explicit_path():
    torch.manual_seed(0)
    m = MultiHeadSelfAttention(16, 2)
    seen = []
    m.softmax.register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    x = torch.randn(1, 5, 16)
    m(x)
    assert seen == [(1, 2, 5, 5)] and m.last_attention.shape == (1, 2, 5, 5)
    assert not m.last_attention.requires_grad
    m.backend = "sdpa"
    m(x)
    assert seen == [(1, 2, 5, 5)]              # the hook did not fire
    assert m.last_attention is None


def test_attention_rows_sum_to_one():
    m = MultiHeadSelfAttention(12, 3)
    m(torch.randn(2, 4, 12))
    torch.testing.assert_close(m.last_attention.sum(-1), torch.ones(2, 3, 4))


# --- blocks and the model -------------------------------------------------------------------
def test_patch_embed_shape():
    assert PatchEmbed(3, 16, 4)(torch.randn(2, 3, 8, 12)).shape == (2, 6, 16)


def test_encoder_block_is_pre_ln_residual():
    torch.manual_seed(0)
    b = EncoderBlock(8, 2, 16)
    for lin in (b.attn.proj, b.mlp[-1]):       # both branches zero: the block is the identity
        nn.init.zeros_(lin.weight)
        nn.init.zeros_(lin.bias)
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(b(x), x)


@pytest.mark.parametrize("stem", ["patch", "conv"])
@pytest.mark.parametrize("patch", [4, 8])
def test_vit_shapes_tokens_and_gradients(stem, patch):
    torch.manual_seed(0)
    m = ViT(patch=patch, stem=stem)
    n = (40 // patch) ** 2
    assert m.grid == (40 // patch, 40 // patch) and m.num_tokens == n + 1
    x = torch.randn(3, 1, 40, 40)
    out = m(x)
    assert out.shape == (3, 10)
    assert m.tokens(x).shape == (3, n + 1, 64)
    maps = m.attention_maps()
    assert len(maps) == 4 and all(a.shape == (3, 4, n + 1, n + 1) for a in maps)
    out.sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert m.position_similarity().shape == (n, n)
    torch.testing.assert_close(m.position_similarity().diagonal(), torch.ones(n))


def test_vit_colour_rectangular_and_backend_switch():
    torch.manual_seed(0)
    m = ViT(image_size=(32, 48), patch=8, in_channels=3, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 48)
    y = m(x)
    assert y.shape == (2, 5) and m.grid == (4, 6) and cls_rollout_map(m).shape == (2, 4, 6)
    m.set_backend("sdpa")
    torch.testing.assert_close(m(x), y, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="explicit"):
        m.attention_maps()


def test_class_token_reads_the_head():
    torch.manual_seed(0)
    m = ViT().eval()
    x = torch.randn(2, 1, 40, 40)
    torch.testing.assert_close(m(x), m.head(m.tokens(x)[:, 0]))


# --- rollout --------------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("residual", [True, False])
def test_rollout_rows_sum_to_one(fusion, residual):
    j = attention_rollout(_random_attention(3), fusion, residual)
    assert j.shape == (2, 5, 5)
    torch.testing.assert_close(j.sum(-1), torch.ones(2, 5))


def test_rollout_equals_the_manual_product_later_layer_on_the_left():
    a1, a2 = _random_attention(2)
    eye = torch.eye(5)
    p1, p2 = 0.5 * a1.mean(1) + 0.5 * eye, 0.5 * a2.mean(1) + 0.5 * eye
    j = attention_rollout([a1, a2])
    torch.testing.assert_close(j, p2 @ p1)
    assert not torch.allclose(j, p1 @ p2, atol=1e-4)   # the order matters


def test_rollout_single_layer_and_identity():
    (a,) = _random_attention(1)
    torch.testing.assert_close(attention_rollout([a]), 0.5 * a.mean(1) + 0.5 * torch.eye(5))
    torch.testing.assert_close(attention_rollout([a], add_residual=False), a.mean(1))
    eye = torch.eye(5).expand(2, 3, 5, 5)
    torch.testing.assert_close(attention_rollout([eye] * 4), torch.eye(5).expand(2, 5, 5))


def test_cls_rollout_map_is_the_class_row_over_patches():
    atts = _random_attention(2, T=7)
    j = attention_rollout(atts)
    m = cls_rollout_map(atts, (2, 3))
    torch.testing.assert_close(m, j[:, 0, 1:].reshape(2, 2, 3))
    assert (m >= 0).all()


def test_model_rollout_uses_its_own_weights():
    torch.manual_seed(0)
    m = ViT(patch=8).eval()
    m(torch.randn(2, 1, 40, 40))
    torch.testing.assert_close(cls_rollout_map(m), cls_rollout_map(m.attention_maps(), (5, 5)))


# --- cost -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tokens, dim, heads", [(26, 64, 4), (65, 32, 1), (10, 48, 6)])
def test_mhsa_flops_formula_matches_the_counter(tokens, dim, heads):
    m = MultiHeadSelfAttention(dim, heads)
    assert count_flops(m, (1, tokens, dim)) == mhsa_flops(tokens, dim)
    assert count_flops(m, (3, tokens, dim)) == 3 * mhsa_flops(tokens, dim)


def test_vit_flops_are_the_sum_of_its_parts():
    m = ViT(patch=8)
    T, D = 26, 64
    per_block = mhsa_flops(T, D) + 2 * 2 * T * D * 128
    embed, head = 2 * 64 * 64 * 25, 2 * 64 * 10
    assert count_flops(m, (1, 1, 40, 40)) == embed + 4 * per_block + head


def test_class_token_comes_first_with_its_position_embedding():
    torch.manual_seed(0)
    m = ViT(patch=8).eval()
    with torch.no_grad():
        m.cls_token.normal_()
    seen = []
    m.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    x = torch.randn(2, 1, 40, 40)
    m(x)
    z0 = seen[0]
    torch.testing.assert_close(z0[:, 0], (m.cls_token[0] + m.pos_embed[:, 0]).expand(2, -1))
    patches = m.embed(x) + m.pos_embed[:, 1:]
    torch.testing.assert_close(z0[:, 1:], patches)
