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


# ----------------------------------------------------------------------------------------
# Attention to scale (Chen et al. 2016)
# ----------------------------------------------------------------------------------------
MERGES = ("none", "mean", "max", "attention")
F = nn.functional          # (bound here, not imported above, so that DigitFCN's source is unchanged)


def _cell_coords(n_out: int, scale: float, stride: int, n_cells: int, out_stride: int = 1,
                 device=None) -> torch.Tensor:
    """Where the output positions ``0..n_out-1`` (centred on original pixels ``out_stride * j``)
    fall on the cell grid of a trunk that ran on the input resized by ``scale``: pixel ``i`` of
    the resized input is centred on original pixel ``(i + 0.5) / scale - 0.5``
    (``F.interpolate(..., align_corners=False)``) and trunk cell ``k`` on its pixel ``stride * k``,
    so original pixel ``p`` sits at cell ``((p + 0.5) * scale - 0.5) / stride``. Returned in the
    normalised units of ``grid_sample(..., align_corners=True)``."""
    p = out_stride * torch.arange(n_out, dtype=torch.float32, device=device)
    u = ((p + 0.5) * scale - 0.5) / stride
    return 2 * u / (n_cells - 1) - 1 if n_cells > 1 else torch.zeros_like(u)


def resample_cells(maps: torch.Tensor, size, scale: float, stride: int,
                   out_stride: int = 1) -> torch.Tensor:
    """Bilinear resampling of a trunk's cell maps ``(B, C, h, w)``, computed on the input resized
    by ``scale``, onto a common grid ``size`` of the original image whose position ``j`` is
    centred on original pixel ``out_stride * j`` (``out_stride=1``: every pixel). Values beyond
    the outermost cells are held constant."""
    (H, W), (h, w) = size, maps.shape[-2:]
    gy = _cell_coords(H, scale, stride, h, out_stride, maps.device)
    gx = _cell_coords(W, scale, stride, w, out_stride, maps.device)
    gy, gx = torch.meshgrid(gy, gx, indexing="ij")
    grid = torch.stack([gx, gy], -1).expand(maps.shape[0], H, W, 2).to(maps.dtype)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)


class ScaleAttentionFCN(nn.Module):
    r"""Attention to scale (Chen et al. 2016): one shared FCN on several resized copies of the
    image, its per-scale score maps merged pixel by pixel.

    For scales :math:`s\in\mathcal{S}` the trunk (a :class:`DigitFCN` without attention head)
    gives score maps :math:`f^s\in\mathbb{R}^{K\times H\times W}` (class logits, resampled to the
    input's size). The merged map at pixel :math:`i` and class :math:`c` is

    * ``"mean"``: :math:`g_{i,c}=\frac{1}{|\mathcal{S}|}\sum_s f^s_{i,c}` (average pooling over scales);
    * ``"max"``: :math:`g_{i,c}=\max_s f^s_{i,c}` (max pooling over scales);
    * ``"attention"``: :math:`g_{i,c}=\sum_s w^s_i f^s_{i,c}`, with
      :math:`w^s_i=\exp(h^s_i)/\sum_t\exp(h^t_i)` (a softmax over scales at every pixel); the
      logits :math:`h` come from a small head (conv3x3-BN-ReLU to ``attention_channels``, conv1x1
      to one map per scale) on
      the concatenated per-scale features of the trunk, resampled to the first scale's cell grid;
    * ``"none"``: a single scale, :math:`g=f^s` (the baseline; with scale 1 it is the trunk).

    Parameters
    ----------
    scales : distinct resize factors in ``(0, 1]``; the first one's cell grid hosts the
        attention head (put 1 first).
    merge : ``"attention"``, ``"mean"``, ``"max"``, or ``"none"`` (only with one scale).
    extra_supervision : add one cross-entropy per scale to the merged one in :meth:`objective`.
    attention_channels : width of the attention head's hidden layer.
    in_channels, num_classes, widths, depths, stem_stride, head_channels : the trunk
        (:class:`DigitFCN`'s arguments).

    ``forward`` returns the merged logits ``(B, K, H, W)``; :meth:`scale_outputs` also the
    per-scale ones ``(B, S, K, H, W)`` and the weights ``(B, S, H, W)`` (attention) or ``None``.
    After every forward pass ``last_weights`` holds the weights (detached), ``None`` without
    attention.
    """

    def __init__(self, scales=(1.0, 0.5), merge: str = "attention", extra_supervision: bool = False,
                 attention_channels: int = 16, in_channels: int = 1, num_classes: int = 11,
                 widths: tuple[int, ...] = (16, 32), depths: tuple[int, ...] = (1, 1),
                 stem_stride: int = 2, head_channels: int | None = None):
        super().__init__()
        if isinstance(scales, (int, float)) or not isinstance(scales, (tuple, list)) or not scales:
            raise ValueError(f"scales must be a non-empty tuple of numbers in (0, 1], got {scales!r}")
        if any(isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales must be numbers in (0, 1], got {scales!r}")
        if len(set(scales)) != len(scales):
            raise ValueError(f"scales must be distinct, got {scales!r}")
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
        if (merge == "none") != (len(scales) == 1):
            raise ValueError(f"merge='none' goes with exactly one scale and one scale with merge='none'; "
                             f"got merge={merge!r} with scales {tuple(scales)}")
        if not isinstance(extra_supervision, bool):
            raise ValueError(f"extra_supervision must be True or False, got {extra_supervision!r}")
        if extra_supervision and len(scales) == 1:
            raise ValueError("extra_supervision needs at least two scales (with one scale its "
                             f"per-scale loss is the merged loss), got scales {tuple(scales)}")
        _check_positive_int("attention_channels", attention_channels)
        self.scales, self.merge = tuple(float(s) for s in scales), merge
        self.extra_supervision = extra_supervision
        self.trunk = DigitFCN(in_channels, num_classes, tuple(widths), tuple(depths), stem_stride,
                              head="none", head_channels=head_channels)
        self.stride = stem_stride * 2 ** (len(self.trunk.encoder.widths) - 1)
        inter = self.trunk.classifier.in_channels
        self.attention = None
        if merge == "attention":
            self.attention = nn.Sequential(conv_bn_relu(len(self.scales) * inter, attention_channels),
                                           nn.Conv2d(attention_channels, len(self.scales), 1))
        self.last_weights: torch.Tensor | None = None

    def _trunk(self, x: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Head features and class logits of the trunk on ``x`` resized by ``scale``, on its cells."""
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        t = self.trunk
        feats = t.head(t.encoder.features(x)[f"stage{len(t.encoder.stages)}"])
        return feats, t.classifier(feats)

    def scale_outputs(self, x: torch.Tensor):
        """``(merged (B, K, H, W), per-scale logits (B, S, K, H, W), weights (B, S, H, W) or None)``."""
        _check_map(x, self.trunk.encoder.stem[0].in_channels)
        size = x.shape[-2:]
        feats, scores = zip(*(self._trunk(x, s) for s in self.scales))
        f = torch.stack([resample_cells(c, size, s, self.stride) for c, s in zip(scores, self.scales)], 1)
        weights = None
        if self.merge in ("none", "mean"):
            g = f.mean(1)
        elif self.merge == "max":
            g = f.amax(1)
        else:
            grid = feats[0].shape[-2:]               # the first scale's cells, stride apart
            s0 = self.scales[0]
            cat = torch.cat([resample_cells(a, grid, s / s0, self.stride, self.stride)
                             for a, s in zip(feats, self.scales)], 1)
            h = resample_cells(self.attention(cat), size, s0, self.stride)     # (B, S, H, W)
            weights = torch.softmax(h.float(), dim=1).to(f.dtype)              # over scales
            g = (weights.unsqueeze(2) * f).sum(1)
        self.last_weights = None if weights is None else weights.detach()
        return g, f, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale_outputs(x)[0]

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss and merged logits: the cross-entropy of the merged map, plus, with
        ``extra_supervision``, the cross-entropy of every scale's own map (equal weights)."""
        g, f, _ = self.scale_outputs(x)
        loss = F.cross_entropy(g.float(), y)
        if self.extra_supervision:
            loss = loss + sum(F.cross_entropy(f[:, k].float(), y) for k in range(f.shape[1]))
        return loss, g

    def attention_modules(self) -> list[nn.Module]:
        return [] if self.attention is None else [self.attention]

    def extra_repr(self) -> str:
        return (f"scales={self.scales}, merge={self.merge!r}, "
                f"extra_supervision={self.extra_supervision}")
