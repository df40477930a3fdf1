"""Show, Attend and Tell in miniature (attn_lesson.caption): shapes, attention weights, teacher
forcing against greedy decoding, the doubly stochastic term, the gate, hard attention, the
per-position CNN, the box-mass measure, fit with the model's own objective, arms, bad inputs."""
import pytest
import torch
import torch.nn.functional as F

import attn_lesson as al
from attn_lesson import arms
from attn_lesson.caption import (Encoder, PositionHeadsCNN, ShowAttendTell, box_mass,
                                 doubly_stochastic, sequence_scores)

SIZE = (16, 48)
SMALL = dict(widths=(8, 8, 16), hidden=16, embed=8, att_dim=8)


def batch(b=4, t=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, *SIZE, generator=g), torch.randint(10, (b, t), generator=g)


@pytest.mark.parametrize("attention", ["soft", "none", "hard"])
@pytest.mark.parametrize("gate", [True, False])
def test_shapes_and_alpha_sums_to_one(attention, gate):
    torch.manual_seed(0)
    m = ShowAttendTell(length=3, attention=attention, gate=gate, **SMALL)
    x, y = batch()
    for train in (True, False):
        m.train(train)
        dec = m.decode(x, y)
        assert dec.logits.shape == (4, 10, 3)
        assert dec.alpha.shape == (4, 3, 2 * 6) and dec.beta.shape == (4, 3)
        torch.testing.assert_close(dec.alpha.sum(2), torch.ones(4, 3))
        assert (dec.alpha >= 0).all()
        assert m.last_alpha.shape == (4, 3, 2, 6) and m.last_beta.shape == (4, 3)
    if attention == "none":
        torch.testing.assert_close(dec.alpha, torch.full_like(dec.alpha, 1 / 12))


def test_soft_attention_equals_its_formula():
    """alpha = softmax_i(u^T tanh(W_a a_i + b + W_h h_0)), z = beta * sum_i alpha_i a_i, at step 0."""
    torch.manual_seed(1)
    m = ShowAttendTell(**SMALL).eval()
    x, _ = batch()
    dec = m.decode(x)
    a = m.encoder(x).flatten(2).transpose(1, 2)                              # (B, L, D)
    h0 = torch.tanh(a.mean(1) @ m.init_h.weight.T + m.init_h.bias)
    e = torch.tanh(a @ m.att_a.weight.T + m.att_a.bias + (h0 @ m.att_h.weight.T)[:, None]) @ m.att_u.weight.T
    alpha = torch.softmax(e.squeeze(2) + m.att_u.bias, 1)
    torch.testing.assert_close(dec.alpha[:, 0], alpha)
    beta = torch.sigmoid(h0 @ m.beta.weight.T + m.beta.bias).squeeze(1)
    torch.testing.assert_close(dec.beta[:, 0], beta)


def test_teacher_forcing_feeds_labels_and_greedy_feeds_argmax():
    torch.manual_seed(2)
    m = ShowAttendTell(**SMALL).eval()
    x, y = batch()
    forced, greedy = m.decode(x, y), m.decode(x)
    start = torch.full((4,), 10)
    assert torch.equal(forced.tokens[:, 0], start) and torch.equal(greedy.tokens[:, 0], start)
    assert torch.equal(forced.tokens[:, 1:], y[:, :-1])
    assert torch.equal(greedy.tokens[:, 1:], greedy.logits.argmax(1)[:, :-1])
    torch.testing.assert_close(forced.logits[:, :, 0], greedy.logits[:, :, 0])   # same first step
    # feeding the greedy guesses as if they were labels reproduces greedy decoding
    torch.testing.assert_close(m.decode(x, greedy.logits.argmax(1)).logits, greedy.logits)
    torch.testing.assert_close(m(x), greedy.logits)
    assert not torch.allclose(forced.logits[:, :, 1:], greedy.logits[:, :, 1:])


def test_doubly_stochastic_term_equals_its_formula():
    torch.manual_seed(3)
    alpha = torch.softmax(torch.randn(5, 3, 12), 2)
    coverage = alpha.sum(1)                                                  # (B, L)
    by_loops = sum(sum((1 - coverage[b, i].item()) ** 2 for i in range(12)) / 12 for b in range(5)) / 5
    assert doubly_stochastic(alpha).item() == pytest.approx(by_loops, rel=1e-6)
    # sum_i (1 - c_i)^2 = L - 2T + sum_i c_i^2, because sum_i c_i = T
    per_image = ((1 - coverage) ** 2).sum(1)
    torch.testing.assert_close(per_image, 12 - 2 * 3 + (coverage ** 2).sum(1))
    # uniform attention is its minimum for T < L
    uniform = torch.full((1, 3, 12), 1 / 12)
    assert doubly_stochastic(uniform) < doubly_stochastic(alpha[:1])


@pytest.mark.parametrize("ds_weight", [0.0, 0.5])
def test_objective_is_cross_entropy_plus_lambda_times_the_term(ds_weight):
    torch.manual_seed(4)
    m = ShowAttendTell(ds_weight=ds_weight, **SMALL).eval()
    x, y = batch()
    loss, logits = m.objective(x, y)
    dec = m.decode(x, y)
    torch.testing.assert_close(logits, dec.logits)
    expected = F.cross_entropy(dec.logits, y) + ds_weight * doubly_stochastic(dec.alpha)
    torch.testing.assert_close(loss, expected)


def test_gate_off_is_beta_one_and_matches_a_gate_stuck_at_one():
    torch.manual_seed(5)
    off = ShowAttendTell(gate=False, **SMALL).eval()
    x, y = batch()
    assert torch.equal(off.decode(x, y).beta, torch.ones(4, 3))
    assert off.beta is None
    on = ShowAttendTell(gate=True, **SMALL).eval()
    on.load_state_dict(off.state_dict(), strict=False)
    with torch.no_grad():                                                    # sigmoid(50) == 1
        on.beta.weight.zero_(), on.beta.bias.fill_(50.0)
    torch.testing.assert_close(on.decode(x, y).logits, off.decode(x, y).logits)
    with torch.no_grad():
        on.beta.bias.fill_(0.0)                                             # beta = 1/2 changes it
    assert not torch.allclose(on.decode(x, y).logits, off.decode(x, y).logits)


def test_hard_attention_samples_locations_and_trains_the_attention_by_reinforce():
    torch.manual_seed(6)
    m = ShowAttendTell(attention="hard", **SMALL).train()
    x, y = batch(8)
    dec = m.decode(x, y)
    assert (dec.log_prob_locations < 0).all()
    loss, _ = m.objective(x, y)
    loss.backward()
    assert m.att_u.weight.grad is not None and m.att_u.weight.grad.abs().sum() > 0
    assert m.reward_baseline.item() < 0                       # moved towards the mean log-likelihood
    m.eval()
    d = m.decode(x)
    assert torch.equal(d.log_prob_locations, torch.zeros(8, 3))
    # in eval, the context is the annotation at alpha's argmax: same result twice
    torch.testing.assert_close(m(x), m(x))


def test_soft_attention_gets_gradients_everywhere_and_no_attention_has_no_f_att():
    torch.manual_seed(7)
    x, y = batch()
    soft = ShowAttendTell(**SMALL)
    soft.objective(x, y)[0].backward()
    assert soft.att_u.weight.grad.abs().sum() > 0 and soft.encoder.stem[0].weight.grad.abs().sum() > 0
    none = ShowAttendTell(attention="none", **SMALL)
    none.objective(x, y)[0].backward()
    assert none.att_u is None and none.att_a is None
    assert al.count_params(soft) - al.count_params(none) == sum(
        p.numel() for mod in (soft.att_a, soft.att_h, soft.att_u) for p in mod.parameters())


def test_position_heads_cnn_shapes_and_grid():
    torch.manual_seed(8)
    m = PositionHeadsCNN(length=3, image_size=SIZE, widths=(8, 8, 16), hidden=16)
    x, _ = batch()
    assert m(x).shape == (4, 10, 3)
    assert Encoder(1, (8, 8, 16)).grid((33, 95)) == (5, 12)
    assert Encoder(1, (8, 8, 16))(torch.zeros(1, 1, 33, 95)).shape[-2:] == (5, 12)
    with pytest.raises(ValueError, match="image_size"):
        m(torch.zeros(2, 1, 16, 40))


def test_box_mass_counts_weights_in_boxes_and_uniform_gives_the_area_share():
    alpha = torch.zeros(1, 2, 2, 6)
    alpha[0, 0, 0, 1] = 1.0                          # step 0: all mass at location (0, 1): pixel (8, 0)
    alpha[0, 1] = 1 / 12                             # step 1: uniform
    boxes = torch.tensor([[[0.0, 0.0, 16.0, 16.0], [16.0, 0.0, 32.0, 16.0]]])
    m = box_mass(alpha, boxes, SIZE, stride=8)
    assert m.shape == (1, 2, 2)
    torch.testing.assert_close(m[0, 0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(m[0, 1], torch.tensor([4 / 12, 4 / 12]))   # 2 x 2 of 12 centres per box


def test_sequence_scores_and_fit_report_per_digit_accuracy():
    torch.manual_seed(9)
    ds = al.cluttered_digits(48, "train", canvas=(16, 48), scale=(1.0, 1.5), n_digits=3, clutter=1)
    m = ShowAttendTell(**SMALL)
    h = al.fit(m, ds, ds, epochs=1, batch_size=16, progress=False, device="cpu")
    s = sequence_scores(m, ds.images, ds.labels, batch_size=20)
    assert h.test_acc[-1] == pytest.approx(s["digit"])
    assert s["digit"] == pytest.approx(sum(s["position"]) / 3)
    pred = m.eval()(ds.images).argmax(1)
    assert s["sequence"] == pytest.approx((pred == ds.labels).all(1).float().mean().item())
    assert len(h.train_loss) == 1 and torch.isfinite(torch.tensor(h.train_loss)).all()


def test_arms_build_sat_and_position_cnn():
    m = arms.build_model({"model": "sat", "length": 3, "gate": False, "ds_weight": 0.0,
                          "widths": [8, 8, 16]})
    assert isinstance(m, ShowAttendTell) and not m.gate and m.ds_weight == 0.0
    c = arms.build_model({"model": "position_cnn", "image_size": [16, 48], "widths": [8, 8, 16]})
    assert isinstance(c, PositionHeadsCNN) and c.image_size == (16, 48)
    with pytest.raises(ValueError, match="unknown keys in a sat arm"):
        arms.build_model({"model": "sat", "heads": 2})


@pytest.mark.parametrize("kwargs,match", [
    ({"attention": "sharp"}, r"attention must be one of \('soft', 'none', 'hard'\), got 'sharp'"),
    ({"gate": 1}, "gate must be True or False, got 1"),
    ({"ds_weight": -1.0}, "ds_weight must be a number >= 0, got -1.0"),
    ({"ds_weight": True}, "ds_weight must be a number >= 0, got True"),
    ({"length": 0}, "length must be a positive int, got 0"),
    ({"hidden": 2.5}, "hidden must be a positive int, got 2.5"),
    ({"num_classes": 1}, "num_classes must be an int >= 2, got 1"),
    ({"baseline_decay": 1.5}, r"baseline_decay must be a number in \[0, 1\], got 1.5"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShowAttendTell(**kwargs)


def test_bad_inputs():
    m = ShowAttendTell(**SMALL)
    x, y = batch()
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(B, 1, H, W\), got \(4, 3, 16, 48\)"):
        m(torch.zeros(4, 3, *SIZE))
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \(B, T\) = \(4, 3\)"):
        m.objective(x, y[:, :2])
    with pytest.raises(ValueError, match="y must be an integer tensor"):
        m.objective(x, y.float())
    with pytest.raises(ValueError, match=r"y must hold classes in 0..9, got min 0, max 10"):
        m.objective(x, torch.tensor([[0, 1, 10]] * 4))
    with pytest.raises(ValueError, match=r"alpha must be a \(B, T, L\) tensor"):
        doubly_stochastic(torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"image_size must be a \(height, width\) pair"):
        PositionHeadsCNN(image_size=32)
    with pytest.raises(ValueError, match=r"boxes must have shape \(B, K, 4\)"):
        box_mass(torch.ones(2, 3, 2, 6), torch.zeros(2, 4), SIZE, 8)
    with pytest.raises(ValueError, match=r"labels must be a \(n, T\) tensor"):
        sequence_scores(m, x, y[:, 0])
