"""Sanity checks of maps (Adebayo et al., 2018): the randomisation steps change exactly the
blocks they name, the rank similarity equals scipy's Spearman correlation, the map functions
equal hand-written gradients and the book's Grad-CAM equals Captum's."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import spearmanr

import attn_lesson as al
from attn_lesson import sanity
from attn_lesson.maps import GradCAM, upsample


def _as_trained(model: nn.Module, x: torch.Tensor, seed: int = 1) -> nn.Module:
    """Parameters moved away from their initial values and BatchNorm statistics from a batch,
    so that a re-initialised parameter or buffer cannot equal the original by chance."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        model.train()
        model(x)
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    d = al.cluttered_digits(16, "test", seed=0)
    return d.images, d.labels


@pytest.fixture(scope="module")
def cbam_model(digits):
    torch.manual_seed(0)
    model = al.arms.build_model({"attention": {"name": "cbam", "reduction": 4}})
    return _as_trained(model, digits[0])


def _owner(name: str, blocks) -> str | None:
    """The block (a name in ``blocks``) a parameter or buffer ``name`` belongs to."""
    return next((b for b in blocks if name.startswith(b + ".")), None)


# ----------------------------------------------------------------------------------------
# Which blocks
# ----------------------------------------------------------------------------------------
def test_randomisation_order_of_the_backbone():
    assert sanity.randomisation_order(al.ResNetBackbone()) == [
        "head", "stages.2.0", "stages.1.0", "stages.0.0", "stem"]
    deep = al.arms.build_model({"attention": {"name": "se", "reduction": 4},
                                "stage_attention": {"name": "bam", "reduction": 4},
                                "backbone": {"depths": [2, 1, 2]}})
    assert sanity.randomisation_order(deep) == [
        "head", "stages.2.1", "stages.2.0", "transitions.1", "stages.1.0", "transitions.0",
        "stages.0.1", "stages.0.0", "stem"]
    # every parameter belongs to exactly one block; the SE modules inside the blocks too
    blocks = sanity.randomisation_order(deep)
    assert all(_owner(n, blocks) is not None for n, _ in deep.named_parameters())
    generic = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 3))
    assert sanity.randomisation_order(generic) == ["3", "0"]


# ----------------------------------------------------------------------------------------
# Randomisation
# ----------------------------------------------------------------------------------------
def test_cascade_changes_exactly_the_expected_parameters(cbam_model):
    model = cbam_model
    before = copy.deepcopy(model.state_dict())
    order = sanity.randomisation_order(model)
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    previous = None
    steps = list(sanity.cascade(model, seed=0))
    assert [name for name, _ in steps] == order
    for k, (name, rand) in enumerate(steps):
        done = order[:k + 1]
        for pname, p in rand.named_parameters():
            if _owner(pname, done) is not None:
                assert not torch.equal(p, params[pname]), f"step {name}: {pname} not randomised"
            else:
                assert torch.equal(p, params[pname]), f"step {name}: {pname} changed"
            if previous is not None and _owner(pname, order[:k]) is not None:
                # one generator per block: the earlier blocks keep their draws
                assert torch.equal(p, dict(previous.named_parameters())[pname])
        for bname, b in rand.named_buffers():   # BatchNorm statistics are kept
            assert torch.equal(b, buffers[bname]), f"step {name}: buffer {bname} changed"
        previous = rand
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the input model was modified"
    # BatchNorm affine parameters go back to PyTorch's initial values
    head_down = steps[-1][1]
    assert torch.equal(head_down.stem[1].weight, torch.ones(16))
    assert torch.equal(head_down.stem[1].bias, torch.zeros(16))


def test_independent_changes_only_one_block(cbam_model):
    model = cbam_model
    params = dict(model.named_parameters())
    cascaded = dict(sanity.cascade(model, seed=3))
    for name, rand in sanity.independent(model, seed=3):
        for pname, p in rand.named_parameters():
            if pname.startswith(name + "."):
                assert not torch.equal(p, params[pname]), f"{name}: {pname} not randomised"
                # the same draw as in the cascade
                assert torch.equal(p, dict(cascaded[name].named_parameters())[pname])
            else:
                assert torch.equal(p, params[pname]), f"{name}: {pname} changed"


def test_randomised_is_deterministic_for_a_seed_and_keeps_the_global_rng(cbam_model):
    state = torch.get_rng_state()
    a = sanity.randomised(cbam_model, ["head", "stages.2.0"], seed=7)
    b = sanity.randomised(cbam_model, ["head", "stages.2.0"], seed=7)
    c = sanity.randomised(cbam_model, ["head", "stages.2.0"], seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["head.weight"], sc["head.weight"])
    assert torch.equal(sanity.randomised(cbam_model, "head", seed=7).head.weight, sa["head.weight"])


def test_a_parameter_without_reset_parameters_is_redrawn():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.zeros(1))
            self.w = nn.Parameter(torch.zeros(4, 8))

        def forward(self, x):
            return x

    net = nn.Sequential(nn.Linear(8, 4), Gate())
    r = sanity.randomised(net, ["1"], seed=0)
    assert torch.equal(r[0].weight, net[0].weight)
    assert 0 < r[1].gamma.abs().item() <= 1
    assert (r[1].w != 0).all() and r[1].w.abs().max() <= 8 ** -0.5
    assert (net[1].w == 0).all()


# ----------------------------------------------------------------------------------------
# Rank similarity
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 7, 5), (6, 2, 4, 5)])
@pytest.mark.parametrize("absolute", [False, True])
def test_rank_similarity_equals_scipy_spearman_with_ties(shape, absolute):
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-3, 4, shape, generator=g).float()       # many ties, signs for abs
    b = a + torch.randint(-2, 3, shape, generator=g).float()
    rho = sanity.rank_similarity(a, b, absolute=absolute)
    f = (lambda t: t.abs()) if absolute else (lambda t: t)
    expected = [spearmanr(f(a[i]).flatten().numpy(), f(b[i]).flatten().numpy()).statistic
                for i in range(shape[0])]
    torch.testing.assert_close(rho, torch.tensor(expected, dtype=torch.float64))
    assert rho.shape == (shape[0],) and rho.dtype == torch.float64


def test_rank_similarity_is_one_for_identical_and_minus_one_for_reversed_maps():
    a = torch.randn(4, 9, 9)
    torch.testing.assert_close(sanity.rank_similarity(a, a.clone()),
                               torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(sanity.rank_similarity(a, -a), -torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(sanity.rank_similarity(a, -a, absolute=True),
                               torch.ones(4, dtype=torch.float64))
    # a monotone transform keeps the ranks
    torch.testing.assert_close(sanity.rank_similarity(a, a.exp() * 3),
                               torch.ones(4, dtype=torch.float64))


def test_a_constant_map_gives_nan_for_that_image_only():
    a, b = torch.randn(3, 5, 5), torch.randn(3, 5, 5)
    b[1] = 0.0
    rho = sanity.rank_similarity(a, b)
    assert torch.isnan(rho[1]) and torch.isfinite(rho[[0, 2]]).all()


# ----------------------------------------------------------------------------------------
# Maps
# ----------------------------------------------------------------------------------------
def test_gradient_map_equals_a_hand_written_gradient(cbam_model, digits):
    x, y = digits
    model = cbam_model
    xi = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xi).gather(1, y.view(-1, 1)).sum(), xi)
    model.train()
    torch.testing.assert_close(sanity.gradient_map(model, x, y), grad.abs().sum(1))
    torch.testing.assert_close(sanity.gradient_map(model, x, y, absolute=False), grad.sum(1))
    assert model.training and all(p.grad is None for p in model.parameters())
    model.eval()
    pred = model(x).argmax(1)
    torch.testing.assert_close(sanity.gradient_map(model, x, None),
                               sanity.gradient_map(model, x, pred))


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        ctx.save_for_backward(i)
        return i.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (i,) = ctx.saved_tensors
        return g * (i > 0) * (g > 0)


class _GuidedReLUModule(nn.Module):
    def forward(self, i):
        return _GuidedReLU.apply(i)


def _guided_copy(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, _GuidedReLUModule())
    return module


def test_guided_backprop_on_the_backbone_equals_a_hand_written_one(cbam_model, digits):
    # the backbone's ReLUs are in-place nn.ReLU modules, and a block reuses its ReLU twice
    x, y = digits
    model = cbam_model
    inplace = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]
    assert inplace
    guided = _guided_copy(model)
    xi = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(guided(xi).gather(1, y.view(-1, 1)).sum(), xi)
    gbp = sanity.guided_backprop_map(model, x, y, absolute=False)
    torch.testing.assert_close(gbp, grad.sum(1))
    assert all(m.inplace for m in inplace)                        # restored
    plain = sanity.gradient_map(model, x, y, absolute=False)
    assert not torch.allclose(gbp, plain)                         # guided is not the gradient


def test_guided_backprop_refuses_a_functional_relu(digits):
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x)).mean((2, 3)))

    with pytest.raises(ValueError, match=r"nn\.ReLU module.*1 ReLU"):
        sanity.guided_backprop_map(Functional(), digits[0][:2], None)


@pytest.mark.parametrize("which", ["untrained", "cbam"])
def test_book_gradcam_equals_captum_layergradcam(which, cbam_model, digits):
    x, y = digits
    torch.manual_seed(0)
    model = al.ResNetBackbone().eval() if which == "untrained" else cbam_model
    with GradCAM(model, model.stages[-1]) as cam:
        raw = cam(x, y)                                           # (16, 5, 5)
    from captum.attr import LayerGradCam

    native = LayerGradCam(model, model.stages[-1]).attribute(x, target=y, relu_attributions=True)
    torch.testing.assert_close(raw, native[:, 0].detach(), rtol=1e-5, atol=1e-7)
    ours, theirs = sanity.gradcam_map(model, x, y), sanity.captum_gradcam_map(model, x, y)
    assert ours.shape == theirs.shape == (16, 40, 40)
    torch.testing.assert_close(ours, upsample(raw, 40))               # the book's placement
    # after the same upsampling (Captum's interpolate is the book's anchor="centre")
    torch.testing.assert_close(upsample(raw, 40, anchor="centre"), theirs, rtol=1e-5, atol=1e-7)
    assert raw.flatten(1).amax(1).gt(0).sum() >= 8                  # most maps are not all zero


def test_map_functions_check_their_arguments(cbam_model, digits):
    x, y = digits
    with pytest.raises(ValueError, match=r"target must .* \(16\).*shape \(3,\)"):
        sanity.gradient_map(cbam_model, x, y[:3])
    with pytest.raises(ValueError, match=r"target must hold classes in \[0, 10\).*12"):
        sanity.gradient_map(cbam_model, x, torch.full((16,), 12))
    with pytest.raises(ValueError,
                       match=r"x must be a batch of images \(n, C, H, W\), got \(1, 40, 40\)"):
        sanity.gradcam_map(cbam_model, x[0], y[:1])
    with pytest.raises(ValueError, match="layer must be given"):
        sanity.gradcam_map(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), x, None)
    with pytest.raises(ValueError, match="absolute must be True or False"):
        sanity.gradient_map(cbam_model, x, y, absolute="yes")


@pytest.fixture(scope="module")
def briefly_trained():
    """A plain backbone after 8 Adam steps on 256 training images (about 3 s)."""
    train = al.cluttered_digits(256, "train", seed=0)
    torch.manual_seed(0)
    model = al.ResNetBackbone()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(8):
        i = torch.randperm(256)[:64]
        loss = F.cross_entropy(model(train.images[i]), train.labels[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_a_randomised_classifier_changes_the_gradient_map(briefly_trained, digits):
    # the sanity check of the sanity check: a map that depends on the learned parameters must
    # move when the classifier is re-drawn (measured: median rho 0.41 over the 16 images; on an
    # *untrained* backbone with its initial BatchNorm statistics it was 0.96, so the check is
    # for trained models)
    x, y = digits
    model = briefly_trained
    before = sanity.gradient_map(model, x, y)
    again = sanity.gradient_map(copy.deepcopy(model), x, y)
    torch.testing.assert_close(sanity.rank_similarity(before, again),
                               torch.ones(16, dtype=torch.float64))
    rand = sanity.randomised(model, ["head"], seed=0)
    rho = sanity.rank_similarity(before, sanity.gradient_map(rand, x, y))
    assert rho.median() < 0.9, rho


# ----------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------
def test_bad_input_names_the_argument_what_was_given_and_what_is_allowed(cbam_model):
    model = cbam_model
    with pytest.raises(ValueError, match=r"names holds 'classifier'.*allowed.*'head'.*'stem'"):
        sanity.randomised(model, ["head", "classifier"], seed=0)
    with pytest.raises(ValueError, match=r"names holds 'pool'.*without parameters.*'head'"):
        sanity.randomised(model, ["pool"], seed=0)
    with pytest.raises(ValueError, match=r"names must be a non-empty list.*got \[\]"):
        sanity.randomised(model, [], seed=0)
    for seed in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match=rf"seed must be a non-negative int, got {seed!r}"):
            sanity.randomised(model, ["head"], seed=seed)
    with pytest.raises(ValueError, match=r"names holds 'nope'"):
        next(sanity.cascade(model, seed=0, order=["head", "nope"]))
    with pytest.raises(ValueError, match=r"seed must be"):
        next(sanity.independent(model, seed=-2))
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got a \(2, 5, 5\) "
                                         r"and b \(2, 1, 5, 5\)"):
        sanity.rank_similarity(torch.rand(2, 5, 5), torch.rand(2, 1, 5, 5))
    with pytest.raises(ValueError, match=r"b must be a tensor of maps .*got \(2, 25\)"):
        sanity.rank_similarity(torch.rand(2, 5, 5), torch.rand(2, 25))
    with pytest.raises(ValueError, match=r"a must hold finite values"):
        sanity.rank_similarity(torch.full((2, 5, 5), float("nan")), torch.rand(2, 5, 5))
    with pytest.raises(ValueError, match=r"absolute must be True or False, got 1"):
        sanity.rank_similarity(torch.rand(2, 5, 5), torch.rand(2, 5, 5), absolute=1)
    with pytest.raises(ValueError, match=r"model must be a torch.nn.Module, got str"):
        sanity.randomisation_order("resnet")
