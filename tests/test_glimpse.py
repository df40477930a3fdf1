"""RAM (attn_lesson.glimpse): the glimpse sensor against direct crops, shapes, the REINFORCE
estimator against an exact gradient, the hybrid loss, fit with a model's own objective, and
bad inputs."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import attn_lesson as al
from attn_lesson import arms
from attn_lesson.glimpse import (RAM, GlimpseNetwork, GlimpseSensor, Rollout, gaussian_toy_gradient,
                                 hybrid_loss, reinforce_surrogate)


def direct_patches(x, centre_px, patch, scales):
    """Crop each 2^j g square around a pixel-grid point (cx, cy) (zeros outside the image) and
    average-pool it by 2^j: the retina written as plain slicing, one image at a time."""
    b, c, h, w = x.shape
    pad = patch * 2 ** (scales - 1)
    xp = F.pad(x, (pad, pad, pad, pad))
    out = torch.zeros(b, scales, c, patch, patch)
    for i, (cx, cy) in enumerate(centre_px):
        for j in range(scales):
            side = patch * 2 ** j
            x0, y0 = cx - side // 2 + pad, cy - side // 2 + pad
            crop = xp[i:i + 1, :, y0:y0 + side, x0:x0 + side]
            out[i, j] = F.avg_pool2d(crop, 2 ** j)[0]
    return out


@pytest.mark.parametrize("patch,scales", [(8, 3), (4, 2), (6, 1)])
def test_sensor_equals_direct_crops_at_aligned_locations(patch, scales):
    torch.manual_seed(0)
    h, w = 32, 48
    x = torch.rand(6, 2, h, w)
    f = 2 ** (scales - 1)
    # centres on multiples of 2^(k-1) pixels, including the borders and a corner
    centres = [(0, 0), (w, h), (f * 3, f * 5), (w // 2, h // 2), (f, h - f), (w - 2 * f, 2 * f)]
    l = torch.tensor([[2 * cx / w - 1, 2 * cy / h - 1] for cx, cy in centres])
    got = GlimpseSensor(patch, scales)(x, l)
    assert got.shape == (6, scales, 2, patch, patch)
    torch.testing.assert_close(got, direct_patches(x, centres, patch, scales), atol=1e-5, rtol=1e-5)


def test_sensor_pyramid_reuse_and_coordinate_convention():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 2, 13] = 1.0                                   # one bright pixel, row 2, column 13
    s = GlimpseSensor(2, 1)
    centre = torch.tensor([[(2 * 13 + 1) / 16 - 1 + 1 / 16, (2 * 2 + 1) / 16 - 1 + 1 / 16]])
    # a 2x2 patch centred on the corner shared by pixels (2,13),(2,14),(3,13),(3,14): x is left-top
    assert s(x, centre)[0, 0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    pyr = s.pyramid(x)
    torch.testing.assert_close(s(x, centre, pyr), s(x, centre))


def test_ram_shapes_record_and_modes():
    torch.manual_seed(0)
    m = RAM(image_size=(32, 32), glimpses=4, patch=4, scales=3, hidden=32, glimpse_dim=32,
            what_dim=16, where_dim=16)
    x = torch.rand(5, 1, 32, 32)
    r = m.rollout(x)
    assert isinstance(r, Rollout) and r.logits.shape == (5, 10)
    assert r.locations.shape == r.means.shape == (5, 4, 2) and r.log_probs.shape == r.baselines.shape == (5, 4)
    assert r.locations.abs().max() <= 1 and (r.log_probs != 0).all()
    # the first mean is tanh of the locator's bias (h_0 = 0): the centre at initialisation
    torch.testing.assert_close(r.means[:, 0], torch.tanh(m.locator.bias).expand(5, 2))
    assert (r.means == 0).all()                 # the policy starts at zero: every mean at the centre
    m.eval()
    a, b = m.rollout(x), m.rollout(x)
    assert torch.equal(a.locations, b.locations) and torch.equal(a.locations, a.means.clamp(-1, 1))
    assert (a.log_probs == 0).all() and torch.equal(m(x), a.logits)


def test_given_locations_replace_the_policy():
    torch.manual_seed(0)
    m = RAM(image_size=(32, 32), glimpses=3, patch=4, scales=3, hidden=16, glimpse_dim=16,
            what_dim=8, where_dim=8)
    nn.init.normal_(m.locator.weight)                       # a policy that moves
    x = torch.rand(4, 1, 32, 32)
    m.eval()
    own = m.rollout(x)
    assert not torch.allclose(own.locations[:, 1], torch.zeros(4, 2))
    same = m.rollout(x, locations=own.locations)            # its own locations: the same logits
    torch.testing.assert_close(same.logits, own.logits)
    corner = torch.full((4, 3, 2), -0.5)
    r = m.rollout(x, locations=corner)
    assert torch.equal(r.locations, corner) and (r.log_probs == 0).all()
    assert not torch.allclose(r.logits, own.logits)
    m.train()                                               # nothing is sampled in training mode either
    assert torch.equal(m.rollout(x, locations=corner).locations, corner)
    with pytest.raises(ValueError, match=r"locations must be a finite tensor of shape \(B, T, 2\) = \(4, 3, 2\), got \(4, 2, 2\)"):
        m.rollout(x, locations=torch.zeros(4, 2, 2))
    with pytest.raises(ValueError, match="locations must be a finite tensor"):
        m.rollout(x, locations=torch.full((4, 3, 2), float("nan")))


def test_random_control_draws_uniform_locations_and_trains_by_cross_entropy():
    torch.manual_seed(0)
    m = RAM(image_size=(16, 16), glimpses=3, patch=4, scales=2, hidden=16, glimpse_dim=16,
            what_dim=8, where_dim=8, random_locations=True)
    x, y = torch.rand(400, 1, 16, 16), torch.randint(0, 10, (400,))
    r = m.rollout(x)
    assert (r.log_probs == 0).all() and r.locations.min() >= -1 and r.locations.max() <= 1
    assert abs(r.locations.mean().item()) < 0.05 and abs(r.locations.var().item() - 1 / 3) < 0.03
    torch.manual_seed(1)
    loss, logits = m.objective(x, y)
    torch.manual_seed(1)
    torch.testing.assert_close(loss, F.cross_entropy(m(x), y))
    loss.backward()
    assert m.locator.weight.grad is None and m.baseline.weight.grad is None


def test_hybrid_loss_parts_and_which_weights_each_part_trains():
    torch.manual_seed(0)
    m = RAM(image_size=(16, 16), glimpses=3, patch=4, scales=2, hidden=16, glimpse_dim=16,
            what_dim=8, where_dim=8, reinforce_weight=0.5)
    x, y = torch.rand(32, 1, 16, 16), torch.randint(0, 10, (32,))
    r = m.rollout(x)
    parts = hybrid_loss(r, y, 0.5)
    reward = (r.logits.argmax(1) == y).float()
    ce = F.cross_entropy(r.logits, y)
    rl = -(r.log_probs * (reward[:, None] - r.baselines)).sum(1).mean()
    mse = ((r.baselines - reward[:, None]) ** 2).mean()
    torch.testing.assert_close(parts["loss"], ce + 0.5 * rl + mse)
    torch.testing.assert_close(parts["reward"], reward.mean())
    # the locator learns from the REINFORCE term only, the baseline from the squared error only,
    # the classifier from the cross-entropy only (policy and baseline read h detached)
    g_rl = torch.autograd.grad(parts["reinforce"], [m.locator.weight, m.classifier.weight, m.baseline.weight],
                               allow_unused=True)
    assert g_rl[0] is not None and g_rl[1] is None and g_rl[2] is None
    g_ce = torch.autograd.grad(parts["ce"], [m.locator.weight, m.core.weight_hh], allow_unused=True)
    assert g_ce[0] is None and g_ce[1] is not None


def test_reinforce_estimate_matches_the_exact_gradient_on_a_toy_policy():
    """Mean of n score-function estimates of d E[R] / d mu, with and without a baseline, within
    5 standard errors of the closed-form gradient (a false alarm has probability < 1e-6)."""
    torch.manual_seed(0)
    mu = torch.tensor([0.3, -0.2], requires_grad=True)
    target, std, width, n = torch.tensor([0.1, 0.2]), 0.3, 0.25, 20000
    exact = gaussian_toy_gradient(mu.detach(), std, target, width)
    for baseline in (None, 0.5):
        a = (mu.detach() + std * torch.randn(n, 2))
        reward = torch.exp(-((a - target) ** 2).sum(1) / (2 * width ** 2))
        logp = torch.distributions.Normal(mu, std).log_prob(a).sum(1)
        # per-sample estimates (the gradient of each sample's surrogate), then their mean
        per = (reward - (baseline or 0.0))[:, None] * (a - mu.detach()) / std ** 2
        est = per.mean(0)
        se = per.std(0) / math.sqrt(n)
        assert ((est - exact).abs() < 5 * se).all(), (baseline, est, exact, se)
        grad, = torch.autograd.grad(reinforce_surrogate(logp, reward, baseline), mu)
        torch.testing.assert_close(-grad, est, atol=1e-6, rtol=1e-5)   # the surrogate's gradient is it


def test_exact_toy_gradient_against_finite_differences():
    mu, target = torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([0.1, 0.2], dtype=torch.float64)
    std, width = 0.3, 0.25
    s2 = width ** 2 + std ** 2

    def expected(m):
        return torch.prod(width / math.sqrt(s2) * torch.exp(-(m - target) ** 2 / (2 * s2)))
    eps = 1e-6
    fd = torch.stack([(expected(mu + eps * e) - expected(mu - eps * e)) / (2 * eps) for e in torch.eye(2, dtype=torch.float64)])
    torch.testing.assert_close(gaussian_toy_gradient(mu, std, target, width), fd)


def test_fit_uses_the_models_objective_and_ram_learns_a_little():
    """fit minimises model.objective: a RAM on clean digits beats chance (0.1) after 6 epochs
    (0.31 when written; the bound leaves room for other CPUs' rounding)."""
    train = al.cluttered_digits(800, "train", canvas=24, clutter=0, seed=0)
    test = al.cluttered_digits(300, "test", canvas=24, clutter=0, seed=0)
    al.seed_everything(0)
    m = RAM(image_size=(24, 24), glimpses=2, patch=8, scales=2, hidden=64, glimpse_dim=64,
            what_dim=32, where_dim=32)
    calls = []
    original = m.objective
    m.objective = lambda x, y: calls.append(len(y)) or original(x, y)
    h = al.fit(m, train, test, epochs=6, lr=3e-3, batch_size=32, device="cpu", progress=False)
    assert len(calls) == 6 * (800 // 32) and h.test_acc[-1] > 0.2


def test_a_ram_arm_builds_and_trains_through_train_arm():
    spec = {"model": "ram", "image_size": [24, 24], "glimpses": 2, "patch": 4, "scales": 2,
            "hidden": 16, "glimpse_dim": 16, "what_dim": 8, "where_dim": 8, "std": 0.2}
    m = arms.build_model(spec)
    assert isinstance(m, RAM) and m.glimpses == 2 and m.std == 0.2 and m.image_size == (24, 24)
    assert arms.build_model({"model": "ram", "image_size": [24, 24], "random_locations": True}).random_locations
    train = al.cluttered_digits(64, "train", canvas=24, seed=0)
    test = al.cluttered_digits(32, "test", canvas=24, seed=0)
    h1 = arms.train_arm(spec, train, test, seed=3, device="cpu", epochs=1, batch_size=32, lr=1e-3, progress=False)
    h2 = arms.train_arm(spec, train, test, seed=3, device="cpu", epochs=1, batch_size=32, lr=1e-3, progress=False)
    assert h1.train_loss == h2.train_loss and h1.test_acc == h2.test_acc      # seeded: repeats exactly
    with pytest.raises(ValueError, match="unknown keys in a ram arm"):
        arms.build_model({"model": "ram", "glimpse": 6})
    with pytest.raises(ValueError, match="pretrain is only for resnet arms"):
        arms.build_model({"model": "ram", "pretrain": {"digit": 0, "epochs": 1}})


@pytest.mark.parametrize("make,pattern", [
    (lambda: GlimpseSensor(0, 3), "patch must be a positive int"),
    (lambda: GlimpseSensor(8, 7), "scales must be between 1 and 6"),
    (lambda: GlimpseNetwork(what_dim=0), "what_dim must be a positive int"),
    (lambda: RAM(glimpses=0), "glimpses must be a positive int"),
    (lambda: RAM(std=0.0), r"std must be a number in \(0, 2\]"),
    (lambda: RAM(std=True), r"std must be a number"),
    (lambda: RAM(reinforce_weight=-1), "reinforce_weight must be a number >= 0"),
    (lambda: RAM(random_locations=1), "random_locations must be True or False"),
    (lambda: RAM(image_size=(60,)), "image_size must be an int or a"),
    (lambda: RAM(image_size=(62, 62)), r"must be divisible by 2\^\(scales-1\) = 4"),
    (lambda: GlimpseSensor(8, 3)(torch.rand(2, 1, 30, 30), torch.zeros(2, 2)), "divisible by 2"),
    (lambda: GlimpseSensor(8, 3)(torch.rand(2, 30, 30), torch.zeros(2, 2)), r"x must be a tensor of shape \(B"),
    (lambda: GlimpseSensor(8, 3)(torch.rand(2, 1, 32, 32), torch.zeros(3, 2)), r"l must be a tensor of shape \(B, 2\)"),
    (lambda: GlimpseSensor(8, 3)(torch.rand(2, 1, 32, 32), torch.zeros(2, 2), torch.zeros(2, 2, 1, 32, 32)),
     "pyramid must have shape"),
    (lambda: RAM()(torch.rand(2, 1, 40, 40)), r"x must have spatial size \(60, 60\)"),
    (lambda: RAM()(torch.rand(2, 3, 60, 60)), r"x must be a tensor of shape \(B, 1, H, W\)"),
    (lambda: reinforce_surrogate(torch.zeros(4, 2, 1), torch.zeros(4)), "log_probs must be a"),
    (lambda: reinforce_surrogate(torch.zeros(4, 2), torch.zeros(3)), r"reward must be a tensor of shape \(B,\)"),
    (lambda: gaussian_toy_gradient(torch.zeros(2), 0.0, torch.zeros(2), 1.0), "std must be a positive"),
    (lambda: gaussian_toy_gradient(torch.zeros(2), 1.0, torch.zeros(3), 1.0), "same shape"),
])
def test_bad_inputs(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_hybrid_loss_bad_inputs():
    m = RAM(image_size=(16, 16), glimpses=2, patch=4, scales=2, hidden=8, glimpse_dim=8, what_dim=8, where_dim=8)
    r = m.rollout(torch.rand(4, 1, 16, 16))
    with pytest.raises(ValueError, match=r"y must be a tensor of shape \(B,\)"):
        hybrid_loss(r, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="reinforce_weight must be a number >= 0"):
        hybrid_loss(r, torch.zeros(4, dtype=torch.long), -0.1)


def test_a_reference_with_ram_arms_runs_caches_and_loads(tmp_path, monkeypatch):
    """`make reference` with RAM arms (their own objective inside the one fit): a tiny REFERENCE
    of a learned and a random-glimpse arm, 5 seeds, written, cached, validated and loaded; the
    cache key covers glimpse.py (the model's file) and train.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import reference

    md = tmp_path / "99_tiny.md"
    md.write_text("""# tiny

```{code-cell}
REFERENCE = {
    "data": {"n_train": 64, "n_test": 32, "seed": 0, "canvas": 24, "clutter": 2},
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.001},
    "seeds": [0, 1, 2, 3, 4],
    "arms": {"RAM": {"model": "ram", "image_size": [24, 24], "glimpses": 2, "patch": 4, "scales": 2, "hidden": 16, "glimpse_dim": 16, "what_dim": 8, "where_dim": 8},
             "random": {"model": "ram", "image_size": [24, 24], "glimpses": 2, "patch": 4, "scales": 2, "hidden": 16, "glimpse_dim": 16, "what_dim": 8, "where_dim": 8, "random_locations": True}},
}
```
""")
    monkeypatch.setattr(reference, "chapter_source", lambda ch: md)
    monkeypatch.setattr(reference, "CACHE", tmp_path / "cache")
    monkeypatch.setenv(al.results.RESULTS_ENV, str(tmp_path / "out"))
    cfg = reference.read_reference_config(md)
    assert {"glimpse.py", "train.py"} <= set(reference.training_files(cfg["arms"]["RAM"]))
    assert reference.training_source_hash(cfg["arms"]["RAM"]) != reference.training_source_hash(cfg["arms"]["random"])
    path = reference.run("99", out_dir=tmp_path / "out")
    assert len(list((tmp_path / "cache").glob("*.json"))) == 10
    ref = al.results.load("99_tiny", cfg)
    assert set(ref.arms) == {"RAM", "random"} and len(ref["RAM"].accs) == 5 and path.exists()
    again = reference.run("99", out_dir=tmp_path / "out2")
    assert json.loads(again.read_text())["provenance"]["runs_from_cache"] == 10
