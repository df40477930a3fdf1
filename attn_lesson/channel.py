"""Channel attention: SE (squeeze-and-excitation), ECA (efficient channel attention), SK
(selective kernel).

Notation (book, notation page): feature map :math:`\\mathbf{X}\\in\\mathbb{R}^{C\\times H\\times W}`
(batch ``B`` first in code), channel weights :math:`\\mathbf{s}\\in\\mathbb{R}^{C}`,
:math:`\\sigma` sigmoid, :math:`\\delta` ReLU, :math:`r` reduction ratio, :math:`\\otimes`
broadcast element-wise product.

Every module here maps ``(B, C, H, W) -> (B, C, H, W)``, so it fits the attention slot of
:class:`attn_lesson.models.ResNetBackbone`; the factories :func:`se`, :func:`eca` and
:func:`sk` build the ``factory(channels)`` that the backbone expects::

    model = ResNetBackbone(attention=se(reduction=4))

After each forward pass a module keeps its weights (detached) in ``last_weights`` so that a
notebook can plot them.

Note on the small backbone: its stages have 16/32/64 channels, so the paper's ``r=16`` leaves
SE only 1/2/4 hidden units; the chapters use ``r=4`` or ``r=8`` there.
"""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn

SQUEEZES = ("avg", "max", "none")
GATES = ("sigmoid", "relu", "tanh")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


# ----------------------------------------------------------------------------------------
# SE
# ----------------------------------------------------------------------------------------
class SEModule(nn.Module):
    r"""Squeeze-and-excitation block (Hu et al., 2018).

    .. math::
        \mathbf{z} = \mathrm{GAP}(\mathbf{X}) \in \mathbb{R}^{C}, \qquad
        \mathbf{s} = \sigma\big(\mathbf{W}_2\,\delta(\mathbf{W}_1 \mathbf{z})\big) \in \mathbb{R}^{C},
        \qquad \tilde{\mathbf{X}} = \mathbf{X} \otimes \mathbf{s}

    with :math:`\mathbf{W}_1 \in \mathbb{R}^{C/r \times C}` and
    :math:`\mathbf{W}_2 \in \mathbb{R}^{C \times C/r}`. As in the official SE-ResNet the two
    fully connected layers are 1x1 convolutions with bias (``fc1``, ``fc2``; the same names and
    shapes as ``timm.layers.SEModule``, so weights can be copied with ``load_state_dict``).

    Parameters
    ----------
    channels : :math:`C`.
    reduction : :math:`r`; the hidden width is ``max(channels // reduction, min_hidden)``.
    squeeze : ``"avg"`` (GAP, the paper's default), ``"max"`` (GMP) or ``"none"``: no pooling;
        the same two 1x1 convolutions are applied at every position, so the excitation
        :math:`\mathbf{S}\in\mathbb{R}^{C\times H\times W}` keeps the spatial size (the paper's
        *NoSqueeze* ablation).
    gate : ``"sigmoid"`` (default, weights in (0, 1)), ``"relu"`` (weights in [0, inf)) or
        ``"tanh"`` (weights in (-1, 1)): the paper's excitation-operator ablation. The gate
        replaces :math:`\sigma` and is applied as is, without rescaling.
    min_hidden : lower bound of the hidden width.

    ``last_weights`` holds the excitation of the latest forward pass, detached:
    shape ``(B, C)``, or ``(B, C, H, W)`` for ``squeeze="none"``.
    """

    def __init__(self, channels: int, reduction: int = 16, *, squeeze: str = "avg",
                 gate: str = "sigmoid", min_hidden: int = 1):
        super().__init__()
        _check_int("channels", channels, 1)
        _check_int("reduction", reduction, 1)
        _check_int("min_hidden", min_hidden, 1)
        if reduction > channels:
            raise ValueError(f"reduction larger than channels: reduction={reduction} > "
                             f"channels={channels} would leave no hidden units")
        if squeeze not in SQUEEZES:
            raise ValueError(f"squeeze must be one of {SQUEEZES}, got {squeeze!r}")
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        self.channels, self.reduction = channels, reduction
        self.squeeze, self.gate_name = squeeze, gate
        self.hidden = max(channels // reduction, min_hidden)
        self.fc1 = nn.Conv2d(channels, self.hidden, 1, bias=True)   # W1: C -> C/r
        self.act = nn.ReLU(inplace=True)                             # delta
        self.fc2 = nn.Conv2d(self.hidden, channels, 1, bias=True)   # W2: C/r -> C
        self.gate = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}[gate]()
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.squeeze == "avg":
            z = x.mean((2, 3), keepdim=True)                   # (B, C, 1, 1)
        elif self.squeeze == "max":
            z = x.amax((2, 3), keepdim=True)                   # (B, C, 1, 1)
        else:
            z = x                                              # (B, C, H, W)
        s = self.gate(self.fc2(self.act(self.fc1(z))))         # same shape as z
        w = s.detach()
        self.last_weights = w.flatten(1) if self.squeeze != "none" else w
        return x * s

    def extra_repr(self) -> str:
        return f"squeeze={self.squeeze!r}, gate={self.gate_name!r}, hidden={self.hidden}"


# ----------------------------------------------------------------------------------------
# ECA
# ----------------------------------------------------------------------------------------
def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    r"""ECA's adaptive kernel size :math:`k = \psi(C) = \left|\frac{\log_2 C}{\gamma} +
    \frac{b}{\gamma}\right|_{odd}`.

    Rounded to an odd k as in ``timm.layers.EcaModule`` and many third-party ports:
    ``t = int(abs((log2(C) + b) / gamma))``, then ``k = t`` if ``t`` is odd, else ``t + 1``.
    With gamma=2, b=1: C = 16, 32, 64 -> 3; 128, 256, 512, 1024 -> 5; 2048 -> 7. Small C give
    k = 1 (C < 8), i.e. no interaction between channels; timm raises such k to 3. The authors'
    repository (BangguWu/ECANet) computes no psi(C): its ``eca_layer(channel, k_size=3)`` takes
    k as an argument, its released ResNet-50 fixes k = 3, 5, 5, 7 per stage, and its
    MobileNetV2 uses k = 1 up to 96 channels and 3 above.
    """
    _check_int("channels", channels, 1)
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECAModule(nn.Module):
    r"""Efficient channel attention (Wang et al., 2020): SE without the bottleneck.

    .. math::
        \mathbf{z} = \mathrm{GAP}(\mathbf{X}) \in \mathbb{R}^{C}, \qquad
        \mathbf{s} = \sigma\big(\mathrm{C1D}_k(\mathbf{z})\big) \in \mathbb{R}^{C}, \qquad
        \tilde{\mathbf{X}} = \mathbf{X} \otimes \mathbf{s}

    :math:`\mathrm{C1D}_k` is one 1-D convolution along the channel axis (kernel ``k``, zero
    padding ``k // 2``, no bias): channel ``c`` looks at its ``k`` neighbours
    ``c - k//2 .. c + k//2``, with only ``k`` weights shared by all channels. The layer
    ``conv`` has the same name and shape as in ``timm.layers.EcaModule``.

    Parameters
    ----------
    channels : :math:`C` (only used to choose ``k`` adaptively).
    k_size : odd positive kernel size, or ``None`` for :func:`eca_kernel_size` ``(C, gamma, b)``.
    gamma, b : the mapping's constants (paper: 2 and 1).

    ``last_weights``: the channel weights of the latest forward pass, detached, ``(B, C)``.
    """

    def __init__(self, channels: int, k_size: int | None = None, *, gamma: float = 2,
                 b: float = 1):
        super().__init__()
        _check_int("channels", channels, 1)
        if k_size is None:
            k_size = eca_kernel_size(channels, gamma, b)
        if isinstance(k_size, bool) or not isinstance(k_size, int) or k_size < 1 or k_size % 2 == 0:
            raise ValueError(f"k_size must be an odd positive int (so that padding k//2 keeps "
                             f"all C channels), got {k_size!r}")
        self.channels, self.k_size = channels, k_size
        self.conv = nn.Conv1d(1, 1, k_size, padding=k_size // 2, bias=False)
        self.gate = nn.Sigmoid()
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C = x.shape[:2]
        z = x.mean((2, 3)).view(B, 1, C)                       # channels as a 1-D sequence
        s = self.gate(self.conv(z)).view(B, C)                 # (B, C)
        self.last_weights = s.detach()
        return x * s.view(B, C, 1, 1)

    def extra_repr(self) -> str:
        return f"k_size={self.k_size}"


# ----------------------------------------------------------------------------------------
# SK
# ----------------------------------------------------------------------------------------
class SKAttention(nn.Module):
    r"""The *fuse* and *select* steps of a selective-kernel unit (Li et al., 2019).

    Input: the stacked branch outputs :math:`\mathbf{U}_1..\mathbf{U}_M`, shape
    ``(B, M, C, H, W)``. Output: branch weights ``(B, M, C, 1, 1)`` that sum to 1 over ``M``.

    .. math::
        \mathbf{U} = \sum_i \mathbf{U}_i, \qquad
        \mathbf{g} = \mathrm{GAP}(\mathbf{U}) \in \mathbb{R}^{C}, \qquad
        \mathbf{z} = \delta\big(\mathrm{BN}(\mathbf{W}_{fc}\,\mathbf{g})\big) \in \mathbb{R}^{d},

    .. math::
        a_{i,c} = \frac{\exp(\mathbf{A}_i \mathbf{z})_c}{\sum_{j=1}^{M} \exp(\mathbf{A}_j \mathbf{z})_c},
        \qquad \mathbf{A}_i \in \mathbb{R}^{C\times d}.

    ``fc_reduce`` (:math:`\mathbf{W}_{fc}`, no bias), ``bn``, ``fc_select`` (the :math:`M`
    matrices :math:`\mathbf{A}_i` stacked: output rows ``i*C .. (i+1)*C - 1`` belong to branch
    ``i``; no bias) carry the names and shapes of ``timm.layers.SelectiveKernelAttn``, so its
    weights load with ``load_state_dict``. BN in training mode needs ``B > 1``.
    """

    def __init__(self, channels: int, branches: int = 2, attn_channels: int = 32):
        super().__init__()
        _check_int("channels", channels, 1)
        _check_int("branches", branches, 2)
        _check_int("attn_channels", attn_channels, 1)
        self.branches = branches
        self.fc_reduce = nn.Conv2d(channels, attn_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(attn_channels)
        self.act = nn.ReLU(inplace=True)
        self.fc_select = nn.Conv2d(attn_channels, channels * branches, 1, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.dim() != 5 or u.shape[1] != self.branches:
            raise ValueError(f"expected stacked branches of shape (B, {self.branches}, C, H, W), "
                             f"got {tuple(u.shape)}")
        B, M, C = u.shape[:3]
        g = u.sum(1).mean((2, 3), keepdim=True)                # fuse: (B, C, 1, 1)
        z = self.act(self.bn(self.fc_reduce(g)))               # (B, d, 1, 1)
        logits = self.fc_select(z).view(B, M, C, 1, 1)         # one C-vector per branch
        return torch.softmax(logits, dim=1)                    # select: softmax over branches


class SKConv(nn.Module):
    r"""Selective-kernel convolution (Li et al., 2019): split, fuse, select.

    *Split*: branch ``i`` (``i = 0 .. M-1``) is a 3x3 convolution with dilation ``i + 1``
    (padding ``i + 1``) + BN + ReLU, so its receptive field is ``3 + 2i``: the second branch
    stands in for the paper's 5x5 kernel. *Fuse* and *select*: see :class:`SKAttention`, with
    ``d = max(C // r, L)``. Output:

    .. math::
        \mathbf{V} = \sum_{i=1}^{M} \mathbf{a}_i \otimes \mathbf{U}_i, \qquad
        \mathbf{a}_i \in \mathbb{R}^{C},\ \textstyle\sum_i \mathbf{a}_i = \mathbf{1}.

    Unlike SE and ECA, SK is a convolution layer, not a gate on its input: its output is built
    from new features :math:`\mathbf{U}_i`. With ``stride=1`` it maps ``(B, C, H, W)`` to
    ``(B, C, H, W)``, so ``ResNetBackbone(attention=sk())`` places one SK unit on every
    block's residual branch (after the block's second BN, before the addition), where it acts as
    an extra, adaptive-receptive-field convolution. (In SKNet itself the SK unit *replaces* the
    3x3 convolution of a ResNeXt bottleneck and uses grouped convolutions.)

    Parameters
    ----------
    channels : :math:`C` (input and output).
    branches : :math:`M \ge 2`.
    reduction : :math:`r`. L : lower bound of :math:`d` (paper: 32).
    stride : stride of every branch (1 keeps the size, as the attention slot needs).

    ``last_weights``: the branch weights of the latest forward pass, detached,
    shape ``(B, M, C)``; ``last_weights[:, 1] - last_weights[:, 0]`` is the preference for the
    larger receptive field.
    """

    def __init__(self, channels: int, *, branches: int = 2, reduction: int = 16, L: int = 32,
                 stride: int = 1):
        super().__init__()
        _check_int("channels", channels, 1)
        if isinstance(branches, bool) or not isinstance(branches, int) or branches < 2:
            raise ValueError(f"SKConv selects between branches: branches must be an int >= 2, "
                             f"got {branches!r}")
        _check_int("reduction", reduction, 1)
        _check_int("L", L, 1)
        _check_int("stride", stride, 1)
        self.channels, self.branches = channels, branches
        self.d = max(channels // reduction, L)
        self.paths = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels, channels, 3, stride, padding=i + 1, dilation=i + 1,
                                    bias=False),
                          nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            for i in range(branches)])
        self.attention = SKAttention(channels, branches, self.d)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.stack([path(x) for path in self.paths], dim=1)  # split: (B, M, C, H, W)
        a = self.attention(u)                                     # (B, M, C, 1, 1)
        self.last_weights = a.detach().flatten(2)                 # (B, M, C)
        return (u * a).sum(1)                                     # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"branches={self.branches}, d={self.d}"


# ----------------------------------------------------------------------------------------
# Factories for ResNetBackbone(attention=...)
# ----------------------------------------------------------------------------------------
def se(reduction: int = 16, **kwargs) -> partial:
    """``factory(channels) -> SEModule(channels, reduction, **kwargs)``."""
    return partial(SEModule, reduction=reduction, **kwargs)


def eca(k_size: int | None = None, **kwargs) -> partial:
    """``factory(channels) -> ECAModule(channels, k_size, **kwargs)``."""
    return partial(ECAModule, k_size=k_size, **kwargs)


def sk(**kwargs) -> partial:
    """``factory(channels) -> SKConv(channels, **kwargs)``."""
    return partial(SKConv, **kwargs)
