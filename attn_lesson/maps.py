"""Explaining and scoring maps: Grad-CAM and localisation scores.

* :class:`GradCAM` (Selvaraju et al., 2017) computes class-activation maps from a chosen layer
  with forward/backward hooks.
* :func:`localisation_scores` measures how well any map (an attention map, a Grad-CAM map)
  points at the object: the share of the map's mass inside the ground-truth box
  (:func:`box_energy`), the same share for a uniform map (:func:`box_area_fraction`, the chance
  level), and the pointing game (:func:`pointing_game`: is the map's maximum inside the box?).
* :func:`attention_rollout` (Abnar & Zuidema, 2020) multiplies a transformer's per-layer
  attention (plus the residual identity) into one token-to-token map; :func:`cls_rollout_map`
  gives the class token's row over the patches as ``(B, gh, gw)`` maps, to be scored like the rest.

Maps may have any resolution ``(h, w)``; :func:`upsample` brings them bilinearly to the image
size ``(H, W)`` before scoring, so that a 5x5 stage-3 map and a 40x40 Grad-CAM map are compared
on the same pixels. Where a map cell sits in the image matters (``anchor``): in the course
backbone every downsampling layer is a 3x3 (or 1x1) convolution with stride 2 and padding
``k // 2``, so feature cell ``i`` of a map with stride ``s = H / h`` is centred on input pixel
``s * i`` (``anchor="stride"``, the default). The generic image-resize convention
(``anchor="centre"``, ``F.interpolate(align_corners=False)``) would centre it on pixel
``s * i + (s - 1) / 2`` instead, i.e. 3.5 px too far right and down for a stage-3 map of a
40x40 image. Boxes are ``(x0, y0, x1, y1)`` in image pixels with ``x1``/``y1`` exclusive,
as :func:`attn_lesson.data.cluttered_digits` returns them.

:func:`receptive_field` measures how many input pixels one unit of a stage can see.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------
# Grad-CAM
# ----------------------------------------------------------------------------------------
class GradCAM:
    r"""Grad-CAM: :math:`L^c = \mathrm{ReLU}\big(\sum_k \alpha_k^c A^k\big)`,
    :math:`\alpha_k^c = \frac{1}{hw}\sum_{i,j} \partial y^c / \partial A^k_{ij}`.

    :math:`A\in\mathbb{R}^{K\times h\times w}` is the output of ``layer`` (a sub-module of
    ``model``) and :math:`y^c` the logit of class :math:`c` (before the softmax).

    Use as a context manager so that the hooks are removed afterwards::

        with GradCAM(model, model.stages[2]) as cam:
            maps = cam(images)            # (B, h, w), class = the model's prediction
            maps = cam(images, labels)    # class = the given labels

    The model is put in eval mode during the call and restored afterwards.
    """

    def __init__(self, model: nn.Module, layer: nn.Module):
        if not isinstance(layer, nn.Module) or not any(m is layer for m in model.modules()):
            raise ValueError("layer must be a sub-module of model (e.g. model.stages[-1]), got "
                             f"{type(layer).__name__}")
        self.model, self.layer = model, layer
        self._acts: torch.Tensor | None = None
        self._handle = layer.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output):
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise ValueError("GradCAM's layer must output a (B, K, h, w) feature map, got "
                             f"{type(output).__name__} of shape {getattr(output, 'shape', None)}")
        output.retain_grad()
        self._acts = output

    def __call__(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)   # so the hooked activation has a graph
                logits = self.model(x)
                if target is None:
                    target = logits.argmax(1)
                target = torch.as_tensor(target, device=logits.device).long().view(-1)
                if target.shape[0] != logits.shape[0] or target.min() < 0 or target.max() >= logits.shape[1]:
                    raise ValueError(f"target must hold one class in [0, {logits.shape[1]}) per "
                                     f"image ({logits.shape[0]}), got shape {tuple(target.shape)}")
                score = logits.gather(1, target.view(-1, 1)).sum()
                self.model.zero_grad(set_to_none=True)
                score.backward()
            acts, grads = self._acts, self._acts.grad
            alpha = grads.mean((2, 3), keepdim=True)               # (B, K, 1, 1)
            cam = F.relu((alpha * acts).sum(1))                    # (B, h, w)
        finally:
            self.model.zero_grad(set_to_none=True)
            self.model.train(was_training)
        return cam.detach()

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "GradCAM":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


# ----------------------------------------------------------------------------------------
# Upsampling maps to the image
# ----------------------------------------------------------------------------------------
ANCHORS = ("stride", "centre")


def _size(image_size) -> tuple[int, int]:
    if not isinstance(image_size, int) and (not hasattr(image_size, "__len__") or len(image_size) != 2):
        raise ValueError(f"image_size must be an int or a (height, width) pair, got {image_size!r}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    H, W = (int(v) for v in image_size)
    if H < 1 or W < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return H, W


def upsample(maps: torch.Tensor, image_size, *, anchor: str = "stride") -> torch.Tensor:
    """Bilinear upsampling of ``(B, h, w)`` maps to ``(B, H, W)``.

    ``anchor="stride"``: cell ``i`` is centred on pixel ``i * H / h`` (strided convolutions with
    padding ``k // 2``, as in the course backbone); values beyond the last cell are held
    constant. ``anchor="centre"``: cell ``i`` covers pixels ``[i * s, (i + 1) * s)`` and is
    centred in that block (``F.interpolate(..., align_corners=False)``; e.g. average pooling).
    """
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
    maps = torch.as_tensor(maps).float()
    if maps.dim() != 3:
        raise ValueError(f"maps must have shape (B, h, w), got {tuple(maps.shape)}")
    H, W = _size(image_size)
    B, h, w = maps.shape
    if (h, w) == (H, W):
        return maps
    if anchor == "centre":
        return F.interpolate(maps[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]

    def coords(n_out, n_in):  # pixel -> feature coordinate, normalised for align_corners=True
        u = torch.arange(n_out, dtype=torch.float32, device=maps.device) * (n_in / n_out)
        return 2 * u / (n_in - 1) - 1 if n_in > 1 else torch.zeros_like(u)

    gy, gx = torch.meshgrid(coords(H, h), coords(W, w), indexing="ij")
    grid = torch.stack([gx, gy], -1).expand(B, H, W, 2)
    return F.grid_sample(maps[:, None], grid, mode="bilinear", padding_mode="border",
                         align_corners=True)[:, 0]


# ----------------------------------------------------------------------------------------
# Localisation scores
# ----------------------------------------------------------------------------------------
def _prepare(maps, boxes, image_size, anchor="stride") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    maps = torch.as_tensor(maps).detach().float().cpu()
    if maps.dim() == 4:
        if maps.shape[1] != 1:
            raise ValueError(f"4-D maps must have one channel, (B, 1, h, w); got {tuple(maps.shape)}")
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise ValueError(f"maps must have shape (B, h, w) or (B, 1, h, w), got {tuple(maps.shape)}")
    boxes = torch.as_tensor(boxes).detach().float().cpu()
    if boxes.dim() != 2 or boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"boxes must have shape (B, 4) = ({maps.shape[0]}, 4) as (x0, y0, x1, y1), "
                         f"got {tuple(boxes.shape)}")
    H, W = _size(image_size)
    if (maps < 0).any():
        raise ValueError("maps must be non-negative (a ReLU'd Grad-CAM or a sigmoid/softmax map); "
                         f"the smallest value is {maps.min().item():.3g}")
    maps = upsample(maps, (H, W), anchor=anchor).clamp_min(0)
    ys = torch.arange(H, dtype=torch.float32).view(1, H, 1) + 0.5   # pixel centres
    xs = torch.arange(W, dtype=torch.float32).view(1, 1, W) + 0.5
    x0, y0, x1, y1 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)       # (B, H, W)
    return maps, inside, boxes


def box_energy(maps, boxes, image_size, *, anchor: str = "stride") -> torch.Tensor:
    r"""Share of each map's mass inside its box, per image: :math:`\sum_{p\in\text{box}} m_p /
    \sum_p m_p` (after upsampling to ``image_size``). 1 = all attention on the object.
    A map that is zero everywhere scores the chance level (as if uniform). ``anchor``: see
    :func:`upsample`."""
    maps, inside, _ = _prepare(maps, boxes, image_size, anchor)
    total = maps.sum((1, 2))
    energy = (maps * inside).sum((1, 2)) / total.clamp_min(1e-12)
    chance = inside.float().mean((1, 2))
    return torch.where(total > 0, energy, chance)


def box_area_fraction(boxes, image_size) -> torch.Tensor:
    """The box's share of the image, per image: the :func:`box_energy` of a uniform map."""
    boxes = torch.as_tensor(boxes).float()
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4), got {tuple(boxes.shape)}")
    return box_energy(torch.ones(boxes.shape[0], 1, 1), boxes, image_size)


def pointing_game(maps, boxes, image_size, *, tolerance: float = 0.0,
                  anchor: str = "stride") -> torch.Tensor:
    """Per image, 1.0 when the map's maximum (after upsampling) lies inside the box grown by
    ``tolerance`` pixels on every side, else 0.0. Ties: the first maximum in row-major order."""
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance!r}")
    maps, _, boxes = _prepare(maps, boxes, image_size, anchor)
    B, H, W = maps.shape
    idx = maps.flatten(1).argmax(1)
    py, px = (idx // W).float() + 0.5, (idx % W).float() + 0.5
    x0, y0, x1, y1 = boxes.unbind(1)
    hit = ((px >= x0 - tolerance) & (px < x1 + tolerance) &
           (py >= y0 - tolerance) & (py < y1 + tolerance))
    return hit.float()


def localisation_scores(maps, boxes, image_size, *, tolerance: float = 0.0,
                        anchor: str = "stride") -> dict:
    """Means over the batch: ``energy`` (:func:`box_energy`), ``chance`` (the same for a
    uniform map), ``energy_gain`` (``energy / chance``: 1 = no better than uniform) and
    ``pointing`` (:func:`pointing_game` hit rate)."""
    e = box_energy(maps, boxes, image_size, anchor=anchor)
    c = box_area_fraction(boxes, image_size)
    p = pointing_game(maps, boxes, image_size, tolerance=tolerance, anchor=anchor)
    return {"energy": e.mean().item(), "chance": c.mean().item(),
            "energy_gain": (e / c.clamp_min(1e-12)).mean().item(), "pointing": p.mean().item()}


def receptive_field(model: nn.Module, input_shape, stage: str) -> tuple[int, int]:
    """Height and width, in input pixels, of the receptive field of the centre unit of
    ``model.features(x)[stage]`` (e.g. ``"stage3"`` of :class:`ResNetBackbone`), measured as
    the extent of the input pixels whose gradient on that unit is non-zero.

    ``input_shape`` is ``(C, H, W)``; the input is random, and the model is put in eval mode
    for the measurement and restored afterwards, so the result is the theoretical receptive
    field of the convolutions (the *effective* one, where most of the gradient lies, is smaller).
    """
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)!r}")
    if not callable(getattr(model, "features", None)):
        raise ValueError(f"model must have a features(x) method returning named maps (as "
                         f"ResNetBackbone has), got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.rand(1, *input_shape, device=param.device if param is not None else None,
                       requires_grad=True)
        feats = model.features(x)
        if stage not in feats:
            raise ValueError(f"stage must be one of {sorted(feats)}, got {stage!r}")
        f = feats[stage]
        f[0, :, f.shape[-2] // 2, f.shape[-1] // 2].sum().backward()
    finally:
        model.train(was_training)
    hit = x.grad[0].abs().sum(0) > 0
    rows, cols = hit.any(1).nonzero().flatten(), hit.any(0).nonzero().flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


# ----------------------------------------------------------------------------------------
# Attention rollout (Abnar & Zuidema 2020)
# ----------------------------------------------------------------------------------------
HEAD_FUSIONS = ("mean", "max", "min")


def attention_rollout(attentions, head_fusion: str = "mean", add_residual: bool = True) -> torch.Tensor:
    r"""Joint attention of a transformer's output tokens on its input tokens, ``(B, T, T)``.

    ``attentions``: the per-layer weights, first layer first, each ``(B, h, T, T)`` (rows over
    keys), as :meth:`attn_lesson.vit.ViT.attention_maps` returns them. Per layer, the heads are
    fused (``"mean"``: the ViT authors' choice; ``"max"``/``"min"``: heuristics of popular ports)
    to :math:`A_l`, the residual connection is added and every row renormalised,
    :math:`A'_l = \mathrm{rownorm}(A_l + I)` (:math:`= \tfrac12 A_l + \tfrac12 I` when the rows of
    :math:`A_l` sum to 1), and the layers are multiplied with the later layer on the left:
    :math:`J = A'_L \cdots A'_2 A'_1`, as in the authors' code. ``add_residual=False`` gives
    :math:`A'_l = \mathrm{rownorm}(A_l)` (a no-op for ``"mean"``). Every row of ``J`` sums to 1.
    (Normalising with a row sum that is not kept as a column, as one popular port does, divides
    column ``j`` by row ``j``'s sum instead; the rows then no longer sum to 1 after max fusion.)
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if not isinstance(add_residual, bool):
        raise ValueError(f"add_residual must be True or False, got {add_residual!r}")
    if isinstance(attentions, torch.Tensor):
        attentions = list(attentions) if attentions.dim() == 5 else [attentions]
    if not isinstance(attentions, (list, tuple)) or not attentions:
        raise ValueError("attentions must be a non-empty list of (B, h, T, T) tensors, one per layer, "
                         f"got {type(attentions).__name__}")
    shape = getattr(attentions[0], "shape", None)
    for i, a in enumerate(attentions):
        if (not isinstance(a, torch.Tensor) or a.dim() != 4 or a.shape[-1] != a.shape[-2]
                or a.shape != shape):
            got = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise ValueError(f"attentions[{i}] must be a (B, h, T, T) tensor shaped like layer 0 "
                             f"{tuple(shape) if shape is not None else ''}, got {got}")
        if (a < 0).any():
            raise ValueError(f"attentions[{i}] must be non-negative (softmax weights)")
    joint = None
    for a in attentions:
        a = a.detach().float()
        a = {"mean": a.mean(1), "max": a.amax(1), "min": a.amin(1)}[head_fusion]   # (B, T, T)
        if add_residual:
            a = a + torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        joint = a if joint is None else a @ joint
    return joint


def cls_rollout_map(model_or_attentions, grid=None, *, head_fusion: str = "mean",
                    add_residual: bool = True) -> torch.Tensor:
    """The class token's row of :func:`attention_rollout` over the patch tokens, as ``(B, gh, gw)``
    maps: how much the class token's output draws on each patch.

    Pass a :class:`attn_lesson.vit.ViT` after a forward pass with the explicit backend (its
    ``attention_maps()`` and ``grid`` are used), or a list of ``(B, h, T, T)`` weights and the
    token ``grid = (gh, gw)`` with ``T = gh * gw + 1`` (class token first). Score the maps with
    :func:`localisation_scores` using the model's ``anchor`` (``"centre"`` for a patch stem, whose
    cells are ``p x p`` blocks; ``"stride"`` for the convolutional stem).
    """
    if hasattr(model_or_attentions, "attention_maps"):
        attentions = model_or_attentions.attention_maps()
        grid = model_or_attentions.grid if grid is None else grid
    else:
        attentions = model_or_attentions
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in grid)):
        raise ValueError(f"grid must be the token grid (gh, gw) as two positive ints, got {grid!r}")
    joint = attention_rollout(attentions, head_fusion, add_residual)
    if joint.shape[-1] != grid[0] * grid[1] + 1:
        raise ValueError(f"grid {tuple(grid)} gives {grid[0] * grid[1]} patches + 1 class token, but "
                         f"the attentions have T = {joint.shape[-1]} tokens")
    return joint[:, 0, 1:].reshape(-1, grid[0], grid[1])


# ----------------------------------------------------------------------------------------
# Every module's own maps, by family (chapter 20's zoo)
# ----------------------------------------------------------------------------------------
def query_cells(boxes, image_size, grid) -> torch.Tensor:
    """Per image, the flat index ``i * w + j`` of the ``(h, w)`` feature cell nearest the centre
    of its box, with cell ``(i, j)`` centred on pixel ``(s_y i, s_x j)`` (``anchor="stride"``,
    ``s = H / h``): the query whose attention row a pairwise module's map shows. ``boxes=None``
    takes the image centre for every image (then ``boxes`` gives only the batch size: pass
    ``(B, 4)`` or use the centre explicitly)."""
    H, W = _size(image_size)
    h, w = _size(grid)
    boxes = torch.as_tensor(boxes).detach().float().cpu()
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4) as (x0, y0, x1, y1), got {tuple(boxes.shape)}")
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 - 0.5            # box centre in pixel-index coordinates
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 - 0.5
    j = torch.round(cx / (W / w)).long().clamp(0, w - 1)
    i = torch.round(cy / (H / h)).long().clamp(0, h - 1)
    return i * w + j


def _rows(attention: torch.Tensor, cells: torch.Tensor, grid) -> torch.Tensor:
    """Row ``cells[b]`` of each ``(B, N, N)`` attention matrix, as ``(B, h, w)`` maps."""
    b = torch.arange(attention.shape[0])
    return attention.detach().float().cpu()[b, cells].reshape(-1, *grid)


class _PassRecorder:
    """Records the dense attention of every pass of a criss-cross module (its ``forward`` calls
    ``attend`` once per recurrence and keeps only the last pass in ``last_attention``)."""

    def __init__(self, module):
        self.module, self.passes = module, []

    def __enter__(self):
        original = self.module.attend

        def attend(x):
            out = original(x)
            self.passes.append(self.module.dense_attention())
            return out
        self.module.attend = attend
        return self

    def __exit__(self, *exc):
        del self.module.attend                  # back to the class's method


def module_maps(model: nn.Module, x: torch.Tensor, boxes=None) -> dict[str, tuple[torch.Tensor, str]]:
    """Every map a model's attention modules compute for the batch ``x``, from one forward pass
    in eval mode: ``{name: (maps (B, h, w), anchor)}``, each non-negative and at its own
    resolution (score it with :func:`localisation_scores` and its ``anchor``).

    * :class:`~attn_lesson.models.ResNetBackbone`: each block's spatial gate (spatial gate,
      CBAM: ``"gate, stage i"``); each stage-transition module: BAM (``"BAM i (mixed)"``, the
      channel mean of its map, and ``"BAM i (spatial)"``, the sigmoid of its spatial branch),
      SAGAN/PAM and non-local (``"attention row, after stage i"``), criss-cross
      (``"criss-cross rows, after stage i"``: the product of its passes' dense attention, later
      pass on the left, so that after two passes the row reaches every position), global
      context (``"context mask, after stage i"``). A pairwise module's map is the attention row
      of the query cell nearest the centre of each image's box (:func:`query_cells`; the image
      centre when ``boxes`` is None).
    * :class:`~attn_lesson.ltpa.LTPANet`: ``"LTPA, stage l"`` (the softmax over positions).
    * :class:`~attn_lesson.residual.ResidualAttentionNet`: ``"mask, module k"`` (channel mean
      of soft mask ``M``, modules in forward order).
    * :class:`~attn_lesson.vit.ViT`: ``"rollout"`` (:func:`cls_rollout_map`; the forward runs
      with the explicit backend, the model's backend is restored afterwards).

    A model without such modules (the baseline, SE, ECA, SK: channel weights only) gives ``{}``.
    """
    from .ltpa import LTPANet
    from .models import ResNetBackbone
    from .residual import ResidualAttentionNet
    from .selfattn import CrissCrossAttention2d, GlobalContext2d, NonLocal2d, SelfAttention2d
    from .spatial import BAM
    from .vit import ViT

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a batch of images (B, C, H, W), got {got}")
    image_size = tuple(x.shape[-2:])
    if boxes is None:
        H, W = image_size
        boxes = torch.tensor([[0.0, 0.0, W, H]]).expand(x.shape[0], 4)
    boxes = torch.as_tensor(boxes).detach().float().cpu()
    if boxes.shape != (x.shape[0], 4):
        raise ValueError(f"boxes must have shape (B, 4) = ({x.shape[0]}, 4), got {tuple(boxes.shape)}")
    was_training = model.training
    model.eval()
    out: dict[str, tuple[torch.Tensor, str]] = {}
    try:
        with torch.no_grad():
            if isinstance(model, ViT):
                backends = [b.attn.backend for b in model.blocks]
                model.set_backend("explicit")
                try:
                    model(x)
                    out["rollout"] = (cls_rollout_map(model), model.anchor)
                finally:
                    for b, kind in zip(model.blocks, backends):
                        b.attn.backend = kind
            elif isinstance(model, LTPANet):
                for level, m in model.attention_maps(x).items():
                    out[f"LTPA, stage {level}"] = (m[:, 0].float().cpu(), "stride")
            elif isinstance(model, ResidualAttentionNet):
                model(x)
                for k, m in enumerate(model.attention_modules(), start=1):
                    out[f"mask, module {k}"] = (m.last_mask.mean(1).float().cpu(), "stride")
            elif isinstance(model, ResNetBackbone):
                sizes, recorders = {}, []
                hooks = [t.register_forward_hook(
                    lambda mod, inp, o, i=i: sizes.__setitem__(i, tuple(o.shape[-2:])))
                    for i, t in enumerate(model.transitions)]
                for t in model.transitions:
                    if isinstance(t, CrissCrossAttention2d):
                        recorders.append(_PassRecorder(t).__enter__())
                try:
                    model(x)
                finally:
                    for h in hooks:
                        h.remove()
                    for r in recorders:
                        r.__exit__()
                for i, stage in enumerate(model.stages, start=1):
                    gates = [b.attention.last_map for b in stage if getattr(b.attention, "last_map", None) is not None]
                    for j, g in enumerate(gates):
                        out[f"gate, stage {i}" + (f", block {j + 1}" if len(gates) > 1 else "")] = (
                            g[:, 0].float().cpu(), "stride")
                    t = model.transitions[i - 1]
                    if isinstance(t, BAM):
                        out[f"BAM {i} (mixed)"] = (t.last_map[:, 0].float().cpu(), "stride")
                        out[f"BAM {i} (spatial)"] = (t.last_spatial[:, 0].float().cpu(), "stride")
                    elif isinstance(t, (SelfAttention2d, NonLocal2d)) and t.last_attention is not None:
                        grid = sizes[i - 1]
                        cells = query_cells(boxes, image_size, grid)
                        out[f"attention row, after stage {i}"] = (_rows(t.last_attention, cells, grid), "stride")
                    elif isinstance(t, CrissCrossAttention2d):
                        rec = next(r for r in recorders if r.module is t)
                        joint = rec.passes[0]
                        for a in rec.passes[1:]:
                            joint = a @ joint
                        grid = sizes[i - 1]
                        cells = query_cells(boxes, image_size, grid)
                        out[f"criss-cross rows, after stage {i}"] = (_rows(joint, cells, grid), "stride")
                    elif isinstance(t, GlobalContext2d) and t.last_attention is not None:
                        out[f"context mask, after stage {i}"] = (
                            t.last_attention.float().cpu().reshape(-1, *sizes[i - 1]), "stride")
            else:
                raise ValueError(f"model must be a ResNetBackbone, LTPANet, ResidualAttentionNet or "
                                 f"ViT, got {type(model).__name__}")
    finally:
        model.train(was_training)
    return out


def map_unit(model: nn.Module, name: str) -> str:
    """The unit of :func:`attn_lesson.sanity.randomisation_order` that the map ``name`` of
    :func:`module_maps` first depends on, from the top: every unit listed before it can be
    re-initialised without changing the map (it is computed below them). A block's gate
    ``"gate, stage i[, block j]"`` -> ``"stages.{i-1}.{j-1}"``; a stage-transition module's maps
    (BAM, attention rows, criss-cross rows, context mask, ``"... after stage i"``) ->
    ``"transitions.{i-1}"``; LTPA's maps -> ``"attn"`` (its estimators; in ``"pc"`` mode the
    global feature adds the same number at every position and cancels in the softmax);
    ``"mask, module k"`` -> the attention modules of the stage that holds module ``k``;
    ``"rollout"`` -> the top encoder block."""
    import re

    from .ltpa import LTPANet
    from .residual import ResidualAttentionNet
    from .vit import ViT

    m = re.fullmatch(r"gate, stage (\d+)(?:, block (\d+))?", name)
    if m:
        return f"stages.{int(m[1]) - 1}.{int(m[2] or 1) - 1}"
    m = re.fullmatch(r"BAM (\d+) \((?:mixed|spatial)\)|.*, after stage (\d+)", name)
    if m:
        return f"transitions.{int(m[1] or m[2]) - 1}"
    if isinstance(model, LTPANet) and re.fullmatch(r"LTPA, stage \d+", name):
        return "attn"
    m = re.fullmatch(r"mask, module (\d+)", name)
    if isinstance(model, ResidualAttentionNet) and m:
        k, seen = int(m[1]), 0
        for i, seq in enumerate(model.attn):
            seen += len(seq)
            if k <= seen:
                return f"attn.{i}"
    if isinstance(model, ViT) and name == "rollout":
        return f"blocks.{len(model.blocks) - 1}"
    raise ValueError(f"name must be a map that module_maps gives for {type(model).__name__}, "
                     f"got {name!r}")
