"""The Vision Transformer (Dosovitskiy et al. 2021) at course size.

Notation: an image ``x`` of shape ``(B, C, H, W)`` is cut into ``N = (H / p) * (W / p)`` patches
of side ``p`` (a token grid of ``gh x gw``); with the class token there are ``T = N + 1`` tokens
of width ``D``, split over ``h`` heads of width ``d = D / h``.

- :class:`PatchEmbed`: one convolution with kernel = stride = ``p``, ``(B, C, H, W) -> (B, N, D)``.
- :class:`MultiHeadSelfAttention`: ``[Q, K, V] = X W_qkv + b``, per head
  ``A = softmax(Q K^T / sqrt(d))`` over the keys (rows sum to 1), ``Y = concat_heads(A V) W_o + b_o``.
  ``backend="explicit"`` writes these steps out and keeps ``A`` in ``last_attention``;
  ``backend="sdpa"`` calls ``F.scaled_dot_product_attention`` (fused, keeps no weights).
- :class:`EncoderBlock`: pre-LN, ``x = x + MHSA(LN(x)); x = x + MLP(LN(x))``, MLP = Linear, GELU,
  Linear.
- :class:`ViT`: tokens = [class token, patches] + learned position embeddings, ``depth``
  blocks, a final LN and a linear head on the class token.

Pitfalls this file is written around (see the chapter): ``F.scaled_dot_product_attention``
applies ``dropout_p`` even in eval mode, so the module passes ``p`` only while training;
``nn.MultiheadAttention`` returns head-*averaged* weights unless ``average_attn_weights=False``;
a hook on an explicit softmax never fires when the fused kernel runs. ``FlopCounterMode``
(``attn_lesson.cost``) counts the explicit path's matrix products; on the CPU this torch counts
the fused kernel as 0 FLOPs, so count FLOPs with ``backend="explicit"``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import _check_positive_int

BACKENDS = ("explicit", "sdpa")
STEMS = ("patch", "conv")


def _check_dropout(p) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {p!r}")


def _check_backend(backend) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _check_heads(dim, heads) -> None:
    _check_positive_int("dim", dim)
    _check_positive_int("heads", heads)
    if dim % heads:
        raise ValueError(f"dim ({dim}) must be divisible by heads ({heads}); choose heads among "
                         f"{[h for h in range(1, dim + 1) if dim % h == 0]}")


def _check_tokens(x, dim: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != dim:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of tokens of shape (B, T, {dim}), got {shape}")


def mhsa_flops(tokens: int, dim: int) -> int:
    """FLOPs of one :class:`MultiHeadSelfAttention` on one image, counted like
    ``attn_lesson.cost`` (2 per multiply-add; biases, scaling and softmax not counted)::

        2 T D 3D  (qkv)  +  2 T T D  (Q K^T)  +  2 T T D  (A V)  +  2 T D D  (output projection)
        = 8 T D^2 + 4 T^2 D

    The head count does not enter: ``h`` heads of width ``d = D / h`` cost ``h * 2 T T d = 2 T T D``.
    """
    _check_positive_int("tokens", tokens)
    _check_positive_int("dim", dim)
    return 8 * tokens * dim * dim + 4 * tokens * tokens * dim


class PatchEmbed(nn.Module):
    """``(B, C, H, W) -> (B, N, D)``: a ``Conv2d(C, D, kernel=p, stride=p)`` (one linear map of
    each flattened ``p x p x C`` patch), then the ``gh x gw`` grid flattened in row-major order."""

    def __init__(self, in_channels: int, dim: int, patch: int):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("dim", dim), ("patch", patch)):
            _check_positive_int(name, v)
        self.in_channels, self.patch = in_channels, patch
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W), got {shape}")
        if x.shape[-2] % self.patch or x.shape[-1] % self.patch:
            raise ValueError(f"the input's height and width must be divisible by patch={self.patch}, "
                             f"got an input of shape {tuple(x.shape)}")
        return self.proj(x).flatten(2).transpose(1, 2)


class MultiHeadSelfAttention(nn.Module):
    r"""Multi-head self-attention on ``(B, T, D)`` tokens.

    ``qkv`` (one ``Linear(D, 3D)``) gives ``Q, K, V``, each split into ``h`` heads ``(B, h, T, d)``;
    :math:`A = \mathrm{softmax}(QK^\top/\sqrt d)` ``(B, h, T, T)``, rows over the keys;
    ``Y = proj(concat_h(A V))``. ``dropout`` drops attention weights while training only.
    ``backend="explicit"``: ``last_attention`` holds ``A`` (detached, before dropout) after each
    forward and ``softmax`` is a module a hook can watch; ``backend="sdpa"``: the fused
    ``F.scaled_dot_product_attention``, ``last_attention = None`` and ``softmax`` is never called.
    The backend may be switched on a built module (``m.backend = "explicit"``); weights are shared.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, backend: str = "explicit"):
        super().__init__()
        _check_heads(dim, heads)
        _check_dropout(dropout)
        _check_backend(backend)
        self.dim, self.heads, self.head_dim, self.backend = dim, heads, dim // heads, backend
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)
        self.attn_drop = nn.Dropout(dropout)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_tokens(x, self.dim)
        _check_backend(self.backend)
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.backend == "sdpa":
            p = self.attn_drop.p if self.training else 0.0       # sdpa ignores .eval()
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
            self.last_attention = None
        else:
            attn = self.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim))  # (B, h, T, T)
            self.last_attention = attn.detach()
            out = self.attn_drop(attn) @ v                                        # (B, h, T, d)
        return self.proj(out.transpose(1, 2).reshape(B, T, D))

    def to_torch(self) -> nn.MultiheadAttention:
        """An ``nn.MultiheadAttention(D, h, batch_first=True)`` holding copies of these weights
        (``in_proj`` = ``qkv``, ``out_proj`` = ``proj``): the same function of ``x``."""
        mha = nn.MultiheadAttention(self.dim, self.heads, dropout=self.attn_drop.p, batch_first=True)
        with torch.no_grad():
            mha.in_proj_weight.copy_(self.qkv.weight)
            mha.in_proj_bias.copy_(self.qkv.bias)
            mha.out_proj.weight.copy_(self.proj.weight)
            mha.out_proj.bias.copy_(self.proj.bias)
        return mha.to(self.qkv.weight.device)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, backend: str = "explicit") -> "MultiHeadSelfAttention":
        """The inverse of :meth:`to_torch`, for a batch-first ``nn.MultiheadAttention`` with one
        packed input projection with bias (query, key and value of the same width)."""
        if (not isinstance(mha, nn.MultiheadAttention) or not mha.batch_first
                or mha.in_proj_weight is None or mha.in_proj_bias is None):
            raise ValueError("mha must be an nn.MultiheadAttention(dim, heads, batch_first=True) "
                             f"with a packed, biased input projection, got {mha!r}")
        m = cls(mha.embed_dim, mha.num_heads, mha.dropout, backend)
        with torch.no_grad():
            m.qkv.weight.copy_(mha.in_proj_weight)
            m.qkv.bias.copy_(mha.in_proj_bias)
            m.proj.weight.copy_(mha.out_proj.weight)
            m.proj.bias.copy_(mha.out_proj.bias)
        return m.to(mha.in_proj_weight.device)


class EncoderBlock(nn.Module):
    """Pre-LN encoder block on ``(B, T, D)``: ``x = x + drop(MHSA(LN(x)))``;
    ``x = x + drop(W_2 GELU(W_1 LN(x)))`` with ``W_1: D -> mlp_dim``, ``W_2: mlp_dim -> D``."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0,
                 backend: str = "explicit"):
        super().__init__()
        _check_positive_int("mlp_dim", mlp_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads, dropout, backend)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


def conv_stem(in_channels: int, dim: int, patch: int) -> nn.Sequential:
    """A convolutional stem with the patch grid's output (Xiao et al. 2021, "Early convolutions
    help transformers see better"): ``log2(p)`` 3x3 convolutions of stride 2 with batch norm and
    ReLU, widths doubling up to ``D`` (``D/4, D/2, D`` for ``p = 8``), then a 1x1 convolution to
    ``D``. ``(B, C, H, W) -> (B, D, H/p, W/p)``; ``p`` must be a power of two >= 2. Token ``i``
    is centred on pixel ``p * i`` (``anchor="stride"`` in :mod:`attn_lesson.maps`)."""
    _check_positive_int("patch", patch)
    if patch < 2 or patch & (patch - 1):
        raise ValueError(f"stem='conv' needs patch to be a power of two >= 2 (one stride-2 "
                         f"convolution per halving), got patch={patch}")
    n = patch.bit_length() - 1
    layers, cin = [], in_channels
    for i in range(n):
        cout = max(1, dim >> (n - 1 - i))
        layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*layers, nn.Conv2d(cin, dim, 1))


class ViT(nn.Module):
    """Vision Transformer: ``z_0 = [c; E(x)] + P``, ``z_l = Block_l(z_{l-1})``, logits =
    ``head(LN(z_L)[:, 0])``.

    ``E`` is :class:`PatchEmbed` (``stem="patch"``) or :func:`conv_stem` (``stem="conv"``, the
    hybrid arm); both give the same ``gh x gw = (H/p) x (W/p)`` token grid (``grid``). The class
    token ``c`` starts at zeros (as in the ViT authors' code); the position embeddings ``P``
    ``(1, T, D)`` and every Linear weight start truncated-normal with std 0.02, Linear biases at
    zero. ``anchor`` is where token cells sit on the image, for :func:`attn_lesson.maps.upsample`.
    ``dropout`` is applied after ``+ P``, to attention weights, inside the MLP and on each
    residual branch, while training only.
    """

    def __init__(self, image_size=(40, 40), patch: int = 8, in_channels: int = 1, dim: int = 64,
                 depth: int = 4, heads: int = 4, mlp_dim: int = 128, num_classes: int = 10,
                 dropout: float = 0.0, stem: str = "patch", backend: str = "explicit"):
        super().__init__()
        if isinstance(image_size, int) and not isinstance(image_size, bool):
            image_size = (image_size, image_size)
        if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in image_size)):
            raise ValueError(f"image_size must be a positive int or a (height, width) pair, got {image_size!r}")
        for name, v in (("patch", patch), ("in_channels", in_channels), ("depth", depth),
                        ("num_classes", num_classes)):
            _check_positive_int(name, v)
        _check_heads(dim, heads)
        _check_positive_int("mlp_dim", mlp_dim)
        _check_dropout(dropout)
        _check_backend(backend)
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        H, W = image_size
        if H % patch or W % patch:
            raise ValueError(f"image_size {tuple(image_size)} must be divisible by patch={patch}")
        self.image_size, self.patch, self.in_channels, self.stem_kind = (H, W), patch, in_channels, stem
        self.grid = (H // patch, W // patch)
        self.num_tokens = self.grid[0] * self.grid[1] + 1
        self.anchor = "centre" if stem == "patch" else "stride"
        self.embed = (PatchEmbed(in_channels, dim, patch) if stem == "patch"
                      else conv_stem(in_channels, dim, patch))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.empty(1, self.num_tokens, dim))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, mlp_dim, dropout, backend)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, T, D)``: the final-LN tokens, class token first."""
        if (not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels
                or tuple(x.shape[-2:]) != self.image_size):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.in_channels}, {self.image_size[0]}, "
                             f"{self.image_size[1]}) (the ViT's in_channels and image_size), got {shape}")
        z = self.embed(x)
        if z.dim() == 4:                                   # conv stem: (B, D, gh, gw)
            z = z.flatten(2).transpose(1, 2)
        z = torch.cat([self.cls_token.expand(z.shape[0], -1, -1), z], 1)
        z = self.pos_drop(z + self.pos_embed)
        for block in self.blocks:
            z = block(z)
        return self.norm(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tokens(x)[:, 0])

    def set_backend(self, backend: str) -> "ViT":
        """Switch every block's attention to ``"explicit"`` or ``"sdpa"`` (weights unchanged)."""
        _check_backend(backend)
        for block in self.blocks:
            block.attn.backend = backend
        return self

    def attention_maps(self) -> list[torch.Tensor]:
        """The attention weights of the last forward, one ``(B, h, T, T)`` tensor per layer."""
        maps = [block.attn.last_attention for block in self.blocks]
        if any(m is None for m in maps):
            raise ValueError("no attention weights stored: run a forward pass with the explicit "
                             "backend first (model.set_backend('explicit'); sdpa keeps none)")
        return maps

    def position_similarity(self) -> torch.Tensor:
        """``(N, N)`` cosine similarity of the patch tokens' position embeddings (class token
        excluded); row ``i`` reshaped to ``grid`` shows which positions token ``i`` resembles."""
        p = F.normalize(self.pos_embed.detach()[0, 1:], dim=-1)
        return p @ p.T
