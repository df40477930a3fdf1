"""A small residual backbone with an attention slot in every block.

``ResNetBackbone(attention=factory)`` builds a 3-stage residual network (default widths
16/32/64, one block per stage, stride-2 stem) in which every :class:`BasicBlock` calls
``factory(channels)`` to create its attention module. ``attention=None`` gives the
plain baseline. ``model.features(x)`` returns every stage's output, which later chapters
need for attention maps and for Learn-to-Pay-Attention.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

AttentionFactory = Callable[[int], nn.Module]
POSITIONS = ("standard", "pre", "post", "identity")


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """``kernel x kernel`` convolution (no bias), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


# --- argument checks shared by the mechanism files (written as checks only: a call statement of a
# _check function, so the reference runs' training-source hash ignores them)
def _check_map(x, channels: int, name: str = "x") -> None:
    """Raise ValueError unless ``x`` is a ``(B, channels, H, W)`` tensor."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape (B, {channels}, H, W), got {shape}")


def _check_positive_int(name: str, value) -> None:
    """Raise ValueError unless ``value`` is a positive int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")

class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, with an optional attention module.

    Where the attention module sits (``position``; the SENet paper's integration study):

    * ``"standard"``: on the residual branch after its last BN, before the addition
      (the SE-ResNet placement): ``y = relu(x' + A(F(x)))``.
    * ``"pre"``: on the residual branch's input, before its first conv; the shortcut still
      carries the ungated ``x``: ``y = relu(x' + F(A(x)))`` (the paper's SE-PRE).
    * ``"post"``: after the addition and the ReLU, i.e. on the main path:
      ``y = A(relu(x' + F(x)))``.
    * ``"identity"``: on the shortcut, in parallel with the branch: ``y = relu(A(x') + F(x))``.

    Here ``x'`` is the shortcut (identity, or a 1x1 conv + BN when the shape changes).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1,
                 attention: AttentionFactory | None = None, position: str = "standard"):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        self.position = position
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()
        if attention is None:
            self.attention = nn.Identity()
        else:
            att_channels = cin if position == "pre" else cout
            self.attention = attention(att_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = self.attention(x) if self.position == "pre" else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        if self.position == "standard":
            out = self.attention(out)
        elif self.position == "identity":
            identity = self.attention(identity)
        out = self.relu(out + identity)
        if self.position == "post":
            out = self.attention(out)
        return out


class ResNetBackbone(nn.Module):
    """Stem, three residual stages, global average pooling and a linear classifier.

    Parameters
    ----------
    in_channels : channels of the input images (1 for grey Cluttered Digits, 3 for colour).
    num_classes : classifier outputs.
    widths : channels of each stage; stage ``i > 0`` halves the resolution.
    depths : residual blocks per stage.
    stem_stride : 2 halves the input resolution in the stem (fast, the cpu default), 1 keeps it.
    attention : ``factory(channels) -> nn.Module`` called once per block, or ``None``.
    position : where each block applies its attention module (see :class:`BasicBlock`).
    stage_attention : ``factory(channels) -> nn.Module`` placed *between* stages, i.e. after
        every stage but the last, where the next stage downsamples (BAM's placement at the
        network's bottlenecks), or ``None``.
    stage_attention_at : the stages (1-based) after which ``stage_attention`` is placed;
        ``None`` (default) means every stage but the last. The last stage is allowed (a module
        just before global pooling), e.g. ``(2,)`` for one self-attention layer after stage 2.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 widths: tuple[int, ...] = (16, 32, 64), depths: tuple[int, ...] = (1, 1, 1),
                 stem_stride: int = 2, attention: AttentionFactory | None = None,
                 position: str = "standard", stage_attention: AttentionFactory | None = None,
                 stage_attention_at: tuple[int, ...] | None = None):
        super().__init__()
        for name, val in (("in_channels", in_channels), ("num_classes", num_classes)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        widths, depths = tuple(widths), tuple(depths)
        if not widths or len(widths) != len(depths):
            raise ValueError(f"widths and depths must be non-empty and of equal length, got "
                             f"widths={widths}, depths={depths}")
        if any(w < 1 for w in widths) or any(d < 1 for d in depths):
            raise ValueError(f"widths and depths must be positive, got widths={widths}, depths={depths}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        n_stages = len(widths)
        if stage_attention_at is None:
            at = set(range(1, n_stages))
        else:
            at = set(stage_attention_at) if isinstance(stage_attention_at, (tuple, list)) else None
            if (not at or any(isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= n_stages
                              for i in at) or len(at) != len(stage_attention_at)):
                raise ValueError(f"stage_attention_at must be None or distinct stage numbers in "
                                 f"1..{n_stages}, got {stage_attention_at!r}")
            if stage_attention is None:
                raise ValueError("stage_attention_at needs a stage_attention factory")
        self.in_channels = in_channels
        self.widths = widths
        self.stem = conv_bn_relu(in_channels, widths[0], 3, stem_stride)
        stages, cin = [], widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            blocks = []
            for j in range(d):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(cin, w, stride, attention, position))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.transitions = nn.ModuleList(
            [stage_attention(w) if stage_attention is not None and i + 1 in at
             else nn.Identity() for i, w in enumerate(widths)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected a batch of shape (B, {self.in_channels}, H, W) because the backbone "
                f"was built with in_channels={self.in_channels}; got shape {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Intermediate feature maps: ``{"stem": ..., "stage1": ..., "stage2": ..., ...}``
        (a stage's output after its ``stage_attention`` module, if any)."""
        self._check(x)
        out = {"stem": self.stem(x)}
        h = out["stem"]
        for i, (stage, trans) in enumerate(zip(self.stages, self.transitions), start=1):
            h = trans(stage(h))
            out[f"stage{i}"] = h
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        h = self.stem(x)
        for stage, trans in zip(self.stages, self.transitions):
            h = trans(stage(h))
        return self.head(torch.flatten(self.pool(h), 1))

    def attention_modules(self) -> list[nn.Module]:
        """Every attention module in forward order: each block's, then (after its stage) the
        stage-transition module, if any. Empty for the baseline."""
        mods = []
        for stage, trans in zip(self.stages, self.transitions):
            mods += [b.attention for b in stage if not isinstance(b.attention, nn.Identity)]
            if not isinstance(trans, nn.Identity):
                mods.append(trans)
        return mods
