"""Residual Attention Network (Wang et al., CVPR 2017): trunk, soft mask, attention residual learning.

An :class:`AttentionModule` has a **trunk** ``T(x)`` (residual units) and a **soft mask**
``M(x)`` computed by a bottom-up top-down branch (:class:`SoftMaskBranch`: max-pool down
``depth`` times, residual units, bilinear upsampling back with skip connections, two 1x1
convolutions, an activation). The two are combined either by

* attention residual learning (``learning="arl"``, the paper's choice): ``H = (1 + M) * T``, or
* naive attention learning (``learning="nal"``): ``H = M * T``.

The mask's ``activation`` is one of the paper's three: ``"mixed"`` (a sigmoid per element),
``"channel"`` (L2 normalisation across channels at each position) or ``"spatial"`` (each
channel's map standardised to zero mean and unit variance, then a sigmoid).

:class:`ResidualAttentionNet` is chapter 2's backbone with ``modules[i]`` attention modules
after stage ``i + 1`` (mask depth ``mask_depths[i]``); with no modules it is the baseline.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import ResNetBackbone
from .models import _check_map, _check_positive_int

LEARNING = ("arl", "nal")
ACTIVATIONS = ("mixed", "channel", "spatial")


def _positive_int(name: str, value, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
    return value


class ResidualUnit(nn.Module):
    """Pre-activation residual unit with constant width: ``x + conv(relu(bn(conv(relu(bn(x))))))``."""

    def __init__(self, channels: int):
        super().__init__()
        _check_positive_int("channels", channels)
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map(x, self.body[2].in_channels)
        return x + self.body(x)


def mask_activation(logits: torch.Tensor, activation: str, eps: float = 1e-5) -> torch.Tensor:
    """The paper's three mask activations applied to ``logits`` of shape ``(B, C, H, W)``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
        raise ValueError(f"logits must be a (B, C, H, W) tensor, got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if activation == "mixed":
        return torch.sigmoid(logits)
    if activation == "channel":           # unit L2 norm over channels, at every position
        return logits / logits.norm(dim=1, keepdim=True).clamp_min(eps)
    if activation == "spatial":           # standardise each channel's map, then a sigmoid
        mean = logits.mean(dim=(2, 3), keepdim=True)
        std = logits.std(dim=(2, 3), keepdim=True, unbiased=False)
        return torch.sigmoid((logits - mean) / (std + eps))
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


class SoftMaskBranch(nn.Module):
    """Bottom-up top-down mask branch of depth ``depth`` (number of 2x max-pool halvings).

    Going down, level ``k`` (k = 1..depth) max-pools by 2 and applies a residual unit; every
    level but the deepest also keeps a skip residual unit. Going up, each level is upsampled
    bilinearly to the size of the level above, added to that level's skip, and refined by a
    residual unit. Two 1x1 conv-BN(-ReLU) layers then give the logits, and ``activation``
    turns them into the mask. The input's height and width must be divisible by ``2**depth``.
    """

    def __init__(self, channels: int, depth: int = 2, activation: str = "mixed"):
        super().__init__()
        _positive_int("channels", channels)
        self.depth = _positive_int("depth (of the mask branch)", depth)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.down = nn.ModuleList([ResidualUnit(channels) for _ in range(depth)])
        self.skips = nn.ModuleList([ResidualUnit(channels) for _ in range(depth - 1)])
        self.up = nn.ModuleList([ResidualUnit(channels) for _ in range(depth - 1)])
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1))

    def check_size(self, h: int, w: int) -> None:
        f = 2 ** self.depth
        if h % f or w % f:
            raise ValueError(
                f"a mask branch of depth {self.depth} halves the map {self.depth} times, so its "
                f"height and width must be divisible by {f}; got a {h}x{w} map "
                f"(use a depth d with 2**d dividing both sides)")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(x.shape[-2], x.shape[-1])
        skips, h = [], x
        for k in range(self.depth):
            h = self.down[k](F.max_pool2d(h, 2))
            if k < self.depth - 1:
                skips.append(self.skips[k](h))
        for k in reversed(range(self.depth - 1)):          # back up to the shallowest pooled level
            h = self.up[k](F.interpolate(h, size=skips[k].shape[-2:], mode="bilinear",
                                         align_corners=False) + skips[k])
        h = F.interpolate(h, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mask_activation(self.logits(x), self.activation)


class AttentionModule(nn.Module):
    """``pre`` residual units, then trunk ``T`` (``trunk`` units) and mask ``M`` in parallel,
    combined as ``(1 + M) * T`` (``learning="arl"``) or ``M * T`` (``"nal"``), then ``post`` units.

    After a forward pass ``last_mask`` holds ``M`` (detached, ``(B, C, H, W)``).
    """

    def __init__(self, channels: int, depth: int = 2, learning: str = "arl",
                 activation: str = "mixed", pre: int = 1, trunk: int = 2, post: int = 1):
        super().__init__()
        if learning not in LEARNING:
            raise ValueError(f"learning must be 'arl' (attention residual learning, (1+M)*T) or "
                             f"'nal' (naive, M*T), got {learning!r}")
        for name, v in (("pre", pre), ("post", post)):
            _positive_int(name, v, 0)
        _positive_int("trunk", trunk)
        _check_positive_int("channels", channels)
        self.learning = learning
        self.pre = nn.Sequential(*[ResidualUnit(channels) for _ in range(pre)])
        self.trunk = nn.Sequential(*[ResidualUnit(channels) for _ in range(trunk)])
        self.mask = SoftMaskBranch(channels, depth, activation)
        self.post = nn.Sequential(*[ResidualUnit(channels) for _ in range(post)])
        self.last_mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map(x, self.trunk[0].body[2].in_channels)
        x = self.pre(x)
        t, m = self.trunk(x), self.mask(x)
        self.last_mask = m.detach()
        h = (1 + m) * t if self.learning == "arl" else m * t
        return self.post(h)


class ResidualAttentionNet(nn.Module):
    """Chapter 2's backbone with ``modules[i]`` :class:`AttentionModule` s after stage ``i + 1``.

    ``modules`` and ``mask_depths`` have one entry per stage but the last (default two: after
    stage 1, 20x20 on 40x40 inputs, and stage 2, 10x10). ``modules=(0, 0)`` is the baseline.
    ``learning``, ``activation`` and the unit counts ``pre``, ``trunk``, ``post`` (the paper's
    ``p``, ``t`` and the ``p`` units after the trunk; see :class:`AttentionModule`) apply to every
    module.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *,
                 widths: tuple[int, ...] = (16, 32, 64), modules: tuple[int, ...] = (1, 1),
                 mask_depths: tuple[int, ...] = (2, 1), learning: str = "arl",
                 activation: str = "mixed", pre: int = 1, trunk: int = 2, post: int = 1):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.backbone = ResNetBackbone(in_channels, num_classes, widths=tuple(widths),
                                       depths=(1,) * len(widths))
        modules, mask_depths = tuple(modules), tuple(mask_depths)
        n = len(widths) - 1
        if len(modules) != n or len(mask_depths) != n:
            raise ValueError(f"modules and mask_depths need one entry per stage but the last "
                             f"({n}), got modules={modules}, mask_depths={mask_depths}")
        for m in modules:
            _positive_int("every entry of modules", m, 0)
        self.learning, self.activation = learning, activation
        self.attn = nn.ModuleList([
            nn.Sequential(*[AttentionModule(widths[i], mask_depths[i], learning, activation,
                                            pre=pre, trunk=trunk, post=post)
                            for _ in range(modules[i])]) for i in range(n)])

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b = self.backbone
        b._check(x)
        out = {"stem": b.stem(x)}
        h = out["stem"]
        for i, stage in enumerate(b.stages):
            h = stage(h)
            if i < len(self.attn):
                h = self.attn[i](h)
            out[f"stage{i + 1}"] = h
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)[f"stage{len(self.backbone.stages)}"]
        return self.backbone.head(torch.flatten(self.backbone.pool(h), 1))

    def attention_modules(self) -> list[AttentionModule]:
        """Every attention module in forward order."""
        return [m for seq in self.attn for m in seq]
