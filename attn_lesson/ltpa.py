"""Learn to Pay Attention (Jetley et al., 2018): a global feature guides attention over local ones.

For local features :math:`\\mathcal{L}^s = \\{\\boldsymbol{\\ell}^s_1, \\dots, \\boldsymbol{\\ell}^s_N\\}`
of one depth ``s`` (``N = HW`` positions) and a global feature :math:`\\mathbf{g}` from the end
of the network:

* compatibility: :math:`c_i = \\langle \\mathbf{u}, \\boldsymbol{\\ell}_i + \\mathbf{g}\\rangle`
  (``"pc"``, parametrised, :math:`\\mathbf{u}` learned) or
  :math:`c_i = \\langle \\boldsymbol{\\ell}_i, \\mathbf{g}\\rangle` (``"dp"``, dot product);
* attention: :math:`a_i = e^{c_i} / \\sum_j e^{c_j}` (softmax over positions);
* descriptor: :math:`\\mathbf{g}_a = \\sum_i a_i \\boldsymbol{\\ell}_i`.

The classifier sees only the descriptors :math:`\\mathbf{g}_a^s` (concatenated, or one
classifier per depth whose logits are averaged), never :math:`\\mathbf{g}` itself, so the
network has to route its evidence through the attention maps.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .channel import _check_int
from .models import ResNetBackbone

MODES = ("pc", "dp")
AGGREGATIONS = ("concat", "indep")


class LTPAttention(nn.Module):
    r"""One attention estimator: local features ``(B, C_l, H, W)`` and a global feature
    ``(B, C_g)`` -> descriptor :math:`\mathbf{g}_a` ``(B, C_g)`` and map ``(B, 1, H, W)``.

    When ``C_l != C_g`` the local features are first projected to ``C_g`` channels by a 1x1
    convolution without bias (``project``), as in a variant of the authors' code (their main VGG
    code instead projects the global feature down to each level's width); the
    projected features :math:`\hat{\boldsymbol{\ell}}_i` then replace :math:`\boldsymbol{\ell}_i`
    in both the compatibility and the descriptor (``forward`` applies :math:`\mathbf{P}` to
    vectors rather than to every position, which gives the same numbers at a fraction of the
    cost). In ``"pc"`` mode :math:`\mathbf{u}` is the
    weight of the 1x1 convolution ``u`` (no bias; a bias would cancel in the softmax).

    ``last_map`` (softmax weights, sum 1 over positions) and ``last_compat`` (the scores
    :math:`c_i`), both ``(B, 1, H, W)`` and detached, are kept for plotting.
    """

    def __init__(self, local_channels: int, global_channels: int, mode: str = "pc"):
        super().__init__()
        _check_int("local_channels", local_channels, 1)
        _check_int("global_channels", global_channels, 1)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (parametrised or dot-product "
                             f"compatibility), got {mode!r}")
        self.local_channels, self.global_channels, self.mode = local_channels, global_channels, mode
        self.project = (nn.Conv2d(local_channels, global_channels, 1, bias=False)
                        if local_channels != global_channels else nn.Identity())
        self.u = nn.Conv2d(global_channels, 1, 1, bias=False) if mode == "pc" else None
        self.last_map = self.last_compat = None

    def forward(self, local: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if local.dim() != 4 or local.shape[1] != self.local_channels:
            raise ValueError(f"mismatched feature sizes: local features must be (B, "
                             f"{self.local_channels}, H, W), got {tuple(local.shape)}")
        if g.dim() != 2 or g.shape[1] != self.global_channels or g.shape[0] != local.shape[0]:
            raise ValueError(f"mismatched feature sizes: the global feature must be (B, "
                             f"{self.global_channels}) with the local features' batch "
                             f"B={local.shape[0]}, got {tuple(g.shape)}")
        # The projection P is linear, so it is applied to vectors, never to the whole map:
        # <u, P l_i + g> = <P^T u, l_i> + <u, g>,  <P l_i, g> = <l_i, P^T g>,
        # sum_i a_i P l_i = P sum_i a_i l_i.  Same numbers, no (B, C_g, H, W) tensor.
        P = None if isinstance(self.project, nn.Identity) else self.project.weight.flatten(1)  # (C_g, C_l)
        if self.mode == "pc":
            u = self.u.weight.flatten(1)                           # (1, C_g)
            w = u if P is None else u @ P                          # (1, C_l): P^T u
            c = F.conv2d(local, w[:, :, None, None]) + (g @ u.t())[:, :, None, None]  # (B, 1, H, W)
        else:
            q = g if P is None else g @ P                          # (B, C_l): P^T g
            c = (local * q[:, :, None, None]).sum(1, keepdim=True)  # (B, 1, H, W)
        a = torch.softmax(c.flatten(2), dim=-1).view_as(c)         # softmax over H*W positions
        pooled = (a * local).sum((2, 3))                           # (B, C_l): sum_i a_i l_i
        g_a = pooled if P is None else pooled @ P.t()              # (B, C_g)
        self.last_map, self.last_compat = a.detach(), c.detach()
        return g_a, a

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class LTPANet(nn.Module):
    r"""The course backbone with Learn-to-Pay-Attention heads.

    The global feature is :math:`\mathbf{g} = \delta(\mathbf{W}_g\,\mathrm{GAP}(\mathbf{X}^{(S)}))`
    from the last stage ``S``; one :class:`LTPAttention` per entry of ``levels`` (stage numbers,
    1-based) attends over that stage's output. ``aggregation="concat"`` classifies
    :math:`[\mathbf{g}_a^{1}; \dots]` with one linear layer; ``"indep"`` gives every level its
    own linear classifier and averages their logits.

    ``forward(x)`` returns logits; ``attention_maps(x)`` returns ``{stage: (B, 1, H, W)}``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *,
                 widths: tuple[int, ...] = (16, 32, 64), depths: tuple[int, ...] = (1, 1, 1),
                 stem_stride: int = 2, levels: tuple[int, ...] = (1, 2, 3), mode: str = "pc",
                 aggregation: str = "concat", global_channels: int | None = None):
        super().__init__()
        self.backbone = ResNetBackbone(in_channels, num_classes, widths, depths, stem_stride)
        self.backbone.head = nn.Identity()   # the backbone's own classifier is not used
        levels = tuple(levels)
        n = len(self.backbone.widths)
        if not levels or len(set(levels)) != len(levels) or any(
                isinstance(l, bool) or not isinstance(l, int) or not 1 <= l <= n for l in levels):
            raise ValueError(f"levels must be distinct stage numbers in 1..{n}, got {levels!r}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        cg = self.backbone.widths[-1] if global_channels is None else global_channels
        _check_int("global_channels", cg, 1)
        self.levels, self.aggregation, self.mode = levels, aggregation, mode
        self.global_fc = nn.Sequential(nn.Linear(self.backbone.widths[-1], cg), nn.ReLU(inplace=True))
        self.attn = nn.ModuleList([LTPAttention(self.backbone.widths[l - 1], cg, mode) for l in levels])
        if aggregation == "concat":
            self.heads = nn.ModuleList([nn.Linear(cg * len(levels), num_classes)])
        else:
            self.heads = nn.ModuleList([nn.Linear(cg, num_classes) for _ in levels])

    def _run(self, x: torch.Tensor):
        feats = self.backbone.features(x)
        g = self.global_fc(torch.flatten(feats[f"stage{len(self.backbone.widths)}"].mean((2, 3), keepdim=True), 1))
        outs = [att(feats[f"stage{l}"], g) for l, att in zip(self.levels, self.attn)]
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self._run(x)
        if self.aggregation == "concat":
            return self.heads[0](torch.cat([ga for ga, _ in outs], 1))
        return torch.stack([h(ga) for h, (ga, _) in zip(self.heads, outs)]).mean(0)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{stage: softmax map (B, 1, H_s, W_s)}`` for every attended stage (eval mode)."""
        was_training = self.training
        self.eval()
        outs = self._run(x)
        self.train(was_training)
        return {l: a for l, (_, a) in zip(self.levels, outs)}

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}, aggregation={self.aggregation!r}"
