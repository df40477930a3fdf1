"""Plots used across chapters. Every function returns the matplotlib ``Figure``."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from .maps import upsample


def _np(x):
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _img(ax, image):
    a = _np(image)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    ax.imshow(np.clip(a, 0, 1), cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([]), ax.set_yticks([])


def _box(ax, box, color="tab:red"):
    x0, y0, x1, y1 = (float(v) for v in box)
    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                               edgecolor=color, linewidth=1.5))


def _grid(images, ncols: int, size: float):
    """A figure with one axis per image (images drawn); unused axes are switched off."""
    n = len(images)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        _img(ax, images[i])
    return fig, list(axes.flat[:n])


def show_images(images, labels=None, boxes=None, preds=None, *, ncols: int = 8,
                size: float = 1.6, title: str | None = None):
    """A grid of images with optional labels, predictions and ground-truth boxes."""
    fig, axes = _grid(images, ncols, size)
    for i, ax in enumerate(axes):
        if boxes is not None:
            b = _np(boxes[i])
            for bb in (b if b.ndim == 2 else [b]):
                _box(ax, bb)
        parts = []
        if labels is not None:
            parts.append(f"y={_np(labels[i]).astype(int).tolist()}")
        if preds is not None:
            parts.append(f"ŷ={_np(preds[i]).astype(int).tolist()}")
        if parts:
            wrong = (preds is not None and labels is not None
                     and not np.array_equal(_np(preds[i]).astype(int), _np(labels[i]).astype(int)))
            ax.set_title(" ".join(parts), fontsize=8, color="tab:red" if wrong else "black")
    if title:
        fig.suptitle(title)
    return fig


def overlay_attention(images, maps, boxes=None, *, ncols: int = 8, size: float = 1.6,
                      alpha: float = 0.5, cmap: str = "viridis", titles=None, title: str | None = None,
                      anchor: str = "stride", vmin=None, vmax=None, colorbar: bool = True,
                      cbar_label: str = "attention weight"):
    """Attention maps (any resolution, upsampled bilinearly with
    :func:`attn_lesson.maps.upsample`, ``anchor`` as there) drawn over their images.

    All panels share one colour scale (``vmin``/``vmax``, default: the smallest and largest
    value over all maps) and a perceptually uniform colour map, with a colour bar, so that a
    near-uniform map looks uniform instead of being stretched to full contrast."""
    images = torch.as_tensor(_np(images))
    maps = torch.as_tensor(_np(maps))
    if maps.dim() == 4:
        maps = maps[:, 0]
    if maps.shape[0] != images.shape[0]:
        raise ValueError(f"need one map per image, got {maps.shape[0]} maps for {images.shape[0]} images")
    h, w = images.shape[-2:]
    up = upsample(maps, (h, w), anchor=anchor)
    lo = float(up.min()) if vmin is None else float(vmin)
    hi = float(up.max()) if vmax is None else float(vmax)
    if not hi >= lo:
        raise ValueError(f"vmax must be >= vmin, got vmin={lo} and vmax={hi}")
    fig, axes = _grid(images, ncols, size)
    im = None
    for i, ax in enumerate(axes):
        im = ax.imshow(up[i].numpy(), cmap=cmap, alpha=alpha, vmin=lo, vmax=hi if hi > lo else lo + 1e-12)
        if boxes is not None:
            _box(ax, _np(boxes[i]), color="white")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if colorbar and im is not None:
        fig.colorbar(im, ax=axes, shrink=0.9, label=cbar_label, pad=0.01)
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(histories, *, metrics=("train_loss", "test_acc"), title: str | None = None,
                band: bool = False):
    """Learning curves, one panel per metric; runs with the same label share a colour.

    ``band=True`` draws one line per label instead, the mean over its runs, with a band of
    ± one standard deviation (the runs of a label must have the same number of epochs)."""
    histories = list(histories)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.4), squeeze=False)
    labels = list(dict.fromkeys(h.label for h in histories))
    colours = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
    for ax, metric in zip(axes.flat, metrics):
        seen = set()
        for lab in labels if band else []:
            ys = np.array([getattr(h, metric) for h in histories if h.label == lab], dtype=float)
            ep, m = np.arange(1, ys.shape[1] + 1), ys.mean(0)
            sd = ys.std(0, ddof=1) if len(ys) > 1 else np.zeros_like(m)
            ax.plot(ep, m, marker="o", ms=3, color=colours[lab], label=lab)
            ax.fill_between(ep, m - sd, m + sd, color=colours[lab], alpha=0.15)
        for h in [] if band else histories:
            ys = getattr(h, metric)
            ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, color=colours[h.label], alpha=0.8,
                    label=None if h.label in seen else h.label)
            seen.add(h.label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_errors(names, means, stds, *, ylabel: str = "test accuracy", points=None,
               title: str | None = None, ylim=None):
    """Bars of means with ± std error bars; ``points`` (one list per bar) adds each run."""
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.4))
    x = np.arange(len(names))
    ax.bar(x, means, yerr=stds, capsize=5, color=[plt.cm.tab10(i % 10) for i in x], alpha=0.75)
    if points is not None:
        for i, pts in enumerate(points):
            ax.scatter(np.full(len(pts), i) + np.linspace(-0.15, 0.15, len(pts)), pts,
                       color="black", s=12, zorder=3)
    ax.set_xticks(x, names, rotation=20 if len(names) > 4 else 0)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def heatmap_grid(arrays, *, row_labels=None, col_labels=None, cmap: str = "viridis",
                 size: float = 1.8, title: str | None = None, colorbar: bool = True, vmin=None,
                 vmax=None, xlabel="column index", ylabel="row index", cbar_label: str = "value"):
    """A grid of 2-D heatmaps; ``arrays`` is a nested list ``[row][col]`` or a 4-D array.

    Every panel keeps its index ticks and axis labels (``xlabel``/``ylabel``: one string, or
    one per column). All panels share one colour scale (``vmin``/``vmax``, default: the
    overall minimum and maximum), shown by a colour bar."""
    grid = [[_np(a) for a in row] for row in arrays]
    nrows, ncols = len(grid), max(len(r) for r in grid)
    for row in grid:
        for a in row:
            if a.ndim != 2:
                raise ValueError(f"every heatmap must be 2-D, got shape {a.shape}")
    values = np.concatenate([a.ravel() for row in grid for a in row])
    lo = float(values.min()) if vmin is None else float(vmin)
    hi = float(values.max()) if vmax is None else float(vmax)
    xl = xlabel if isinstance(xlabel, (list, tuple)) else [xlabel] * ncols
    yl = ylabel if isinstance(ylabel, (list, tuple)) else [ylabel] * ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 1.0, size * nrows + 0.6),
                             squeeze=False, layout="constrained")
    im = None
    for i in range(nrows):
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(grid[i]):
                ax.axis("off")
                continue
            im = ax.imshow(grid[i][j], cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
            ax.tick_params(labelsize=7)
            ax.set_xlabel(xl[j], fontsize=8)
            label = yl[j]
            if row_labels is not None and j == 0:
                label = f"{row_labels[i]}\n{label}"
            ax.set_ylabel(label, fontsize=8)
            if col_labels is not None and i == 0:
                ax.set_title(str(col_labels[j]), fontsize=9)
    if colorbar and im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=cbar_label)
    if title:
        fig.suptitle(title)
    return fig
