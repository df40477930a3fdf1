"""Sanity checks for maps by model-parameter randomisation (Adebayo et al., 2018, "Sanity Checks
for Saliency Maps").

A map that explains a model should change when the model's learned parameters are replaced by
random ones. The paper randomises a trained network from the top layer down:

* :func:`cascade` yields the model with its blocks re-initialised cumulatively, from the
  classifier down to and including each block in turn (the paper's *cascading* randomisation);
* :func:`independent` yields the model with one block re-initialised at a time, the others kept
  (the paper's *independent* randomisation);
* :func:`randomised` is the step both use: a deep copy with the named modules re-initialised;
  :func:`randomisation_order` lists the blocks, top first.

Maps of the original and the randomised model are compared image by image with
:func:`rank_similarity` (Spearman's rank correlation, on the raw maps and on their absolute
values, as the paper reports both). The map functions share one signature,
``fn(model, x, target) -> (n, H, W)`` at the input's resolution: :func:`gradient_map`,
:func:`guided_backprop_map` (both through Captum), :func:`gradcam_map` (the book's
:class:`attn_lesson.maps.GradCAM`) and :func:`captum_gradcam_map` (Captum's ``LayerGradCam``, to
cross-check the book's). ``target`` is a class per image, or ``None`` for the model's own
prediction (the paper explains each model's predicted class). Every map function puts the model
in eval mode for the call and restores its mode afterwards; none leaves gradients on the
parameters. Captum (``captum>=0.7``) is imported only by the functions that use it.

Granularity. For :class:`attn_lesson.models.ResNetBackbone` the unit is a residual block (the
paper randomises Inception v3 block by block: the logits, then each ``Mixed`` block, then the
stem convolutions): ``head``, then each stage's between-stage attention module (``transitions.i``,
where it has parameters) and its blocks from the last to the first (``stages.i.j``, the block's
attention module included), down to ``stem``. Other models: their top-level children that hold
parameters, in reverse registration order (assumed to be the forward order); parameters that the
model registers on itself (e.g. a class token) belong to no unit.

Re-initialisation. Every sub-module of a named module is reset with its own
``reset_parameters()`` (PyTorch's default initialisation of that layer type, which need not be
the one a course module's constructor applied, e.g. a zero-initialised gate). A parameter held
directly by a module without ``reset_parameters()`` is redrawn as :class:`torch.nn.Linear`'s
default would draw it: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in`` =
``numel / size(0)`` (``numel`` for 0-D and 1-D parameters). **Buffers are kept**: a BatchNorm
layer's weight and bias go back to 1 and 0, its running mean and variance stay those of the
trained model. The paper's code re-initialises the *trainable* variables of each block of a
TF-slim Inception v3 evaluated in inference mode; the moving mean and variance are not trainable
variables there, so its randomised networks normalise with the trained statistics. (Quantus'
``MPRT`` calls ``reset_parameters()`` on every layer that has one, which for a PyTorch BatchNorm
resets the running statistics too.)

Seeds. Each named module draws from its own generator seeded from ``(seed, name)``, so a block
gets the same random parameters whichever other blocks are randomised with it: step ``k`` of
:func:`cascade` equals step ``k - 1`` plus one block, and :func:`independent` gives a block the
same parameters as :func:`cascade`. The global random state is left as it was.
"""
from __future__ import annotations

import copy
import hashlib
import math
import warnings
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .maps import GradCAM, upsample


# ----------------------------------------------------------------------------------------
# Which blocks, in which order
# ----------------------------------------------------------------------------------------
def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def randomisation_order(model: nn.Module) -> list[str]:
    """The model's parametrised blocks as module names, from the top (the classifier) down to
    the stem: the units that :func:`cascade` and :func:`independent` re-initialise one by one.

    For :class:`~attn_lesson.models.ResNetBackbone` (default depths): ``["head", "stages.2.0",
    "stages.1.0", "stages.0.0", "stem"]``, with ``transitions.i`` before stage ``i``'s blocks
    where a between-stage attention module is present. :class:`~attn_lesson.ltpa.LTPANet`:
    ``heads``, ``attn``, ``global_fc``, then its backbone block by block (``backbone.stages.2.0``,
    ...). :class:`~attn_lesson.residual.ResidualAttentionNet`: ``backbone.head``, then per stage
    from the top its attention modules (``attn.i``, after stage ``i + 1``) above its blocks.
    :class:`~attn_lesson.vit.ViT`: ``head``, ``norm``, ``blocks.L-1`` ... ``blocks.0``, ``embed``,
    then the parameters the ViT holds itself, ``pos_embed`` and ``cls_token`` (a unit may be a
    parameter: see :func:`randomised`).
    Other models: top-level children with parameters, last registered first.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    from .ltpa import LTPANet
    from .models import ResNetBackbone
    from .residual import ResidualAttentionNet
    from .vit import ViT

    def backbone_order(net, prefix="", between=None):
        order = [prefix + "head"] if _has_params(net.head) else []
        for i in reversed(range(len(net.stages))):
            for name, mod in ([(f"transitions.{i}", net.transitions[i])]
                              + ([(between(i), None)] if between and between(i) else [])):
                if mod is None or _has_params(mod):
                    order.append(name if mod is None else prefix + name)
            order += [f"{prefix}stages.{i}.{j}" for j in reversed(range(len(net.stages[i])))
                      if _has_params(net.stages[i][j])]
        return order + [prefix + "stem"]

    if isinstance(model, ResNetBackbone):
        return backbone_order(model)
    if isinstance(model, LTPANet):          # classifier, attention estimators, g, then the backbone
        return ["heads", "attn", "global_fc"] + backbone_order(model.backbone, "backbone.")
    if isinstance(model, ResidualAttentionNet):     # attention module i sits after stage i + 1
        return backbone_order(model.backbone, "backbone.",
                              lambda i: f"attn.{i}" if i < len(model.attn) and _has_params(model.attn[i]) else None)
    if isinstance(model, ViT):      # the class token and position embeddings come in with the stem
        return (["head", "norm"] + [f"blocks.{k}" for k in reversed(range(len(model.blocks)))]
                + ["embed", "pos_embed", "cls_token"])
    order = [name for name, child in model.named_children() if _has_params(child)]
    if not order:
        raise ValueError(f"model ({type(model).__name__}) has no child module with parameters "
                         "to randomise")
    return order[::-1]


# ----------------------------------------------------------------------------------------
# Re-initialisation
# ----------------------------------------------------------------------------------------
def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return seed


def _check_names(model: nn.Module, names) -> list[str]:
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, Sequence) or not names:
        raise ValueError("names must be a non-empty list of module names (e.g. "
                         f"{randomisation_order(model)[:2]}), got {names!r}")
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    allowed = randomisation_order(model)
    for name in names:
        if isinstance(name, str) and name not in modules and name in params:
            continue                                   # a parameter as a unit (the ViT's pos_embed)
        if not isinstance(name, str) or not name or name not in modules:
            raise ValueError(f"names holds {name!r}, which is not a sub-module of "
                             f"{type(model).__name__}; allowed: any name of model.named_modules() "
                             f"other than '' or of model.named_parameters(), e.g. the blocks {allowed}")
        if not _has_params(modules[name]):
            raise ValueError(f"names holds {name!r}, a {type(modules[name]).__name__} without "
                             f"parameters: nothing to randomise; the blocks are {allowed}")
    return list(names)


def _name_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2 ** 63)


@torch.no_grad()
def _fallback_init(p: torch.Tensor) -> None:
    fan_in = p.numel() // p.shape[0] if p.dim() >= 2 else p.numel()
    bound = 1 / math.sqrt(max(fan_in, 1))
    p.uniform_(-bound, bound)


def _reinit(module: nn.Module) -> None:
    """Re-initialise every parameter under ``module``, keeping its buffers."""
    buffers = {k: b.clone() for k, b in module.named_buffers()}
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None) or getattr(sub, "_reset_parameters", None)
        if callable(reset):
            reset()
        else:
            for p in sub.parameters(recurse=False):
                _fallback_init(p)
    with torch.no_grad():
        for k, b in module.named_buffers():
            b.copy_(buffers[k])


def randomised(model: nn.Module, names, *, seed: int) -> nn.Module:
    """A deep copy of ``model`` with the parameters of the modules ``names`` re-initialised
    (see the module docstring: each sub-module's ``reset_parameters()``, buffers kept, one
    generator per name seeded from ``(seed, name)``). ``model`` itself is not modified.

    ``names``: module names as in ``model.named_modules()``, e.g. from
    :func:`randomisation_order`; a single name may be given as a string. A name of
    ``model.named_parameters()`` that is not a module (the ViT's ``pos_embed``, ``cls_token``)
    re-draws that one parameter by the fallback rule of the module docstring.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = _check_names(model, names)
    seed = _check_seed(seed)
    out = copy.deepcopy(model)
    modules, params = dict(out.named_modules()), dict(out.named_parameters())
    cuda = sorted({p.device.index or 0 for p in out.parameters() if p.device.type == "cuda"})
    for name in names:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(_name_seed(seed, name))
            if name in modules:
                _reinit(modules[name])
            else:                                      # a parameter named as a unit
                _fallback_init(params[name])
    return out


def cascade(model: nn.Module, *, seed: int, order=None) -> Iterator[tuple[str, nn.Module]]:
    """Cascading randomisation: yields ``(name, model)`` for each block of ``order`` (default
    :func:`randomisation_order`), the model being a copy with every block from the first of
    ``order`` down to and including ``name`` re-initialised."""
    order = _check_names(model, randomisation_order(model) if order is None else order)
    seed = _check_seed(seed)
    for k, name in enumerate(order):
        yield name, randomised(model, order[:k + 1], seed=seed)


def independent(model: nn.Module, *, seed: int, order=None) -> Iterator[tuple[str, nn.Module]]:
    """Independent randomisation: yields ``(name, model)`` for each block of ``order`` (default
    :func:`randomisation_order`), the model being a copy with only ``name`` re-initialised."""
    order = _check_names(model, randomisation_order(model) if order is None else order)
    seed = _check_seed(seed)
    for name in order:
        yield name, randomised(model, [name], seed=seed)


# ----------------------------------------------------------------------------------------
# Similarity of maps
# ----------------------------------------------------------------------------------------
def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..m along dim 1, ties given their average rank (scipy's rankdata)."""
    from scipy.stats import rankdata
    return torch.from_numpy(rankdata(v.numpy(), axis=1)).to(torch.float64)


def rank_similarity(a, b, *, absolute: bool = False) -> torch.Tensor:
    """Spearman's rank correlation between map ``a[i]`` and map ``b[i]``, per image, as a
    float64 tensor ``(n,)``.

    ``a`` and ``b``: maps of the same shape, ``(n, H, W)`` or ``(n, C, H, W)``, each image's map
    flattened. Tied values get their average rank (as ``scipy.stats.spearmanr``). With
    ``absolute=True`` the maps' absolute values are ranked (the paper reports the correlation
    with and without it). An image whose map is constant in ``a`` or in ``b`` has no ranking:
    its entry is ``nan`` (scipy also returns nan there), so aggregate with ``nanmean`` and report
    how many there were.
    """
    shapes = []
    for name, m in (("a", a), ("b", b)):
        if not isinstance(m, torch.Tensor) or m.dim() not in (3, 4):
            got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise ValueError(f"{name} must be a tensor of maps (n, H, W) or (n, C, H, W), "
                             f"got {got}")
        shapes.append(tuple(m.shape))
    if shapes[0] != shapes[1]:
        raise ValueError(f"a and b must have the same shape, got a {shapes[0]} and b {shapes[1]}; "
                         "bring them to one resolution first (e.g. attn_lesson.maps.upsample)")
    if not isinstance(absolute, bool):
        raise ValueError(f"absolute must be True or False, got {absolute!r}")
    a = a.detach().to("cpu", torch.float64).flatten(1)
    b = b.detach().to("cpu", torch.float64).flatten(1)
    for name, m in (("a", a), ("b", b)):
        if not torch.isfinite(m).all():
            raise ValueError(f"{name} must hold finite values, got nan or inf in "
                             f"{int((~torch.isfinite(m)).any(1).sum())} image(s)")
    if absolute:
        a, b = a.abs(), b.abs()
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    rho = (ra * rb).sum(1) / den
    return torch.where(den > 0, rho, torch.full_like(rho, float("nan")))


# ----------------------------------------------------------------------------------------
# Maps: fn(model, x, target) -> (n, H, W)
# ----------------------------------------------------------------------------------------
def _check_inputs(model, x, target) -> torch.Tensor | None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a batch of images (n, C, H, W), got {got}")
    if target is None:
        return None
    t = torch.as_tensor(target)
    if (t.dtype.is_floating_point or t.dtype == torch.bool or t.dim() > 1
            or (t.dim() == 1 and t.shape[0] != x.shape[0])):
        raise ValueError(f"target must be None or one class index per image ({x.shape[0]}), "
                         f"got {t.dtype} of shape {tuple(t.shape)}")
    return t.to(x.device).long().expand(x.shape[0]).contiguous()


def _targets(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """The classes to explain: ``target`` checked, or the model's prediction (eval mode)."""
    t = _check_inputs(model, x, target)
    with torch.no_grad():
        logits = model(x)
    if logits.dim() != 2:
        raise ValueError(f"model must return logits (n, classes), got shape {tuple(logits.shape)}")
    if t is None:
        return logits.argmax(1)
    if t.min() < 0 or t.max() >= logits.shape[1]:
        raise ValueError(f"target must hold classes in [0, {logits.shape[1]}), got values from "
                         f"{int(t.min())} to {int(t.max())}")
    return t


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


class _EvalMode:
    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def gradient_map(model: nn.Module, x: torch.Tensor, target=None, *,
                 absolute: bool = True) -> torch.Tensor:
    r"""The plain gradient :math:`\partial y^c / \partial x` (Simonyan et al., 2014) through
    ``captum.attr.Saliency``, as ``(n, H, W)``: its absolute value summed over the input
    channels (``absolute=True``, the paper's grey-scale display of gradient maps, without the
    display's clipping at the 99th percentile), or the signed gradient summed over channels
    (``absolute=False``; for one-channel images that is the gradient itself)."""
    from captum.attr import Saliency

    if not isinstance(absolute, bool):
        raise ValueError(f"absolute must be True or False, got {absolute!r}")
    with _EvalMode(model):
        t = _targets(model, x, target)
        g = Saliency(model).attribute(_leaf(x), target=t, abs=absolute)
    return g.sum(1).detach()


_RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}


def _functional_relu_calls(model: nn.Module, x: torch.Tensor) -> int:
    """How many ReLUs one forward pass applies outside an ``nn.ReLU`` module."""
    from torch.overrides import TorchFunctionMode

    inside = [0]

    class Count(TorchFunctionMode):
        calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in _RELU_FUNCTIONS and inside[0] == 0:
                Count.calls += 1
            return func(*args, **(kwargs or {}))

    def enter(*_):
        inside[0] += 1

    def leave(*_):
        inside[0] -= 1

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    handles = [h for m in relus for h in (m.register_forward_pre_hook(enter),
                                          m.register_forward_hook(leave))]
    try:
        with torch.no_grad(), Count():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return Count.calls


def guided_backprop_map(model: nn.Module, x: torch.Tensor, target=None, *,
                        absolute: bool = True) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al., 2015) through ``captum.attr.GuidedBackprop``,
    as ``(n, H, W)``, reduced over channels like :func:`gradient_map`.

    Captum overrides the gradient of ``nn.ReLU`` *modules* only. A ReLU applied as a function
    (``F.relu``, ``torch.relu``, ``Tensor.relu``) would keep its plain gradient and give a map
    that is neither guided backpropagation nor the gradient, so such a model raises ValueError
    (checked with one forward pass). In-place ``nn.ReLU`` modules (the course backbone's) are
    switched to out-of-place for the call and restored afterwards.
    """
    from captum.attr import GuidedBackprop

    if not isinstance(absolute, bool):
        raise ValueError(f"absolute must be True or False, got {absolute!r}")
    with _EvalMode(model):
        t = _targets(model, x, target)
        n = _functional_relu_calls(model, x)
        if n:
            raise ValueError(f"model must apply every ReLU through an nn.ReLU module for guided "
                             f"backpropagation, but {type(model).__name__} applies {n} ReLU(s) as "
                             "a function (F.relu, torch.relu or Tensor.relu), whose gradient "
                             "Captum cannot override")
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]
        try:
            for m in relus:
                m.inplace = False
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
                g = GuidedBackprop(model).attribute(_leaf(x), target=t)
        finally:
            for m in relus:
                m.inplace = True
    g = g.abs() if absolute else g
    return g.sum(1).detach()


def _default_layer(model: nn.Module, layer: nn.Module | None) -> nn.Module:
    if layer is not None:
        return layer
    stages = getattr(model, "stages", None)
    if isinstance(stages, nn.ModuleList) and len(stages):
        return stages[-1]
    raise ValueError(f"layer must be given for a model without stages (e.g. a ResNetBackbone's "
                     f"model.stages[-1]), got None for {type(model).__name__}")


def gradcam_map(model: nn.Module, x: torch.Tensor, target=None, *,
                layer: nn.Module | None = None) -> torch.Tensor:
    """The book's Grad-CAM (:class:`attn_lesson.maps.GradCAM`) from ``layer`` (default: the
    last stage, ``model.stages[-1]``, as the chapters use it), upsampled to the input's size
    with :func:`attn_lesson.maps.upsample` (``anchor="stride"``, the book's placement rule)."""
    _check_inputs(model, x, target)
    with GradCAM(model, _default_layer(model, layer)) as cam:
        maps = cam(x, target)
    return upsample(maps, tuple(x.shape[-2:]))


def captum_gradcam_map(model: nn.Module, x: torch.Tensor, target=None, *,
                       layer: nn.Module | None = None) -> torch.Tensor:
    """Grad-CAM from ``captum.attr.LayerGradCam`` (``relu_attributions=True``, as in the
    Grad-CAM paper; Captum's default leaves the ReLU out), brought to the input's size with
    ``LayerAttribution.interpolate`` (bilinear, ``align_corners=False``: the book's
    ``anchor="centre"``, not its default ``"stride"``). For cross-checking :func:`gradcam_map`."""
    from captum.attr import LayerAttribution, LayerGradCam

    layer = _default_layer(model, layer)
    with _EvalMode(model):
        t = _targets(model, x, target)
        a = LayerGradCam(model, layer).attribute(_leaf(x), target=t, relu_attributions=True)
        a = LayerAttribution.interpolate(a, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return a[:, 0].detach()


# ----------------------------------------------------------------------------------------
# A whole test: the map of the trained model and of every randomisation step
# ----------------------------------------------------------------------------------------
SWEEP_MODES = ("cascade", "independent")


def sweep(model: nn.Module, fn, *, seed: int, mode: str = "cascade", order=None) -> dict:
    """``{"trained": fn(model), name: fn(model randomised at step name), ...}`` in the order of
    ``order`` (default :func:`randomisation_order`): the maps a sanity check compares.

    ``fn(model) -> maps``: any map of a model (e.g. ``lambda m: gradient_map(m, x)``, or one
    entry of :func:`attn_lesson.maps.module_maps`); every value it returns is kept as it is.
    ``mode``: ``"cascade"`` (:func:`cascade`, cumulative from the top) or ``"independent"``
    (:func:`independent`, one block at a time).
    """
    if mode not in SWEEP_MODES:
        raise ValueError(f"mode must be one of {SWEEP_MODES}, got {mode!r}")
    if not callable(fn):
        raise ValueError(f"fn must be a function model -> maps, got {type(fn).__name__}")
    steps = cascade if mode == "cascade" else independent
    out = {"trained": fn(model)}
    for name, m in steps(model, seed=seed, order=order):
        out[name] = fn(m)
    return out
