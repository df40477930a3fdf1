"""Spatial Transformer Networks (Jaderberg et al., NeurIPS 2015): attention that moves the input.

A :class:`SpatialTransformer` has three parts:

1. a **localisation network** that regresses the six numbers of an affine map ``theta``
   (``(B, 2, 3)``) from the input; its last layer starts at zero weights and the identity's
   bias, so at initialisation the transformer passes its input through unchanged;
2. a **grid generator**: ``F.affine_grid(theta, size)`` gives, for every output pixel, the
   point of the input (normalised coordinates in ``[-1, 1]``) it reads from;
3. a **sampler**: ``F.grid_sample`` reads the input there with bilinear interpolation.

:func:`affine_grid_by_hand` and :func:`sample_bilinear` spell out 2 and 3 with plain tensor
operations (the chapter derives them; tests check them against PyTorch's).
:class:`STNet` puts a transformer in front of chapter 2's backbone.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import ResNetBackbone
from .models import _check_map, _check_positive_int

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _pixel_centres(n: int, align_corners: bool) -> torch.Tensor:
    """Normalised coordinates of ``n`` pixel centres along one axis."""
    if align_corners:                    # -1 and +1 are the centres of the first and last pixel
        return torch.linspace(-1.0, 1.0, n) if n > 1 else torch.zeros(1)
    return (2 * torch.arange(n, dtype=torch.float32) + 1) / n - 1   # -1, +1 are the outer edges


def affine_grid_by_hand(theta: torch.Tensor, size, align_corners: bool = False) -> torch.Tensor:
    """``F.affine_grid`` written out: ``grid[b, i, j] = theta[b] @ (x_j, y_i, 1)``,
    shape ``(B, H, W, 2)`` with ``(x, y)`` in the last dimension."""
    b, _, h, w = size
    if theta.shape != (b, 2, 3):
        raise ValueError(f"theta must have shape (B, 2, 3) = ({b}, 2, 3), got {tuple(theta.shape)}")
    ys, xs = torch.meshgrid(_pixel_centres(h, align_corners), _pixel_centres(w, align_corners),
                            indexing="ij")
    base = torch.stack([xs, ys, torch.ones_like(xs)], -1).to(theta)     # (H, W, 3)
    return torch.einsum("hwk,bok->bhwo", base, theta)


def sample_bilinear(x: torch.Tensor, grid: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """``F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros")`` written out.

    Each output pixel reads the point ``grid[b, i, j] = (x, y)`` of the input: the point is
    converted to pixel units, and the four surrounding pixels are mixed with weights
    ``(1 - |dx|)(1 - |dy|)``; pixels outside the input count as 0.
    """
    if x.dim() != 4 or grid.dim() != 4 or grid.shape[-1] != 2 or grid.shape[0] != x.shape[0]:
        raise ValueError(f"expected x (B, C, H, W) and grid (B, H_out, W_out, 2) with the same B, "
                         f"got x {tuple(x.shape)} and grid {tuple(grid.shape)}")
    b, c, h, w = x.shape
    gx, gy = grid[..., 0], grid[..., 1]
    if align_corners:
        px, py = (gx + 1) / 2 * (w - 1), (gy + 1) / 2 * (h - 1)
    else:
        px, py = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
    x0, y0 = px.floor(), py.floor()
    out = x.new_zeros(b, c, *grid.shape[1:3])
    flat = x.reshape(b, c, h * w)
    for xi, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
        for yi, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
            valid = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().flatten(1)   # (B, N)
            vals = flat.gather(2, idx[:, None, :].expand(b, c, idx.shape[1]))
            out = out + (vals.view_as(out) * (wx * wy * valid)[:, None])
    return out


class SpatialTransformer(nn.Module):
    """Localisation net -> ``theta`` -> ``F.affine_grid`` -> ``F.grid_sample``.

    Parameters
    ----------
    in_channels : channels of the input.
    out_size : ``(H, W)`` of the output, or ``None`` for the input's size.
    hidden : channels of the localisation net's two conv layers and width of its hidden layer.
    norm : batch norm after each of the localisation net's convolutions (default). Without it,
        on images in ``[0, 1]`` the default initialisation gives small hidden features that vary
        little across images, so once the last layer's weights leave zero ``theta`` barely
        depends on the input at first (the chapter measures this at initialisation only; whether
        a trained net without it learns one transform for every image is not tested).
    align_corners : passed to ``affine_grid`` and ``grid_sample`` (``False``: -1 and +1 are the
        outer edges of the border pixels).

    After a forward pass ``last_theta`` holds ``theta`` (detached, ``(B, 2, 3)``).
    """

    def __init__(self, in_channels: int = 1, out_size: tuple[int, int] | None = None,
                 hidden: tuple[int, int, int] = (8, 16, 32), align_corners: bool = False,
                 norm: bool = True):
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        if out_size is not None and not isinstance(out_size, (tuple, list)):
            raise ValueError(f"out_size must be None or a (height, width) pair, got {out_size!r}")
        if out_size is not None:
            out_size = tuple(out_size)
            if len(out_size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                         for v in out_size):
                raise ValueError(f"out_size must be None or a (height, width) pair of positive "
                                 f"ints, got {out_size!r}")
        if not isinstance(hidden, (tuple, list)) or len(hidden) != 3:
            raise ValueError(f"hidden must be three positive ints (conv1, conv2, fc), got {hidden!r}")
        for v in hidden:
            _check_positive_int("each of hidden", v)
        if not isinstance(align_corners, bool) or not isinstance(norm, bool):
            raise ValueError(f"align_corners and norm must be True or False, got {align_corners!r} "
                             f"and {norm!r}")
        c1, c2, fc = hidden
        self.out_size, self.align_corners = out_size, align_corners
        def bn(c):
            return nn.BatchNorm2d(c) if norm else nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), bn(c1), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 5, padding=2), bn(c2), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4))
        self.regress = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 16, fc), nn.ReLU(inplace=True),
                                     nn.Linear(fc, 6))
        self.reset_to_identity()
        self.last_theta: torch.Tensor | None = None

    def reset_to_identity(self) -> None:
        """Zero weights and the identity's bias in the last layer: ``theta = I`` for every input."""
        last = self.regress[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(IDENTITY))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        return self.regress(self.features(x)).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map(x, self.features[0].in_channels)
        theta = self.theta(x)
        self.last_theta = theta.detach()
        size = (x.shape[0], x.shape[1], *(self.out_size or x.shape[-2:]))
        grid = F.affine_grid(theta, size, align_corners=self.align_corners)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=self.align_corners)


class STNet(nn.Module):
    """A :class:`SpatialTransformer` on the input, then chapter 2's backbone (``ResNetBackbone``
    keyword arguments in ``backbone``). ``out_size=None`` keeps the input's size; a smaller
    ``out_size`` with ``backbone={"stem_stride": 1}`` lets the transformer choose *which* part of
    the image the backbone sees at full resolution, for the same backbone cost.

    ``learn_theta=False`` freezes the localisation net at its initialisation, so ``theta`` stays
    the identity: the same network with a fixed resampling of the input (with ``out_size``
    half the input's size, a 2x2 average), the control that separates what the learned
    transform adds from what the changed input path adds."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *,
                 out_size: tuple[int, int] | None = None, backbone: dict | None = None,
                 norm: bool = True, learn_theta: bool = True):
        super().__init__()
        if not isinstance(learn_theta, bool):
            raise ValueError(f"learn_theta must be True or False, got {learn_theta!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if backbone is not None and not isinstance(backbone, dict):
            raise ValueError(f"backbone must be None or a dict of ResNetBackbone arguments, "
                             f"got {backbone!r}")
        self.st = SpatialTransformer(in_channels, out_size, norm=norm)
        self.st.requires_grad_(learn_theta)
        self.learn_theta = learn_theta
        self.backbone = ResNetBackbone(in_channels, num_classes, **(backbone or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.st(x))

    def attention_modules(self) -> list[nn.Module]:
        return [self.st]
