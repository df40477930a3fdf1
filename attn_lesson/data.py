"""Offline data for the course.

* :func:`cluttered_digits` renders **Cluttered Digits**: real handwritten digits from
  scikit-learn's bundled 8x8 set (no download), upscaled and placed on a larger canvas
  among clutter fragments cut from other digits. Every image comes with its label, the
  digit's ground-truth box and a mask of the digit's own pixels.
* :class:`BatchIterator` serves shuffled mini-batches from tensors that already live on
  the training device, with augmentation applied to whole batches at once.
* :func:`load_cifar10` reads CIFAR-10 in its own python format (download through
  torchvision when the network allows it; otherwise one clear error).
"""
from __future__ import annotations

import math
import pickle
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

GLYPH = 8  # side of a scikit-learn digit glyph, in pixels
TEST_FRACTION = 0.3
BOX_THRESHOLD = 0.1  # a canvas pixel belongs to the digit when its intensity exceeds this


# --------------------------------------------------------------------------- glyphs
_GLYPH_CACHE: dict[str, torch.Tensor] = {}


def _all_glyphs() -> tuple[torch.Tensor, torch.Tensor]:
    if "images" not in _GLYPH_CACHE:
        from sklearn.datasets import load_digits

        d = load_digits()
        _GLYPH_CACHE["images"] = torch.tensor(d.images, dtype=torch.float32) / 16.0
        _GLYPH_CACHE["labels"] = torch.tensor(d.target, dtype=torch.int64)
    return _GLYPH_CACHE["images"], _GLYPH_CACHE["labels"]


def glyph_pools() -> dict[str, torch.Tensor]:
    """Indices into scikit-learn's 1,797 digits for the ``train`` and ``test`` pools.

    The split is fixed (stratified by class, 30 % of each class to ``test``), so test
    images are always drawn in handwriting the model never saw during training.
    """
    _, labels = _all_glyphs()
    g = torch.Generator().manual_seed(20180618)
    train, test = [], []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(TEST_FRACTION * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return {"train": torch.sort(torch.cat(train)).values, "test": torch.sort(torch.cat(test)).values}


# --------------------------------------------------------------------------- dataset
@dataclass
class DigitSet:
    """A rendered set of Cluttered Digits.

    Attributes
    ----------
    images : float tensor ``(n, C, H, W)`` in ``[0, 1]``; ``C`` is 1, or 3 with ``colour``.
    labels : int64 ``(n,)``, or ``(n, k)`` with ``k = n_digits > 1`` (left to right).
    boxes  : float ``(n, 4)`` or ``(n, k, 4)`` as ``(x0, y0, x1, y1)`` in pixels,
             ``x1``/``y1`` exclusive: the tight box around the digit's own ink.
    masks  : bool ``(n, H, W)``: the pixels that belong to the digit(s), not the clutter.
    transforms : float ``(n, 2, 3)`` or ``(n, k, 2, 3)``: the ground-truth affine ``theta`` of
             each digit in the normalised coordinates of ``F.affine_grid`` (``align_corners=False``):
             ``F.grid_sample(images, F.affine_grid(theta, (n, C, 8, 8)))`` cuts the digit's 8x8
             glyph square out of the image, upright (the digit's *canonical view*).
    digits : int64 ``(n, k)`` or ``None``: the class of each digit, when ``labels`` is not it
             (the relational variant, whose label says whether the digits match).
    segmentation : int64 ``(n, H, W)`` or ``None``: ``0`` for background and clutter,
             ``1 + class`` on each digit's ink (a target for segmentation by class).
    """

    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor
    split: str
    params: dict = field(default_factory=dict)
    transforms: torch.Tensor | None = None
    digits: torch.Tensor | None = None
    segmentation: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def _map(self, fn) -> "DigitSet":
        opt = [None if t is None else fn(t) for t in (self.transforms, self.digits, self.segmentation)]
        return DigitSet(fn(self.images), fn(self.labels), fn(self.boxes), fn(self.masks),
                        self.split, dict(self.params), *opt)

    def to(self, device) -> "DigitSet":
        return self._map(lambda t: t.to(device))

    def subset(self, index) -> "DigitSet":
        return self._map(lambda t: t[index])

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return (f"DigitSet(split={self.split!r}, n={len(self)}, images={c}x{h}x{w}, "
                f"params={self.params})")


def _as_hw(canvas) -> tuple[int, int]:
    if isinstance(canvas, (int, np.integer)) and not isinstance(canvas, bool):
        h = w = int(canvas)
    elif isinstance(canvas, (tuple, list)) and len(canvas) == 2:
        h, w = (int(v) for v in canvas)
    else:
        raise ValueError(f"canvas must be an int or a (height, width) pair, got {canvas!r}")
    if h < GLYPH or w < GLYPH:
        raise ValueError(f"canvas must be at least {GLYPH} pixels on each side, got {(h, w)}")
    return h, w


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def _render(glyphs, gx0, gy0, size, x0, y0, scale, hw, angle=None):
    """Paint square windows of glyphs onto canvases, one per batch row.

    Row ``i`` copies the glyph window that starts at glyph pixel ``(gx0, gy0)`` and is
    ``size`` glyph pixels wide, scaled by ``scale`` and placed with its top-left corner at
    canvas pixel ``(x0, y0)``; bilinear resampling, zeros outside the window. With ``angle``
    (radians per row) the window is also rotated about its centre, clockwise on screen for a
    positive angle (the y axis points down); ``(x0, y0)`` is then the top-left corner of the
    unrotated window.
    """
    h, w = hw
    n = glyphs.shape[0]
    u = torch.arange(w, dtype=torch.float32).view(1, 1, w) + 0.5
    v = torch.arange(h, dtype=torch.float32).view(1, h, 1) + 0.5
    s = scale.view(n, 1, 1)
    if angle is None:
        lx = (u - x0.view(n, 1, 1)) / s  # position inside the window, in glyph pixels
        ly = (v - y0.view(n, 1, 1)) / s
    else:                                # undo the rotation about the window's centre
        half = (size * scale / 2).view(n, 1, 1)
        dx, dy = u - x0.view(n, 1, 1) - half, v - y0.view(n, 1, 1) - half
        cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
        lx = (cos * dx + sin * dy + half) / s
        ly = (-sin * dx + cos * dy + half) / s
    size = size.view(n, 1, 1)
    inside = (lx >= 0) & (lx < size) & (ly >= 0) & (ly < size)
    gx = (gx0.view(n, 1, 1) + lx).expand(n, h, w)
    gy = (gy0.view(n, 1, 1) + ly).expand(n, h, w)
    grid = torch.stack([(gx / GLYPH) * 2 - 1, (gy / GLYPH) * 2 - 1], dim=-1)
    out = F.grid_sample(glyphs.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)[:, 0]
    return out * inside


def _check_common(n, split, canvas, scale) -> tuple[int, tuple[int, int], tuple[float, float]]:
    """The arguments every Cluttered Digits generator shares: ``n``, ``split``, ``canvas`` and
    the ``scale`` range, checked; returns ``n``, ``(height, width)`` and ``(low, high)``."""
    n = _check_int("n", n, 1)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    hw = _as_hw(canvas)
    try:
        lo, hi = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a (low, high) pair of numbers, got {scale!r}") from None
    if not (0 < lo <= hi):
        raise ValueError(f"scale must satisfy 0 < low <= high, got low={lo}, high={hi}"
                         + (" (the range is reversed)" if lo > hi > 0 else ""))
    return n, hw, (lo, hi)


def _draw_digits(glyphs, rand, lo, hi, x_start, x_width, hw, rotation=None, y_start=0.0,
                 y_height=None):
    """Render one digit per row inside the columns ``[x_start, x_start + x_width)`` and the rows
    ``[y_start, y_start + y_height)`` (default: all rows), at a random scale in ``[lo, hi]``,
    height and horizontal position (and angle, if ``rotation`` is a ``(low, high)`` range in
    degrees). Returns the digit layer ``(n, H, W)``, the tight boxes of its ink ``(n, 4)`` and the
    true transforms ``(n, 2, 3)`` (see :class:`DigitSet`)."""
    h, w = hw
    y_height = h if y_height is None else y_height
    n = glyphs.shape[0]
    s = lo + (hi - lo) * rand(n)
    side = GLYPH * s
    if rotation is not None:
        rot_lo, rot_hi = rotation
        phi = torch.deg2rad(rot_lo + (rot_hi - rot_lo) * rand(n))
        ext = side * (phi.cos().abs() + phi.sin().abs())   # the rotated square's extent
        x0 = x_start + (x_width - ext) * rand(n) + (ext - side) / 2
        y0 = y_start + (y_height - ext) * rand(n) + (ext - side) / 2
    else:
        phi = torch.zeros(n)
        x0 = x_start + (x_width - side) * rand(n)
        y0 = y_start + (y_height - side) * rand(n)
    zeros = torch.zeros(n)
    layer = _render(glyphs, zeros, zeros, torch.full((n,), float(GLYPH)), x0, y0, s,
                    (h, w), angle=phi if rotation is not None else None)
    # canonical view -> image, normalised coordinates: centre c, half side L/2, rotation phi
    cx, cy = x0 + side / 2, y0 + side / 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0] = torch.stack([side * phi.cos() / w, -side * phi.sin() / w, 2 * cx / w - 1], 1)
    theta[:, 1] = torch.stack([side * phi.sin() / h, side * phi.cos() / h, 2 * cy / h - 1], 1)
    ink = layer > BOX_THRESHOLD
    rows, cols = ink.any(dim=2), ink.any(dim=1)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    big = 10**6
    box = torch.stack([torch.where(cols, ar_w, big).amin(1), torch.where(rows, ar_h, big).amin(1),
                       torch.where(cols, ar_w, -1).amax(1) + 1,
                       torch.where(rows, ar_h, -1).amax(1) + 1], 1).float()
    return layer, box, theta


def _add_clutter(img, g, pool, clutter, fragment, lo, hi, colours=None):
    """Paint ``clutter`` fragments (``fragment`` glyph pixels square, cut from random glyphs of
    ``pool`` and scaled like the digits) at random places of every image; ``colours(n)`` gives
    each fragment a colour, ``None`` paints grey."""
    n, channels, h, w = img.shape
    images_all, _ = _all_glyphs()
    for _ in range(clutter):
        pick = pool[torch.randint(len(pool), (n,), generator=g)]
        gx0 = torch.randint(GLYPH - fragment + 1, (n,), generator=g).float()
        gy0 = torch.randint(GLYPH - fragment + 1, (n,), generator=g).float()
        s = lo + (hi - lo) * torch.rand(n, generator=g)
        fside = fragment * s
        x0 = (w - fside) * torch.rand(n, generator=g)
        y0 = (h - fside) * torch.rand(n, generator=g)
        layer = _render(images_all[pick], gx0, gy0, torch.full((n,), float(fragment)), x0, y0, s, (h, w))
        col = colours(n) if colours is not None else torch.ones(n, 1)
        img = torch.maximum(img, layer.unsqueeze(1) * col.view(n, channels, 1, 1))
    return img


def cluttered_digits(n: int = 6000, split: str = "train", *, canvas=40,
                     scale: tuple[float, float] = (1.5, 2.5), clutter: int = 4,
                     fragment: int = 4, n_digits: int = 1, colour: bool = False,
                     rotation: tuple[float, float] = (0.0, 0.0), seed: int = 0) -> DigitSet:
    """Render ``n`` Cluttered Digits images, deterministically from ``seed``.

    Parameters
    ----------
    n : number of images.
    split : ``"train"`` or ``"test"``; digits and clutter come only from that glyph pool
        (see :func:`glyph_pools`), so test handwriting is unseen.
    canvas : canvas side in pixels, or ``(height, width)``.
    scale : ``(low, high)`` range of the upscaling factor of the 8x8 glyph; a digit's side
        is ``8 * scale`` pixels, drawn uniformly per image (default 12 to 20 pixels).
    clutter : number of clutter fragments per image (``0`` for clean digits).
    fragment : side, in glyph pixels (1 to 8), of the square cut from another digit for
        each clutter fragment; it is scaled like a digit.
    n_digits : digits per image, placed left to right in equal-width slots.
    colour : when ``True`` images have 3 channels and every digit / fragment gets its own
        random colour; otherwise 1 grey channel.
    rotation : ``(low, high)`` range, in degrees, of each digit's rotation about its centre
        (clockwise on screen for positive angles), drawn uniformly per image; ``(0, 0)`` keeps
        digits upright. With a rotation the digit is placed so that its rotated square stays
        on the canvas. Together with ``scale`` and the random position this gives the
        rotated-translated-scaled digits of the Spatial Transformer chapter; the true transform
        of every digit is returned in ``transforms``.
    seed : the same ``(seed, split, arguments)`` always give the same images.

    Besides images, labels, boxes, masks and transforms, the returned :class:`DigitSet` holds
    ``segmentation`` ``(n, H, W)``: ``0`` on background *and* clutter, ``1 + class`` on each
    digit's own ink (``segmentation > 0`` equals ``masks``), the target of per-pixel
    classification. Computing it draws no random numbers, so the images do not depend on it.
    """
    n, (h, w), (lo, hi) = _check_common(n, split, canvas, scale)
    clutter = _check_int("clutter", clutter, 0)
    fragment = _check_int("fragment", fragment, 1, GLYPH)
    n_digits = _check_int("n_digits", n_digits, 1)
    seed = _check_int("seed", seed, 0)
    try:
        rot_lo, rot_hi = (float(v) for v in rotation)
    except (TypeError, ValueError):
        raise ValueError(f"rotation must be a (low, high) pair of angles in degrees, "
                         f"got {rotation!r}") from None
    if rot_lo > rot_hi:
        raise ValueError(f"rotation must satisfy low <= high, got low={rot_lo:g}, high={rot_hi:g} "
                         "(the range is reversed)")
    if rot_hi - rot_lo > 360 or max(abs(rot_lo), abs(rot_hi)) > 180:
        raise ValueError(f"rotation angles must lie in [-180, 180] degrees, got ({rot_lo:g}, {rot_hi:g})")
    rotate = (rot_lo, rot_hi) != (0.0, 0.0)
    # widest extent of a rotated unit square, |cos| + |sin|, over the allowed angles: its
    # maxima sit at odd multiples of 45 degrees, so check those and the range's ends
    crit = [a for a in (-135.0, -45.0, 45.0, 135.0) if rot_lo <= a <= rot_hi] + [rot_lo, rot_hi]
    spread = max(abs(math.cos(math.radians(a))) + abs(math.sin(math.radians(a))) for a in crit)
    side_max = GLYPH * hi * spread
    slot_w = w / n_digits
    if side_max > h or side_max > slot_w:
        raise ValueError(
            f"canvas {h}x{w} is too small for {n_digits} digit(s) of up to {side_max:g} pixels "
            f"(8 * scale high={hi:g}" + (f", rotated up to {max(abs(rot_lo), abs(rot_hi)):g} degrees"
                                          if rotate else "")
            + f"); each digit needs a {side_max:g}x{side_max:g} slot, so use "
            f"height >= {math.ceil(side_max)} and width >= {math.ceil(side_max * n_digits)}, "
            f"or a smaller scale")

    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    images_all, labels_all = _all_glyphs()
    pool = glyph_pools()[split]
    channels = 3 if colour else 1

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    def colours(m):
        return 0.35 + 0.65 * rand(m, 3)

    img = torch.zeros(n, channels, h, w)
    digit_layer = torch.zeros(n, h, w)
    seg = torch.zeros(n, h, w, dtype=torch.int64)
    labels = torch.zeros(n, n_digits, dtype=torch.int64)
    boxes = torch.zeros(n, n_digits, 4)
    transforms = torch.zeros(n, n_digits, 2, 3)
    for k in range(n_digits):
        pick = pool[torch.randint(len(pool), (n,), generator=g)]
        labels[:, k] = labels_all[pick]
        layer, boxes[:, k], transforms[:, k] = _draw_digits(
            images_all[pick], rand, lo, hi, k * slot_w, slot_w, (h, w),
            (rot_lo, rot_hi) if rotate else None)
        digit_layer = torch.maximum(digit_layer, layer)
        seg = torch.where(layer > BOX_THRESHOLD, (1 + labels[:, k]).view(n, 1, 1), seg)  # own ink
        col = colours(n) if colour else torch.ones(n, 1)
        img = torch.maximum(img, layer.unsqueeze(1) * col.view(n, channels, 1, 1))
    masks = digit_layer > BOX_THRESHOLD
    img = _add_clutter(img, g, pool, clutter, fragment, lo, hi, colours if colour else None)
    if n_digits == 1:
        labels, boxes, transforms = labels[:, 0], boxes[:, 0], transforms[:, 0]
    params = dict(canvas=(h, w), scale=(lo, hi), clutter=clutter, fragment=fragment,
                  n_digits=n_digits, colour=colour, seed=seed)
    if rotate:
        params["rotation"] = (rot_lo, rot_hi)
    return DigitSet(img.contiguous(), labels, boxes, masks, split, params, transforms,
                    segmentation=seg)


def relational_digits(n: int = 6000, split: str = "train", *, canvas=(32, 96),
                      scale: tuple[float, float] = (1.0, 1.5), gap: int = 48, clutter: int = 4,
                      fragment: int = 4, p_same: float = 0.5, seed: int = 0,
                      row_gap: int | None = None) -> DigitSet:
    """Two digits far apart; the label says whether they are the same digit (1) or not (0).

    The left digit lies entirely in the columns ``[0, (W - gap) / 2)``, the right one in
    ``[(W + gap) / 2, W)``, so at least ``gap`` pixels separate them: a network whose units see
    fewer than ``gap + 2`` columns never sees ink of both in one receptive field. Both digits
    may sit at any height (``row_gap=None``), so they often share rows; with an int
    ``row_gap`` the left digit lies in the rows ``[0, (H - row_gap) / 2)`` and the right one in
    ``[(H + row_gap) / 2, H)`` (opposite corners: no row and no column holds ink of both). With
    probability ``p_same`` the right digit is another handwritten sample of the left digit's
    class (a different glyph whenever the pool has one), otherwise a sample of a different
    class drawn uniformly. Clutter fragments are scattered over the whole canvas.

    Returns a :class:`DigitSet` with ``labels`` ``(n,)`` (1 = same), ``digits`` ``(n, 2)`` (the
    two classes, left then right), ``boxes`` ``(n, 2, 4)``, ``transforms`` ``(n, 2, 2, 3)``,
    ``masks`` (both digits' ink) and ``segmentation`` (``1 + class`` on each digit's ink).
    ``(seed, split, arguments)`` determine the images.
    """
    n, (h, w), (lo, hi) = _check_common(n, split, canvas, scale)
    gap = _check_int("gap", gap, 0)
    clutter = _check_int("clutter", clutter, 0)
    fragment = _check_int("fragment", fragment, 1, GLYPH)
    seed = _check_int("seed", seed, 0)
    if isinstance(p_same, bool) or not isinstance(p_same, (int, float)) or not 0 <= p_same <= 1:
        raise ValueError(f"p_same must be a probability in [0, 1], got {p_same!r}")
    region = (w - gap) / 2
    side_max = GLYPH * hi
    if row_gap is not None:
        row_gap = _check_int("row_gap", row_gap, 0)
        rows = (h - row_gap) / 2
        if side_max > rows:
            raise ValueError(f"row_gap={row_gap} leaves {rows:g} rows for each digit on a canvas "
                             f"{h} high, too few for digits of up to {side_max:g} pixels; use a "
                             f"height >= {math.ceil(2 * side_max + row_gap)} or a smaller row_gap")
    if side_max > h or side_max > region:
        raise ValueError(
            f"canvas {h}x{w} with gap {gap} leaves {region:g} columns on each side, too few for "
            f"digits of up to {side_max:g} pixels (8 * scale high={hi:g}); use width >= "
            f"{math.ceil(2 * side_max + gap)} and height >= {math.ceil(side_max)}, a smaller gap "
            f"or a smaller scale")

    g = torch.Generator().manual_seed(seed * 2 + (split == "test") + 7919)
    images_all, labels_all = _all_glyphs()
    pool = glyph_pools()[split]
    by_class = [pool[labels_all[pool] == c] for c in range(10)]

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    left = pool[torch.randint(len(pool), (n,), generator=g)]
    same = rand(n) < p_same
    shift = torch.randint(1, 10, (n,), generator=g)             # a different class: +1 to +9 mod 10
    right_class = torch.where(same, labels_all[left], (labels_all[left] + shift) % 10)
    u = rand(n)
    right = torch.empty_like(left)
    for c in range(10):
        rows = (right_class == c).nonzero().flatten()
        if len(rows) == 0:
            continue
        cand = by_class[c]
        k = (u[rows] * len(cand)).long().clamp(max=len(cand) - 1)
        pick = cand[k]
        clash = same[rows] & (pick == left[rows]) & (len(cand) > 1)   # same class, other handwriting
        pick[clash] = cand[(k[clash] + 1) % len(cand)]
        right[rows] = pick
    img = torch.zeros(n, 1, h, w)
    seg = torch.zeros(n, h, w, dtype=torch.int64)
    boxes, transforms = torch.zeros(n, 2, 4), torch.zeros(n, 2, 2, 3)
    rows = {} if row_gap is None else {"y_height": (h - row_gap) / 2}
    for k, (pick, x_start) in enumerate(((left, 0.0), (right, (w + gap) / 2))):
        y_start = {} if row_gap is None or k == 0 else {"y_start": (h + row_gap) / 2}
        layer, boxes[:, k], transforms[:, k] = _draw_digits(images_all[pick], rand, lo, hi, x_start,
                                                            region, (h, w), **rows, **y_start)
        ink = layer > BOX_THRESHOLD
        seg[ink] = (1 + labels_all[pick]).view(n, 1, 1).expand(n, h, w)[ink]
        img = torch.maximum(img, layer.unsqueeze(1))
    masks = seg > 0
    img = _add_clutter(img, g, pool, clutter, fragment, lo, hi)
    params = dict(canvas=(h, w), scale=(lo, hi), gap=gap, clutter=clutter, fragment=fragment,
                  p_same=float(p_same), seed=seed, task="same digit",
                  **({} if row_gap is None else {"row_gap": row_gap}))
    digits = torch.stack([labels_all[left], labels_all[right]], 1)
    return DigitSet(img.contiguous(), same.long(), boxes, masks, split, params, transforms,
                    digits, seg)


# --------------------------------------------------------------------------- batches
def random_shift(max_shift: int = 2) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Augmentation: translate every image of a batch by its own random integer offset in
    ``[-max_shift, max_shift]`` pixels (zero fill). No flips: a mirrored digit is another
    symbol."""
    max_shift = _check_int("max_shift", max_shift, 0)

    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if max_shift == 0:
            return x
        b = x.shape[0]
        d = torch.randint(-max_shift, max_shift + 1, (2, b), generator=g).to(x.device)
        return _shift_batch(x, d[0], d[1], max_shift)

    augment.__doc__ = f"random_shift(max_shift={max_shift})"
    return augment


def random_crop_flip(pad: int = 4) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Augmentation for natural images (CIFAR-10): random ``pad``-pixel translation and a
    random horizontal flip per image, applied to the whole batch."""
    pad = _check_int("pad", pad, 0)

    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        d = torch.randint(-pad, pad + 1, (2, b), generator=g).to(x.device)
        flip = (torch.rand(b, generator=g) < 0.5).to(x.device)
        x = _shift_batch(x, d[0], d[1], pad) if pad else x
        return torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)

    return augment


def _shift_batch(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, pad: int) -> torch.Tensor:
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = torch.arange(h, device=x.device).view(1, h) + (pad - dy).view(b, 1)
    cols = torch.arange(w, device=x.device).view(1, w) + (pad - dx).view(b, 1)
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    out = xp[bi, :, rows.view(b, h, 1), cols.view(b, 1, w)]  # (b, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


class BatchIterator:
    """Mini-batches from tensors that stay on one device.

    ``images``/``labels`` are moved to ``device`` once. Each pass over the iterator is one
    epoch: a fresh permutation (when ``shuffle``) and, if given, ``augment(batch, generator)``
    applied to whole batches. Deterministic for a given ``seed``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128, *,
                 shuffle: bool = True, augment=None, drop_last: bool = False, seed: int = 0,
                 device=None):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"images and labels must have the same length, got "
                             f"{images.shape[0]} and {labels.shape[0]}")
        self.batch_size = _check_int("batch_size", batch_size, 1)
        device = torch.device(device) if device is not None else images.device
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.generator = torch.Generator().manual_seed(_check_int("seed", seed, 0))

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = self.images.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.images.device)
        else:
            order = None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min(n, (i + 1) * self.batch_size)
            if order is None:
                x, y = self.images[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                x, y = self.images[idx], self.labels[idx]
            if self.augment is not None:
                x = self.augment(x, self.generator)
            yield x, y


# --------------------------------------------------------------------------- CIFAR-10
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")


class DataUnavailableError(RuntimeError):
    """Raised when a dataset is neither on disk nor downloadable."""


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    data = np.asarray(d[b"data"], dtype=np.uint8)
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path} is not a CIFAR-10 batch: data shape {data.shape}, "
                         f"{len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(root="data", split: str = "train", *, download: bool = True,
                 limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 as ``(images, labels)``: float ``(n, 3, 32, 32)`` in ``[0, 1]``, int64 ``(n,)``.

    Looks for ``root/cifar-10-batches-py`` (the python version of the data set), then for the
    archive ``root/cifar-10-python.tar.gz`` (extracted in place), then, with ``download``,
    asks torchvision to fetch it. Without network this raises :class:`DataUnavailableError`
    saying how to get the data.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    folder = root / CIFAR_DIR
    archive = root / CIFAR_ARCHIVE
    if not folder.is_dir() and archive.is_file():
        with tarfile.open(archive, "r:gz") as tar:
            try:
                tar.extractall(root, filter="data")
            except TypeError:  # Python without tar extraction filters
                tar.extractall(root)
    if not folder.is_dir():
        if not download:
            raise DataUnavailableError(_cifar_help(root, "it is not on disk and download=False"))
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
        except Exception as exc:  # network errors surface as URLError / OSError / RuntimeError
            raise DataUnavailableError(_cifar_help(root, f"the download failed ({type(exc).__name__}: {exc})")) from exc
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [_read_cifar_batch(folder / name) for name in names]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return torch.from_numpy(x).float().div_(255), torch.from_numpy(y)


def _cifar_help(root: Path, why: str) -> str:
    return (f"CIFAR-10 is not available: {why}. Either run once with network access "
            f"(load_cifar10(download=True)), or download {CIFAR_ARCHIVE} from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and put it in {root.resolve()}/ "
            f"(the archive or its extracted {CIFAR_DIR}/ folder both work). The rest of the "
            f"course runs offline on Cluttered Digits.")
