"""Attention to scale (ScaleAttentionFCN): shapes, the softmax over scales, the pooling merges
against their definitions, the alignment of the resampled score maps, extra supervision, the
reference arms, bad arguments."""
import pytest
import torch
import torch.nn.functional as F

import attn_lesson as al
from attn_lesson.segment import ScaleAttentionFCN, resample_cells

from conftest import randomize_bn


def _model(**kw):
    torch.manual_seed(0)
    return randomize_bn(ScaleAttentionFCN(**kw)).eval()


@pytest.mark.parametrize("scales", [(1.0, 0.5), (1.0, 0.75, 0.5)])
@pytest.mark.parametrize("stem_stride", [1, 2])
def test_shapes_of_merged_and_per_scale_logits_and_weights(scales, stem_stride):
    m = _model(scales=scales, stem_stride=stem_stride)
    x = torch.rand(2, 1, 40, 48)
    g, f, w = m.scale_outputs(x)
    assert g.shape == (2, 11, 40, 48) and f.shape == (2, len(scales), 11, 40, 48)
    assert w.shape == (2, len(scales), 40, 48)
    assert m(x).shape == (2, 11, 40, 48)
    assert m.last_weights.shape == w.shape and not m.last_weights.requires_grad
    assert len(m.attention_modules()) == 1


def test_attention_weights_are_a_softmax_over_scales_at_every_pixel():
    m = _model(scales=(1.0, 0.75, 0.5))
    with torch.no_grad():                    # make the weights differ clearly from uniform
        m.attention[-1].weight.normal_(0, 1)
    g, f, w = m.scale_outputs(torch.rand(3, 1, 40, 40))
    assert (w >= 0).all() and (w <= 1).all()
    torch.testing.assert_close(w.sum(1), torch.ones(3, 40, 40))
    assert w.std() > 0.05                    # not a constant split
    torch.testing.assert_close(g, (w.unsqueeze(2) * f).sum(1))


def test_attention_with_a_dominant_logit_selects_that_scale_and_equal_logits_give_the_mean():
    m = _model()
    x = torch.rand(2, 1, 40, 40)
    head = m.attention[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 60.0]))          # all weight on scale 0.5
        g, f, w = m.scale_outputs(x)
        torch.testing.assert_close(g, f[:, 1])
        head.bias.zero_()                                     # equal logits: average pooling
        g, f, w = m.scale_outputs(x)
        torch.testing.assert_close(w, torch.full_like(w, 0.5))
        torch.testing.assert_close(g, f.mean(1))


@pytest.mark.parametrize("merge", ["mean", "max"])
def test_pooling_merges_equal_their_definitions(merge):
    m = _model(merge=merge, scales=(1.0, 0.75, 0.5))
    x = torch.rand(2, 1, 40, 40)
    g, f, w = m.scale_outputs(x)
    expect = f.mean(1) if merge == "mean" else f.max(1).values
    torch.testing.assert_close(g, expect)
    assert w is None and m.last_weights is None and m.attention_modules() == []
    if merge == "max":                       # each scale wins somewhere: not one scale copied
        won = f.argmax(1)
        assert all((won == k).any() for k in range(3))


def test_scale_one_alone_is_the_trunk_and_the_scales_share_its_weights():
    m = _model(scales=(1.0,), merge="none")
    x = torch.rand(2, 1, 40, 40)
    torch.testing.assert_close(m(x), m.trunk(x))
    two = _model()
    n_trunk = al.count_params(two.trunk)
    assert al.count_params(two) == n_trunk + al.count_params(two.attention)
    g, f, _ = two.scale_outputs(x)
    torch.testing.assert_close(f[:, 0], two.trunk(x))       # scale 1 of the pair is the trunk too


@pytest.mark.parametrize("scale,stride", [(1.0, 4), (0.5, 4), (0.75, 2), (0.5, 2)])
def test_resampled_cells_land_where_the_trunk_centres_them(scale, stride):
    # a map equal to its cell's column index is linear, so bilinear sampling is exact: at
    # original pixel p it must read ((p + 0.5) * scale - 0.5) / stride, clamped to the cells
    h = w = 7
    ramp = torch.arange(w, dtype=torch.float32).expand(1, 1, h, w).clone()
    out = resample_cells(ramp, (30, 30), scale, stride)[0, 0, 0]
    p = torch.arange(30, dtype=torch.float32)
    expect = (((p + 0.5) * scale - 0.5) / stride).clamp(0, w - 1)
    torch.testing.assert_close(out, expect)


def test_extra_supervision_adds_exactly_the_per_scale_cross_entropies():
    plain = _model(scales=(1.0, 0.75, 0.5))
    extra = ScaleAttentionFCN(scales=(1.0, 0.75, 0.5), extra_supervision=True).eval()
    extra.load_state_dict(plain.state_dict())
    x, y = torch.rand(2, 1, 40, 40), torch.randint(0, 11, (2, 40, 40))
    loss_p, g_p = plain.objective(x, y)
    loss_e, g_e = extra.objective(x, y)
    torch.testing.assert_close(g_p, g_e)
    _, f, _ = plain.scale_outputs(x)
    per_scale = [F.cross_entropy(f[:, k], y) for k in range(3)]
    torch.testing.assert_close(loss_p, F.cross_entropy(g_p, y))
    torch.testing.assert_close(loss_e - loss_p, sum(per_scale))
    assert min(per_scale) > 0


def test_extra_supervision_reaches_the_trunk_when_attention_ignores_a_scale():
    # all weight on scale 1: the merged loss gives scale 0.5's path no gradient, the per-scale
    # term does (the trunk is shared, so compare the gradient of the classifier)
    grads = {}
    for es in (False, True):
        m = _model(extra_supervision=es).train()
        with torch.no_grad():
            m.attention[-1].weight.zero_()
            m.attention[-1].bias.copy_(torch.tensor([80.0, 0.0]))
        x, y = torch.rand(2, 1, 40, 40), torch.randint(0, 11, (2, 40, 40))
        loss, _ = m.objective(x, y)
        loss.backward()
        grads[es] = m.trunk.classifier.weight.grad.clone()
    assert not torch.allclose(grads[False], grads[True])


def test_fit_trains_with_the_objective_and_scores_miou():
    data = al.cluttered_digits(64, "train", seed=0, scale=(1.0, 4.0))
    m = ScaleAttentionFCN(extra_supervision=True)
    h = al.fit(m, (data.images, data.segmentation), (data.images[:32], data.segmentation[:32]),
               epochs=1, batch_size=32, lr=1e-2, progress=False, device="cpu", metric="miou",
               num_classes=11)
    assert len(h.train_loss) == 1 and torch.isfinite(torch.tensor(h.train_loss)).all()
    assert 0 <= h.final_test_acc <= 1


def test_reference_arms_build_scale_models():
    arm = {"model": "scale_fcn", "scales": [1.0, 0.5], "merge": "attention", "extra_supervision": True}
    m = al.arms.build_model(arm)
    assert isinstance(m, ScaleAttentionFCN) and m.scales == (1.0, 0.5) and m.extra_supervision
    single = al.arms.build_model({"model": "scale_fcn", "scales": [0.5], "merge": "none",
                                  "widths": [16, 32], "stem_stride": 1})
    assert single.scales == (0.5,) and single.merge == "none" and single.stride == 2
    with pytest.raises(ValueError, match="unknown keys in a scale_fcn arm"):
        al.arms.build_model({"model": "scale_fcn", "merges": "max"})


@pytest.mark.parametrize("kwargs,match", [
    (dict(scales=()), r"scales must be a non-empty tuple.*\(\)"),
    (dict(scales=0.5), r"scales must be a non-empty tuple.*0\.5"),
    (dict(scales=(1.0, 1.5)), r"scales must be numbers in \(0, 1\], got \(1\.0, 1\.5\)"),
    (dict(scales=(1.0, 0.0)), r"scales must be numbers in \(0, 1\]"),
    (dict(scales=(1.0, True)), r"scales must be numbers in \(0, 1\]"),
    (dict(scales=(1.0, 1.0)), r"scales must be distinct, got \(1\.0, 1\.0\)"),
    (dict(merge="avg"), r"merge must be one of \('none', 'mean', 'max', 'attention'\), got 'avg'"),
    (dict(merge="none"), r"merge='none' goes with exactly one scale.*\(1\.0, 0\.5\)"),
    (dict(scales=(1.0,), merge="attention"), r"merge='none' goes with exactly one scale.*'attention'"),
    (dict(extra_supervision=1), r"extra_supervision must be True or False, got 1"),
    (dict(scales=(1.0,), merge="none", extra_supervision=True), r"extra_supervision needs at least two"),
    (dict(attention_channels=0), r"attention_channels must be a positive int, got 0"),
    (dict(stem_stride=3), r"stem_stride must be 1 or 2, got 3"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScaleAttentionFCN(**kwargs)


def test_bad_input_raises():
    m = ScaleAttentionFCN()
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(B, 1, H, W\), got \(2, 3, 40, 40\)"):
        m(torch.rand(2, 3, 40, 40))
