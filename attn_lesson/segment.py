"""Segmentation: a small fully convolutional network with DANet's dual-attention head.

:class:`DigitFCN` labels every pixel of a Cluttered Digits image (``0`` background and clutter,
``1 + class`` on the digit's ink, :attr:`attn_lesson.data.DigitSet.segmentation`):

* **encoder**: the stem and residual stages of :class:`~attn_lesson.models.ResNetBackbone`
  (its pooling and classifier are dropped). By default a stride-2 stem and two stages (16 and 32
  channels) turn a 40x40 image into a 10x10 map (output stride 4, ``N = 100`` positions); three
  stages behind a stride-1 stem give the same stride at about five times the cost.
* **head** (:class:`DualAttentionHead`, after Fu et al. 2019): two parallel branches, each
  ``conv3x3-BN-ReLU -> attention -> conv3x3-BN-ReLU``, summed. The position branch's attention
  is DANet's PAM (:class:`~attn_lesson.selfattn.SelfAttention2d`, ``reduction=8``), the channel
  branch's is its CAM (:class:`~attn_lesson.selfattn.ChannelAttention2d`). ``head="pam"`` or
  ``"cam"`` keeps only one of them, ``"none"`` neither: the two branches and their convolutions
  are always there, so the four heads differ *only* by the attention modules.
* **classifier**: a 1x1 convolution to ``num_classes`` logits per position, then bilinear
  upsampling to the input's size, ``(B, num_classes, H, W)``, with every cell anchored where the
  encoder's strided convolutions centre it (cell ``i`` on pixel ``4 i``,
  :func:`attn_lesson.maps.upsample` with ``anchor="stride"``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .maps import upsample
from .models import ResNetBackbone, conv_bn_relu
from .models import _check_map, _check_positive_int
from .selfattn import CAM_MODES, ChannelAttention2d, SelfAttention2d

HEADS = ("none", "pam", "cam", "danet")


class DualAttentionHead(nn.Module):
    r"""DANet's head: :math:`\mathbf{F} = g_p(\mathrm{PAM}(f_p(\mathbf{X}))) +
    g_c(\mathrm{CAM}(f_c(\mathbf{X})))`, with :math:`f, g` conv3x3-BN-ReLU.

    Parameters
    ----------
    channels : channels of the encoder's map ``X``.
    inter : channels inside the branches (the output has ``inter`` channels too).
    pam, cam : whether the position / channel branch has its attention module; a branch without
        it keeps its two convolutions (``nn.Identity`` in the module's place).
    pam_reduction : queries and keys of the PAM have ``inter / pam_reduction`` channels.
    cam_mode : ``"paper"`` or ``"official"`` (see :class:`ChannelAttention2d`).
    """

    def __init__(self, channels: int, inter: int, *, pam: bool = True, cam: bool = True,
                 pam_reduction: int = 8, cam_mode: str = "paper"):
        super().__init__()
        _check_positive_int("channels", channels)
        _check_positive_int("inter", inter)
        _check_positive_int("pam_reduction", pam_reduction)
        if pam and inter % pam_reduction:
            raise ValueError(f"inter ({inter}) must be divisible by pam_reduction ({pam_reduction})")
        self.reduce_p, self.reduce_c = conv_bn_relu(channels, inter), conv_bn_relu(channels, inter)
        self.pam = SelfAttention2d(inter, pam_reduction) if pam else nn.Identity()
        self.cam = ChannelAttention2d(inter, cam_mode) if cam else nn.Identity()
        self.post_p, self.post_c = conv_bn_relu(inter, inter), conv_bn_relu(inter, inter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map(x, self.reduce_p[0].in_channels)
        return self.post_p(self.pam(self.reduce_p(x))) + self.post_c(self.cam(self.reduce_c(x)))


class DigitFCN(nn.Module):
    """A fully convolutional network for per-pixel classes, with an optional DANet head.

    Parameters
    ----------
    in_channels : channels of the input images.
    num_classes : classes per pixel (11 for Cluttered Digits: background + 10 digits).
    widths, depths, stem_stride : the encoder (:class:`ResNetBackbone`'s arguments); the output
        stride is ``stem_stride * 2 ** (len(widths) - 1)`` (4 by default).
    head : ``"none"``, ``"pam"``, ``"cam"`` or ``"danet"`` (both), see :class:`DualAttentionHead`.
    head_channels : channels inside the head; ``None`` keeps the encoder's last width.
    pam_reduction : PAM's query/key reduction (8 in DANet).
    cam_mode : ``"paper"`` (default) or ``"official"`` CAM.

    ``forward`` returns logits ``(B, num_classes, H, W)`` at the input's size; ``.pam`` and
    ``.cam`` are the attention modules (``None`` when absent), which keep their last attention
    matrices (``last_attention``) for inspection.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 11,
                 widths: tuple[int, ...] = (16, 32), depths: tuple[int, ...] = (1, 1),
                 stem_stride: int = 2, head: str = "none", head_channels: int | None = None,
                 pam_reduction: int = 8, cam_mode: str = "paper"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if cam_mode not in CAM_MODES:
            raise ValueError(f"cam_mode must be one of {CAM_MODES}, got {cam_mode!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2 (background and one class), got {num_classes!r}")
        self.encoder = ResNetBackbone(in_channels, 1, widths, depths, stem_stride)  # checks its arguments
        del self.encoder.pool, self.encoder.head        # only the stem and the stages are used
        inter = self.encoder.widths[-1] if head_channels is None else head_channels
        if isinstance(inter, bool) or not isinstance(inter, int) or inter < 1:
            raise ValueError(f"head_channels must be a positive int or None, got {head_channels!r}")
        _check_positive_int("pam_reduction", pam_reduction)
        if head in ("pam", "danet") and inter % pam_reduction:
            raise ValueError(f"head_channels ({inter}) must be divisible by pam_reduction ({pam_reduction})")
        self.head_name, self.num_classes = head, num_classes
        self.head = DualAttentionHead(self.encoder.widths[-1], inter, pam=head in ("pam", "danet"),
                                      cam=head in ("cam", "danet"), pam_reduction=pam_reduction,
                                      cam_mode=cam_mode)
        self.classifier = nn.Conv2d(inter, num_classes, 1)

    @property
    def pam(self) -> SelfAttention2d | None:
        return None if isinstance(self.head.pam, nn.Identity) else self.head.pam

    @property
    def cam(self) -> ChannelAttention2d | None:
        return None if isinstance(self.head.cam, nn.Identity) else self.head.cam

    def attention_modules(self) -> list[nn.Module]:
        return [m for m in (self.pam, self.cam) if m is not None]

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder's maps (``"stem"``, ``"stage1"``, ...) and the head's output ``"head"``."""
        out = self.encoder.features(x)
        out["head"] = self.head(out[f"stage{len(self.encoder.stages)}"])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map(x, self.encoder.stem[0].in_channels)
        h = self.head(self.encoder.features(x)[f"stage{len(self.encoder.stages)}"])
        logits = self.classifier(h)                                     # (B, K, h, w)
        b, k = logits.shape[:2]
        up = upsample(logits.flatten(0, 1), x.shape[-2:], anchor="stride")   # cell i -> pixel 4i
        return up.view(b, k, *x.shape[-2:])

    def extra_repr(self) -> str:
        return f"head={self.head_name!r}, num_classes={self.num_classes}"


class DilatedHeadFCN(DigitFCN):
    """:class:`DigitFCN` whose head convolutions are dilated by ``head_dilation``: the same
    output stride and the same parameters, a larger receptive field, no attention.

    A control that separates *resolution* from *receptive field*: with a stride-1 stem the
    head of :class:`DigitFCN` sees 21 px; with ``head_dilation=4`` its two 3x3 convolutions in
    each branch see as far as the stride-4 network's head does and further
    (:func:`attn_lesson.maps.receptive_field` measures it). Only ``head="none"`` is allowed: the
    point is a network without attention.
    """

    def __init__(self, *args, head_dilation: int = 2, **kwargs):
        super().__init__(*args, **kwargs)
        _check_positive_int("head_dilation", head_dilation)
        if self.head_name != "none":
            raise ValueError(f"DilatedHeadFCN is a control without attention: head must be 'none', "
                             f"got {self.head_name!r}")
        self.head_dilation = head_dilation
        for seq in (self.head.reduce_p, self.head.reduce_c, self.head.post_p, self.head.post_c):
            conv = seq[0]
            conv.dilation, conv.padding = (head_dilation, head_dilation), (head_dilation, head_dilation)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", head_dilation={self.head_dilation}"
