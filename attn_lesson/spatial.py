"""Spatial and mixed attention: CBAM's spatial and channel gates, CBAM, BAM.

Notation (book, notation page): feature map :math:`\\mathbf{X}\\in\\mathbb{R}^{C\\times H\\times W}`
(batch ``B`` first in code), spatial map :math:`\\mathbf{M}\\in\\mathbb{R}^{1\\times H\\times W}`,
channel weights :math:`\\mathbf{s}\\in\\mathbb{R}^{C}`, :math:`\\sigma` sigmoid, :math:`\\delta`
ReLU, :math:`r` reduction ratio, :math:`\\otimes` broadcast element-wise product.

Every module maps ``(B, C, H, W) -> (B, C, H, W)``, so it fits the attention slot of
:class:`attn_lesson.models.ResNetBackbone`; :func:`spatial_gate`, :func:`channel_gate`, :func:`cbam` and
:func:`bam` build the ``factory(channels)`` that the backbone expects (``bam`` goes in
``ResNetBackbone(stage_attention=...)``, between stages). After a forward pass each module keeps what
it computed (detached) for plotting: ``last_map`` (spatial, ``(B, 1, H, W)``) and
``last_weights`` (channel, ``(B, C)``).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from .channel import _check_int

POOLS = ("avg", "max", "both")
ORDERS = ("channel-spatial", "spatial-channel", "parallel")
FUSIONS = ("sum", "product", "max")


def _check_odd(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be an odd positive int (padding {name}//2 keeps H and W), "
                         f"got {value!r}")


def _check_pool(pool: str) -> None:
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")


def _check_reduction(channels: int, reduction: int) -> None:
    _check_int("channels", channels, 1)
    _check_int("reduction", reduction, 1)
    if reduction > channels:
        raise ValueError(f"reduction larger than channels: reduction={reduction} > "
                         f"channels={channels} would leave no hidden units")


# ----------------------------------------------------------------------------------------
# Spatial gate (CBAM's spatial attention module)
# ----------------------------------------------------------------------------------------
class SpatialGate(nn.Module):
    r"""CBAM's spatial attention (Woo et al., 2018).

    .. math::
        \mathbf{M} = \sigma\Big(\mathrm{BN}\big(f^{k\times k}\big([\mathrm{AvgPool}_c(\mathbf{X});
        \mathrm{MaxPool}_c(\mathbf{X})]\big)\big)\Big) \in \mathbb{R}^{1\times H\times W},
        \qquad \tilde{\mathbf{X}} = \mathbf{X} \otimes \mathbf{M}

    The two descriptors pool *across channels* at every position, giving a ``(B, 2, H, W)``
    map, stacked in the paper's order ``[avg; max]`` (timm's order too; the authors' code
    stacks ``[max, mean]``). A ``k x k`` convolution (no bias, padding ``k // 2``) and a
    one-channel BN (as in the official code and timm) give one logit per position.

    Parameters
    ----------
    kernel_size : odd ``k`` (paper: 7).
    pool : ``"both"`` (paper), ``"avg"`` or ``"max"``: which channel descriptors feed the conv.
    norm : apply the one-channel BN after the conv (``True`` like the official code).

    ``last_map``: the map :math:`\mathbf{M}` of the latest forward pass, detached, ``(B, 1, H, W)``.
    The layers ``conv.conv`` / ``conv.bn`` carry the names of ``timm.layers.cbam.SpatialAttn``.
    """

    def __init__(self, kernel_size: int = 7, *, pool: str = "both", norm: bool = True):
        super().__init__()
        _check_odd("kernel_size", kernel_size)
        _check_pool(pool)
        self.kernel_size, self.pool = kernel_size, pool
        cin = 2 if pool == "both" else 1
        self.conv = nn.Sequential()
        self.conv.add_module("conv", nn.Conv2d(cin, 1, kernel_size, padding=kernel_size // 2,
                                               bias=False))
        self.conv.add_module("bn", nn.BatchNorm2d(1) if norm else nn.Identity())
        self.gate = nn.Sigmoid()
        self.last_map: torch.Tensor | None = None

    def descriptors(self, x: torch.Tensor) -> torch.Tensor:
        """Channel-pooled descriptors ``(B, 2 or 1, H, W)``: ``[avg; max]`` across channels."""
        parts = []
        if self.pool in ("avg", "both"):
            parts.append(x.mean(1, keepdim=True))
        if self.pool in ("max", "both"):
            parts.append(x.amax(1, keepdim=True))
        return torch.cat(parts, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The map :math:`\\mathbf{M}`, ``(B, 1, H, W)``, without applying it."""
        return self.gate(self.conv(self.descriptors(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.attention(x)
        self.last_map = m.detach()
        return x * m

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, pool={self.pool!r}"


# ----------------------------------------------------------------------------------------
# Channel gate (CBAM's channel attention module)
# ----------------------------------------------------------------------------------------
class ChannelGate(nn.Module):
    r"""CBAM's channel attention: one MLP shared by the average- and max-pooled vectors.

    .. math::
        \mathbf{s} = \sigma\big(\mathrm{MLP}(\mathrm{GAP}(\mathbf{X})) +
        \mathrm{MLP}(\mathrm{GMP}(\mathbf{X}))\big) \in \mathbb{R}^{C}, \qquad
        \mathrm{MLP}(\mathbf{z}) = \mathbf{W}_2\,\delta(\mathbf{W}_1\mathbf{z} + \mathbf{b}_1) + \mathbf{b}_2

    with :math:`\mathbf{W}_1\in\mathbb{R}^{C/r\times C}`, :math:`\mathbf{W}_2\in\mathbb{R}^{C\times C/r}`
    (1x1 convolutions with bias, named ``fc1``/``fc2`` as in ``timm.layers.cbam.ChannelAttn``).
    With ``pool="avg"`` it is exactly SE; ``pool="max"`` uses GMP alone (the paper's pooling
    ablation).

    ``last_weights``: :math:`\mathbf{s}` of the latest forward pass, detached, ``(B, C)``.
    """

    def __init__(self, channels: int, reduction: int = 16, *, pool: str = "both"):
        super().__init__()
        _check_reduction(channels, reduction)
        _check_pool(pool)
        self.channels, self.reduction, self.pool = channels, reduction, pool
        self.hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, self.hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(self.hidden, channels, 1, bias=True)
        self.gate = nn.Sigmoid()
        self.last_weights: torch.Tensor | None = None

    def mlp(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(z)))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The weights :math:`\\mathbf{s}` as ``(B, C, 1, 1)``, without applying them."""
        pooled = []
        if self.pool in ("avg", "both"):
            pooled.append(x.mean((2, 3), keepdim=True))
        if self.pool in ("max", "both"):
            pooled.append(x.amax((2, 3), keepdim=True))
        # One MLP call on the stacked vectors, then the sum over the poolings: the same
        # numbers as MLP(avg) + MLP(max), but each layer runs once (faster on a CPU).
        b = x.shape[0]
        logits = self.mlp(torch.cat(pooled, 0)).view(len(pooled), b, -1, 1, 1).sum(0)
        return self.gate(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.attention(x)
        self.last_weights = s.detach().flatten(1)
        return x * s

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}, hidden={self.hidden}"


# ----------------------------------------------------------------------------------------
# CBAM
# ----------------------------------------------------------------------------------------
class CBAM(nn.Module):
    r"""Convolutional block attention module (Woo et al., 2018): channel gate, then spatial gate.

    .. math::
        \mathbf{X}' = \mathbf{X} \otimes \mathbf{s}(\mathbf{X}), \qquad
        \mathbf{X}'' = \mathbf{X}' \otimes \mathbf{M}(\mathbf{X}')

    ``order`` (the paper's arrangement study): ``"channel-spatial"`` (the above, the paper's
    choice), ``"spatial-channel"`` (the two gates swapped), or ``"parallel"``: both gates look at
    the same input and their refined features are added,
    :math:`\mathbf{X}\otimes\mathbf{s}(\mathbf{X}) + \mathbf{X}\otimes\mathbf{M}(\mathbf{X})`.

    Parameters: ``channels``, ``reduction`` (:math:`r`), ``kernel_size`` (spatial conv, odd),
    ``channel_pool`` / ``spatial_pool`` (``"avg"``, ``"max"`` or ``"both"``).
    Sub-modules ``channel`` (:class:`ChannelGate`) and ``spatial`` (:class:`SpatialGate`) carry
    the names of ``timm.layers.CbamModule``; their ``last_weights`` / ``last_map`` are exposed
    here as well.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, *,
                 order: str = "channel-spatial", channel_pool: str = "both",
                 spatial_pool: str = "both"):
        super().__init__()
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.order = order
        self.channel = ChannelGate(channels, reduction, pool=channel_pool)
        self.spatial = SpatialGate(kernel_size, pool=spatial_pool)

    @property
    def last_map(self) -> torch.Tensor | None:
        return self.spatial.last_map

    @property
    def last_weights(self) -> torch.Tensor | None:
        return self.channel.last_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "channel-spatial":
            return self.spatial(self.channel(x))
        if self.order == "spatial-channel":
            return self.channel(self.spatial(x))
        return self.channel(x) + self.spatial(x)

    def extra_repr(self) -> str:
        return f"order={self.order!r}"


# ----------------------------------------------------------------------------------------
# BAM
# ----------------------------------------------------------------------------------------
class BAM(nn.Module):
    r"""Bottleneck attention module (Park et al., 2018): parallel channel and spatial branches.

    .. math::
        \mathbf{M}_c = \mathrm{BN}\big(\mathbf{W}_2\,\delta(\mathrm{BN}(\mathbf{W}_1\,
        \mathrm{GAP}(\mathbf{X})))\big) \in \mathbb{R}^{C\times1\times1}, \qquad
        \mathbf{M}_s = f^{1\times1}_3\big(f^{3\times3}_2(f^{3\times3}_1(f^{1\times1}_0(\mathbf{X})))\big)
        \in \mathbb{R}^{1\times H\times W},

    .. math::
        \mathbf{M} = \sigma(\mathbf{M}_c + \mathbf{M}_s) \in \mathbb{R}^{C\times H\times W},
        \qquad \tilde{\mathbf{X}} = \mathbf{X} + \mathbf{X}\otimes\mathbf{M}.

    The spatial branch reduces to :math:`C/r` channels (1x1), applies two 3x3 convolutions with
    dilation ``dilation`` (paper: 4), each with BN + ReLU, and a 1x1 conv to one channel.
    ``fusion`` combines the two (broadcast) logits: ``"sum"`` (the paper's equation),
    ``"product"`` (:math:`\sigma(\mathbf{M}_c\cdot\mathbf{M}_s)`, what the authors' code
    does) or ``"max"`` (element-wise maximum).

    BAM sits *between* stages (``ResNetBackbone(stage_attention=bam())``), not in every block.

    ``last_map``: channel mean of :math:`\mathbf{M}`, ``(B, 1, H, W)``; ``last_weights``:
    :math:`\sigma(\mathbf{M}_c)`, ``(B, C)``; ``last_spatial``: :math:`\sigma(\mathbf{M}_s)`,
    ``(B, 1, H, W)`` (all detached).
    """

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4, *,
                 fusion: str = "sum"):
        super().__init__()
        _check_reduction(channels, reduction)
        _check_int("dilation", dilation, 1)
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.channels, self.reduction, self.dilation, self.fusion = channels, reduction, dilation, fusion
        h = channels // reduction
        # channel branch: the paper's BN(MLP(GAP(X))), with the authors' BN on the hidden layer
        self.channel_branch = nn.Sequential(
            nn.Conv2d(channels, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(inplace=True),
            nn.Conv2d(h, channels, 1, bias=False), nn.BatchNorm2d(channels))
        layers = [nn.Conv2d(channels, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(inplace=True)]
        for _ in range(2):
            layers += [nn.Conv2d(h, h, 3, padding=dilation, dilation=dilation, bias=False),
                       nn.BatchNorm2d(h), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(h, 1, 1, bias=True))
        self.spatial_branch = nn.Sequential(*layers)
        self.last_map = self.last_weights = self.last_spatial = None

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The branch logits :math:`\\mathbf{M}_c` ``(B, C, 1, 1)`` and :math:`\\mathbf{M}_s` ``(B, 1, H, W)``."""
        return self.channel_branch(x.mean((2, 3), keepdim=True)), self.spatial_branch(x)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The full map :math:`\\mathbf{M}`, ``(B, C, H, W)``."""
        mc, ms = self.logits(x)
        if self.fusion == "sum":
            fused = mc + ms
        elif self.fusion == "product":
            fused = mc * ms
        else:
            fused = torch.maximum(mc, ms)
        m = torch.sigmoid(fused)
        self.last_weights = torch.sigmoid(mc).detach().flatten(1)
        self.last_spatial = torch.sigmoid(ms).detach()
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.attention(x)
        self.last_map = m.detach().mean(1, keepdim=True)
        return x + x * m

    def extra_repr(self) -> str:
        return f"reduction={self.reduction}, dilation={self.dilation}, fusion={self.fusion!r}"


# ----------------------------------------------------------------------------------------
# Factories for ResNetBackbone(attention=...) / ResNetBackbone(stage_attention=...)
# ----------------------------------------------------------------------------------------
def _spatial_factory(channels: int, **kwargs) -> SpatialGate:
    _check_int("channels", channels, 1)
    return SpatialGate(**kwargs)


def spatial_gate(kernel_size: int = 7, **kwargs) -> partial:
    """``factory(channels) -> SpatialGate(kernel_size, **kwargs)`` (the gate ignores ``channels``)."""
    _check_odd("kernel_size", kernel_size)
    return partial(_spatial_factory, kernel_size=kernel_size, **kwargs)


def channel_gate(reduction: int = 16, **kwargs) -> partial:
    """``factory(channels) -> ChannelGate(channels, reduction, **kwargs)``."""
    return partial(ChannelGate, reduction=reduction, **kwargs)


def cbam(reduction: int = 16, kernel_size: int = 7, **kwargs) -> partial:
    """``factory(channels) -> CBAM(channels, reduction, kernel_size, **kwargs)``."""
    return partial(CBAM, reduction=reduction, kernel_size=kernel_size, **kwargs)


def bam(reduction: int = 16, dilation: int = 4, **kwargs) -> partial:
    """``factory(channels) -> BAM(channels, reduction, dilation, **kwargs)``."""
    return partial(BAM, reduction=reduction, dilation=dilation, **kwargs)
