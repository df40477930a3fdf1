"""Self-attention in CNNs: the SAGAN layer, the non-local block, DANet's position and channel
attention, CCNet's criss-cross attention and GCNet's global context block.

Shapes follow the book's notation: a feature map ``x`` of shape ``(B, C, H, W)`` has
``N = H * W`` positions. Every module here but one is a residual *addition* that starts as the
identity (a zero-initialised ``gamma``, a zero-initialised batch-norm scale in the non-local
block, a zero-initialised last convolution in the global context block), so inserting one into a
trained network changes nothing until it learns. The exception is the global context block with
``fusion="scale"``, which starts by halving the features.

- :class:`SelfAttention2d` (SAGAN, Zhang et al. 2019): ``Q = W_q x``, ``K = W_k x`` with
  ``C / reduction`` channels, ``V = W_v x`` with ``C``; ``A = softmax(Q^T K)`` over the keys (one
  row per query, ``(B, N, N)``); ``y = gamma * (V A^T) + x``. Values with ``C`` channels and no
  output projection are the form of DANet's official PAM and of popular SAGAN ports; the ICML
  2019 SAGAN paper gives the values ``C / 8`` channels and projects back to ``C`` with a 1x1
  convolution. DANet's position attention module (PAM) is this layer with ``reduction=8``;
  :func:`pam` builds it.
- :class:`NonLocal2d` (Wang et al. 2018): ``y_i = x_i + W_z(1/C(x) sum_j f(x_i, x_j) g(x_j))``
  with the four pairwise functions ``"gaussian"``, ``"embedded"`` (both softmax-normalised),
  ``"dot"`` and ``"concat"`` (both divided by the number of keys).
- :class:`ChannelAttention2d` (DANet's CAM, Fu et al. 2019): the ``C x C`` Gram matrix
  ``E = X X^T`` of the flattened map, a softmax per row, ``y = beta * (S X) + x``. ``mode="paper"``
  takes the softmax of ``E``; ``mode="official"`` that of ``max(E) - E`` per row, as the authors'
  code does, which equals ``softmax(-E)``.
- :class:`CrissCrossAttention2d` (CCNet, Huang et al. 2019): each position attends only to the
  ``H + W - 1`` positions of its own row and column, with one softmax over all of them;
  ``recurrence=2`` applies the same module twice, so every position reaches every other.
  :func:`criss_cross_mask` gives the row-and-column mask under which full self-attention is the
  same layer.
- :class:`GlobalContext2d` (GCNet, Cao et al. 2019): one query-independent attention map
  ``softmax(W_k x)`` over the ``N`` positions pools a context vector, which a bottleneck
  transform (1x1 conv, LayerNorm, ReLU, 1x1 conv) turns into a per-channel term that is added
  to ``x`` (``fusion="add"``) or scales it through a sigmoid (``fusion="scale"``).

After a forward pass each module keeps its attention matrix in ``last_attention`` (detached).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

PAIRWISE = ("gaussian", "embedded", "dot", "concat")
CAM_MODES = ("paper", "official")
GC_FUSIONS = ("add", "scale")
GC_POOLINGS = ("att", "avg")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _divisible(channels: int, reduction: int) -> None:
    _positive_int("channels", channels)
    _positive_int("reduction", reduction)
    if channels % reduction:
        raise ValueError(f"channels ({channels}) must be divisible by reduction ({reduction}); "
                         f"choose a reduction among {[r for r in range(1, channels + 1) if channels % r == 0]}")


def _check_input(x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"expected a feature map of shape (B, {channels}, H, W), got {tuple(x.shape)}")


class SelfAttention2d(nn.Module):
    """SAGAN's self-attention layer: ``y = gamma * (V A^T) + x``, ``A = softmax(Q^T K)`` over keys.

    Parameters
    ----------
    channels : ``C``, the channels of the input (and output).
    reduction : queries and keys have ``C / reduction`` channels (8 in SAGAN and DANet's PAM).
    sdpa : compute ``V A^T`` with ``F.scaled_dot_product_attention`` (``scale=1``: SAGAN does not
        divide the logits by ``sqrt(d)``) instead of the explicit softmax; then ``last_attention``
        is not stored, since the fused kernels never form ``A``.

    ``gamma`` starts at 0, so the layer starts as the identity. ``last_attention`` holds ``A``
    ``(B, N, N)`` after a forward pass without ``sdpa``.
    """

    def __init__(self, channels: int, reduction: int = 8, *, sdpa: bool = False):
        super().__init__()
        _divisible(channels, reduction)
        self.channels, self.reduction, self.sdpa = channels, reduction, bool(sdpa)
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.last_attention: torch.Tensor | None = None

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output ``o = V A^T`` as a ``(B, C, H, W)`` map (before ``gamma``)."""
        _check_input(x, self.channels)
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)          # (B, N, C/r): one row per query
        k = self.key(x).flatten(2).transpose(1, 2)            # (B, N, C/r)
        v = self.value(x).flatten(2).transpose(1, 2)          # (B, N, C)
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v, scale=1.0)
            self.last_attention = None
        else:
            a = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # (B, N, N), rows sum to 1
            self.last_attention = a.detach()
            o = a @ v                                         # (B, N, C)
        return o.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self.attend(x) + x

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, sdpa={self.sdpa}"


class NonLocal2d(nn.Module):
    """The non-local block: ``y = x + BN(W_z z)``, ``z_i = (1/C(x)) sum_j f(x_i, x_j) g(x_j)``.

    Parameters
    ----------
    channels : ``C`` of the input (and output).
    pairwise : ``"gaussian"`` (``f = exp(x_i . x_j)``), ``"embedded"`` (``exp(theta_i . phi_j)``),
        both normalised by a softmax over ``j``; ``"dot"`` (``theta_i . phi_j``) and ``"concat"``
        (``ReLU(w^T [theta_i, phi_j])``), both divided by the number of keys.
    reduction : ``theta``, ``phi`` and ``g`` have ``C / reduction`` channels (2 in the paper).
    subsample : max-pool ``phi`` and ``g`` (and the keys of the Gaussian) by 2 in space, which
        divides the number of keys, and the cost of the ``N x N`` matrix, by 4.

    ``W_z`` is a 1x1 convolution followed by batch norm whose scale starts at 0, so the block
    starts as the identity. ``last_attention`` holds the normalised ``f`` ``(B, N, N_keys)``.
    """

    def __init__(self, channels: int, pairwise: str = "embedded", reduction: int = 2, *,
                 subsample: bool = False):
        super().__init__()
        _divisible(channels, reduction)
        if pairwise not in PAIRWISE:
            raise ValueError(f"pairwise must be one of {PAIRWISE}, got {pairwise!r}")
        inner = channels // reduction
        self.channels, self.pairwise, self.inner = channels, pairwise, inner
        self.subsample = bool(subsample)
        self.g = nn.Conv2d(channels, inner, 1)
        if pairwise != "gaussian":
            self.theta = nn.Conv2d(channels, inner, 1)
            self.phi = nn.Conv2d(channels, inner, 1)
        if pairwise == "concat":
            self.w_f = nn.Conv2d(2 * inner, 1, 1, bias=False)   # w^T [theta_i, phi_j]
        self.w_z = nn.Conv2d(inner, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)
        self.last_attention: torch.Tensor | None = None

    def _keys(self, t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(t, 2) if self.subsample else t

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised pairwise matrix ``f / C(x)``, ``(B, N, N_keys)``."""
        _check_input(x, self.channels)
        if self.pairwise == "gaussian":
            q, k = x.flatten(2).transpose(1, 2), self._keys(x).flatten(2)
            return torch.softmax(q @ k, dim=-1)
        q = self.theta(x).flatten(2).transpose(1, 2)             # (B, N, C')
        k = self._keys(self.phi(x)).flatten(2)                    # (B, C', M)
        if self.pairwise == "embedded":
            return torch.softmax(q @ k, dim=-1)
        if self.pairwise == "dot":
            return (q @ k) / k.shape[-1]
        # concat: w^T [theta_i, phi_j] = w_theta . theta_i + w_phi . phi_j, then ReLU
        w = self.w_f.weight.view(2, self.inner)
        f = F.relu((q @ w[0])[:, :, None] + (w[1] @ k)[:, None, :])
        return f / k.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.affinity(x)                                       # checks the input's shape
        b, _, h, w = x.shape
        self.last_attention = a.detach()
        v = self._keys(self.g(x)).flatten(2).transpose(1, 2)      # (B, M, C')
        z = (a @ v).transpose(1, 2).reshape(b, self.inner, h, w)
        return x + self.bn(self.w_z(z))

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, pairwise={self.pairwise!r}, inner={self.inner}, "
                f"subsample={self.subsample}")


class UniformNonLocal2d(NonLocal2d):
    """A non-attentive control for the non-local block: the affinity is ``1 / N_keys`` for every
    pair, so every position receives the same global mean of ``g`` (no similarity, no
    query-dependence); ``W_z``, batch norm and the residual are those of :class:`NonLocal2d`.

    It answers "does the block help because it *attends*, or only because it mixes the whole
    map?". ``theta`` and ``phi`` are removed after the parent builds them (nothing uses them). ``last_attention``
    holds the constant matrix, ``(B, N, N_keys)``.
    """

    def __init__(self, channels: int, reduction: int = 2, *, subsample: bool = False):
        super().__init__(channels, "dot", reduction, subsample=subsample)
        del self.theta, self.phi
        self.pairwise = "uniform"

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels)
        b, _, h, w = x.shape
        m = (h // 2) * (w // 2) if self.subsample else h * w
        return x.new_full((b, h * w, m), 1.0 / m)


class ChannelAttention2d(nn.Module):
    """DANet's channel attention module (CAM): ``y = beta * (S X) + x``, no convolutions.

    ``X`` is the input flattened to ``(B, C, N)``, ``E = X X^T`` ``(B, C, C)``. ``mode="paper"``:
    ``S = softmax(E)`` per row (similar channels get the most weight); ``mode="official"``:
    ``S = softmax(max(E) - E)`` per row, as in the authors' code, which equals ``softmax(-E)``
    (the least similar channels get the most weight). ``beta`` starts at 0. ``last_attention``
    holds ``S``.
    """

    def __init__(self, channels: int, mode: str = "paper"):
        super().__init__()
        _positive_int("channels", channels)
        if mode not in CAM_MODES:
            raise ValueError(f"mode must be one of {CAM_MODES}, got {mode!r}")
        self.channels, self.mode = channels, mode
        self.beta = nn.Parameter(torch.zeros(1))
        self.last_attention: torch.Tensor | None = None

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels)
        flat = x.flatten(2)                                        # (B, C, N)
        e = flat @ flat.transpose(1, 2)                            # (B, C, C) Gram matrix
        if self.mode == "official":
            e = e.amax(dim=-1, keepdim=True) - e
        s = torch.softmax(e, dim=-1)
        self.last_attention = s.detach()
        return (s @ flat).view_as(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.beta * self.attend(x) + x

    def extra_repr(self) -> str:
        return f"channels={self.channels}, mode={self.mode!r}"


def criss_cross_mask(h: int, w: int) -> torch.Tensor:
    """The ``(N, N)`` boolean mask, ``N = h * w``, that is True where position ``q`` lies in the
    row or the column of position ``p`` (positions numbered row by row, ``p = i * w + j``).

    Each row has ``h + w - 1`` True entries: the centre ``p`` itself is in both its row and its
    column but counted once. Full softmax attention with the logits outside this mask set to
    ``-inf`` is exactly :class:`CrissCrossAttention2d` (one pass).
    """
    _positive_int("h", h)
    _positive_int("w", w)
    rows = torch.arange(h).repeat_interleave(w)                # row index of each position
    cols = torch.arange(w).repeat(h)                           # column index of each position
    return (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])


class CrissCrossAttention2d(nn.Module):
    """CCNet's criss-cross attention: every position attends to its own row and column.

    For the position ``u = (i, j)`` with query ``q_u`` (``Q = W_q x``, ``C / reduction``
    channels), keys ``K = W_k x`` (``C / reduction``) and values ``V = W_v x`` (``C``):

    - column logits ``e^H_{u,i'} = q_u . k_{(i',j)}`` for the ``H`` rows ``i'``, with
      ``e^H_{u,i} = -inf`` (the centre is already in the row part);
    - row logits ``e^W_{u,j'} = q_u . k_{(i,j')}`` for the ``W`` columns ``j'``;
    - ``A_u = softmax([e^H_u, e^W_u])``: ONE softmax over the ``H + W`` entries, of which
      ``H + W - 1`` are finite;
    - ``y_u = gamma * (sum_{i'} A^H_{u,i'} v_{(i',j)} + sum_{j'} A^W_{u,j'} v_{(i,j')}) + x_u``.

    This is full self-attention restricted by :func:`criss_cross_mask`. ``recurrence`` ``R``
    applies the same module (the same weights) ``R`` times inside ``forward``; after two passes
    every output position depends on every input position (CCNet's RCCA uses ``R = 2``).

    Parameters
    ----------
    channels : ``C`` of the input (and output).
    reduction : queries and keys have ``C / reduction`` channels (8 in CCNet).
    recurrence : ``R``, the number of passes through the module (1 or 2 in CCNet).

    ``gamma`` starts at 0, so the module starts as the identity. ``last_attention`` holds the
    weights ``A`` of the last pass, ``(B, H, W, H + W)``: ``[..., :H]`` the column part (entry
    ``i'`` for row ``i'``; exactly 0 at ``i' = i``), ``[..., H:]`` the row part (entry ``j'``
    for column ``j'``); each ``[b, i, j]`` sums to 1. :meth:`dense_attention` scatters it into
    the ``(B, N, N)`` matrix of full self-attention.
    """

    def __init__(self, channels: int, reduction: int = 8, recurrence: int = 1):
        super().__init__()
        _divisible(channels, reduction)
        self.channels, self.reduction = channels, reduction
        self.recurrence = _positive_int("recurrence", recurrence)
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.last_attention: torch.Tensor | None = None

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """One pass's aggregated values ``out_H + out_W`` as a ``(B, C, H, W)`` map (before ``gamma``)."""
        _check_input(x, self.channels)
        h = x.shape[2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        # index names: b batch, c channel, (i, j) the query position, r another row, s another column
        e_col = torch.einsum("bcij,bcrj->bijr", q, k)              # (B, H, W, H): keys in u's column
        e_row = torch.einsum("bcij,bcis->bijs", q, k)              # (B, H, W, W): keys in u's row
        own_row = torch.eye(h, dtype=torch.bool, device=x.device)[:, None, :]   # (H, 1, H): r == i
        e_col = e_col.masked_fill(own_row, float("-inf"))          # the centre counts once, in the row
        a = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)   # (B, H, W, H + W)
        self.last_attention = a.detach()
        out_col = torch.einsum("bijr,bcrj->bcij", a[..., :h], v)
        out_row = torch.einsum("bijs,bcis->bcij", a[..., h:], v)
        return out_col + out_row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):                           # the same weights every pass
            x = self.gamma * self.attend(x) + x
        return x

    def dense_attention(self) -> torch.Tensor:
        """``last_attention`` scattered into the ``(B, N, N)`` matrix of full self-attention:
        row ``p = i * W + j`` holds ``A_u`` at the positions of ``u``'s column and row and 0
        elsewhere (rows sum to 1; zero outside :func:`criss_cross_mask`)."""
        if self.last_attention is None:
            raise RuntimeError("dense_attention() needs a forward pass first (last_attention is None)")
        a = self.last_attention
        b, h, w, _ = a.shape
        i = torch.arange(h, device=a.device)[:, None, None]
        j = torch.arange(w, device=a.device)[None, :, None]
        r = torch.arange(h, device=a.device)[None, None, :]
        s = torch.arange(w, device=a.device)[None, None, :]
        col_targets = (r * w + j).expand(h, w, h)                 # key (r, j) for query (i, j)
        row_targets = (i * w + s).expand(h, w, w)                 # key (i, s) for query (i, j)
        targets = torch.cat([col_targets, row_targets], dim=-1).reshape(1, h * w, h + w)
        dense = a.new_zeros(b, h * w, h * w)
        # the centre appears in both parts; its column entry is 0, so adding them is exact
        return dense.scatter_add_(2, targets.expand(b, -1, -1), a.reshape(b, h * w, h + w))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, recurrence={self.recurrence}"


class GlobalContext2d(nn.Module):
    """GCNet's global context block: one attention map for the whole image, a bottleneck
    transform, and a per-channel fusion.

    - context (``pooling="att"``): ``a = softmax(W_k x)`` over the ``N`` positions (``W_k`` a
      1x1 conv ``C -> 1``), ``c = sum_p a_p x_p``, a ``(B, C, 1, 1)`` vector; ``pooling="avg"``
      uses ``a_p = 1 / N`` (global average pooling, as in SE);
    - transform: ``t(c) = W_2 ReLU(LN(W_1 c))``, ``W_1`` a 1x1 conv ``C -> P``, ``LN`` a
      ``LayerNorm([P, 1, 1])``, ``W_2`` a 1x1 conv ``P -> C``, with ``P = C // reduction``;
    - fusion: ``"add"`` ``y = x + t(c)`` (the paper's default); ``"scale"``
      ``y = x * sigmoid(t(c))`` (SE-like gating; timm's default).

    ``W_2`` (weight and bias) starts at 0, as in the official code: with ``"add"`` the block
    starts as the identity; with ``"scale"`` it starts as ``y = x * sigmoid(0) = x / 2``, i.e.
    the features are halved at initialisation. ``W_k`` has He (fan-in) initialisation.

    Parameters
    ----------
    channels : ``C`` of the input (and output).
    reduction : ``P = C // reduction`` (16 in the paper's "r16", 4 in "r4"); ``P`` must be >= 1.
        With ``P = 1`` the LayerNorm of a single number is always 0, so the transform returns a
        constant and ignores the context; prefer ``P >= 2``.
    fusion : ``"add"`` or ``"scale"``.
    pooling : ``"att"`` (the attention-weighted sum) or ``"avg"`` (global average pooling).

    ``last_attention`` holds the context weights ``a``, ``(B, N)`` (positions row by row), each
    row summing to 1; for ``pooling="avg"`` it is the uniform ``1 / N``.
    """

    def __init__(self, channels: int, reduction: int = 16, fusion: str = "add",
                 pooling: str = "att"):
        super().__init__()
        _positive_int("channels", channels)
        _positive_int("reduction", reduction)
        if channels // reduction < 1:
            raise ValueError(f"reduction must be at most channels so that P = channels // reduction "
                             f">= 1, got channels={channels}, reduction={reduction}")
        if fusion not in GC_FUSIONS:
            raise ValueError(f"fusion must be one of {GC_FUSIONS}, got {fusion!r}")
        if pooling not in GC_POOLINGS:
            raise ValueError(f"pooling must be one of {GC_POOLINGS}, got {pooling!r}")
        planes = channels // reduction
        self.channels, self.reduction, self.planes = channels, reduction, planes
        self.fusion, self.pooling = fusion, pooling
        if pooling == "att":
            self.context_mask = nn.Conv2d(channels, 1, 1)
            nn.init.kaiming_normal_(self.context_mask.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(self.context_mask.bias)
        self.transform = nn.Sequential(nn.Conv2d(channels, planes, 1), nn.LayerNorm([planes, 1, 1]),
                                       nn.ReLU(), nn.Conv2d(planes, channels, 1))
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)
        self.last_attention: torch.Tensor | None = None

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled context ``c = sum_p a_p x_p``, ``(B, C, 1, 1)``; stores ``a`` ``(B, N)``."""
        _check_input(x, self.channels)
        b, c, h, w = x.shape
        if self.pooling == "avg":
            self.last_attention = x.new_full((b, h * w), 1.0 / (h * w))
            return x.mean(dim=(2, 3), keepdim=True)
        a = torch.softmax(self.context_mask(x).flatten(1), dim=-1)   # (B, N): one map per image
        self.last_attention = a.detach()
        return torch.einsum("bcn,bn->bc", x.flatten(2), a).view(b, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.transform(self.context(x))                            # (B, C, 1, 1)
        return x + t if self.fusion == "add" else x * torch.sigmoid(t)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, planes={self.planes}, fusion={self.fusion!r}, "
                f"pooling={self.pooling!r}")


# ------------------------------------------------------------ factories (backbone slots)
def sagan(reduction: int = 8, **kwargs) -> partial:
    """``factory(channels) -> SelfAttention2d`` for a backbone's ``stage_attention`` slot."""
    return partial(SelfAttention2d, reduction=reduction, **kwargs)


def pam(**kwargs) -> partial:
    """DANet's position attention module: :class:`SelfAttention2d` with ``reduction=8``."""
    return partial(SelfAttention2d, reduction=8, **kwargs)


def nonlocal_block(pairwise: str = "embedded", reduction: int = 2, **kwargs) -> partial:
    """``factory(channels) -> NonLocal2d``."""
    return partial(NonLocal2d, pairwise=pairwise, reduction=reduction, **kwargs)


def cam(mode: str = "paper") -> partial:
    """``factory(channels) -> ChannelAttention2d``."""
    return partial(ChannelAttention2d, mode=mode)


def uniform_nonlocal(reduction: int = 2, **kwargs) -> partial:
    """``factory(channels) -> UniformNonLocal2d`` (the non-attentive global-mixing control)."""
    return partial(UniformNonLocal2d, reduction=reduction, **kwargs)


def criss_cross(reduction: int = 8, recurrence: int = 1, **kwargs) -> partial:
    """``factory(channels) -> CrissCrossAttention2d``."""
    return partial(CrissCrossAttention2d, reduction=reduction, recurrence=recurrence, **kwargs)


def global_context(reduction: int = 16, fusion: str = "add", pooling: str = "att") -> partial:
    """``factory(channels) -> GlobalContext2d``."""
    return partial(GlobalContext2d, reduction=reduction, fusion=fusion, pooling=pooling)
