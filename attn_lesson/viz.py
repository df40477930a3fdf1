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


def forest(items, *, margin: float | None = None, title: str | None = None):
    """A forest plot of comparisons: per row, the difference (dot), its 95 % interval (thin
    line) and the 90 % interval behind the equivalence test (thick; drawn for every row, with or
    without a margin, from the comparison's degrees of freedom and standard error), in points, with the
    ``±margin`` band (a fraction, e.g. 0.005 for ±0.5 points) when given.

    ``items``: ``[(label, comparison)]`` with comparisons from :func:`attn_lesson.compare`."""
    from scipy.stats import t as student_t

    items = list(items)
    if not items or any(not hasattr(c, "ci_low") for _, c in items):
        raise ValueError("items must be a non-empty list of (label, Comparison) pairs")
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(items) + 1.5))
    for i, (label, c) in enumerate(items):
        half = student_t.ppf(1 - c.alpha, c.df) * c.se       # the (1 - 2 alpha) interval TOST uses
        ax.plot([100 * c.ci_low, 100 * c.ci_high], [i, i], color="k", lw=1.2,
                label="95 % interval" if i == 0 else None)
        ax.plot([100 * (c.diff - half), 100 * (c.diff + half)], [i, i], color="tab:blue", lw=6, alpha=0.5,
                label="90 % interval (equivalence test)" if i == 0 else None)
        ax.plot(100 * c.diff, i, "ko", ms=4)
    ax.axvline(0, color="grey", lw=0.8)
    if margin is not None:
        ax.axvspan(-100 * margin, 100 * margin, color="tab:green", alpha=0.12,
                   label=f"equivalence margin ±{100 * margin:.1f} points")
    ax.set_yticks(range(len(items)), [label for label, _ in items])
    ax.set_xlabel("difference in test accuracy (points)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylim(len(items) - 0.5, -0.5)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def map_panel(images, boxes, maps: dict, *, size: float = 1.5, cmap: str = "viridis"):
    """One row per image: the image with its box, then every map of ``maps`` over it.

    ``maps``: ``{name: (maps (B, h, w), anchor)}`` (as :func:`attn_lesson.maps.module_maps`
    returns them; a Grad-CAM or gradient map at the input's size uses ``"stride"``). Each panel
    is scaled to its own map's range (maps of different kinds have different units) and
    titled with its energy gain (share of the map's mass in the box over the box's share of
    the image; 1 = chance)."""
    from .maps import box_area_fraction, box_energy

    images = torch.as_tensor(_np(images))
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    boxes = torch.as_tensor(_np(boxes)).float()
    if boxes.shape != (images.shape[0], 4):
        raise ValueError(f"boxes must be (B, 4) = ({images.shape[0]}, 4), got {tuple(boxes.shape)}")
    if not isinstance(maps, dict):
        raise ValueError(f"maps must be a dict of name -> (maps, anchor), got {type(maps).__name__}")
    H, W = images.shape[-2:]
    n, k = images.shape[0], len(maps) + 1
    fig, axes = plt.subplots(n, k, figsize=(size * k, size * n + 0.4), squeeze=False, layout="constrained")
    chance = box_area_fraction(boxes, (H, W))
    for r in range(n):
        _img(axes[r, 0], images[r])
        _box(axes[r, 0], boxes[r])
        if r == 0:
            axes[r, 0].set_title("image", fontsize=8)
    for c, (name, (m, anchor)) in enumerate(maps.items(), start=1):
        m = torch.as_tensor(_np(m)).float()
        if m.shape[0] != n:
            raise ValueError(f"maps[{name!r}] has {m.shape[0]} maps for {n} images")
        up = upsample(m, (H, W), anchor=anchor)
        gain = box_energy(m.clamp_min(0), boxes, (H, W), anchor=anchor) / chance
        for r in range(n):
            ax = axes[r, c]
            _img(ax, images[r])
            ax.imshow(up[r].numpy(), cmap=cmap, alpha=0.6)
            _box(ax, boxes[r], color="white")
            ax.set_title((f"{name}\n" if r == 0 else "") + f"gain {float(gain[r]):.2f}", fontsize=7)
    return fig


class Explorer:
    """Pick a module, an image and a randomisation step; see that model's maps over the image.

    ``models``: ``{name: model}``; ``images`` ``(B, C, H, W)`` and ``boxes`` ``(B, 4)``.
    :meth:`draw` returns the figure for one choice (what the widget shows, usable without a
    display); :meth:`widget` builds the ipywidgets controls (Jupyter and Colab). The maps are
    each model's own (:func:`attn_lesson.maps.module_maps`), Grad-CAM where the model has
    stages, and the plain gradient, each titled with its energy gain."""

    def __init__(self, models: dict, images, boxes, *, seed: int = 0):
        if not isinstance(models, dict) or not models:
            raise ValueError("models must be a non-empty dict of name -> model")
        self.models, self.images, self.boxes, self.seed = models, images, boxes, seed

    def steps(self, name: str) -> list[str]:
        from .sanity import randomisation_order
        return ["trained"] + [f"randomised down to {b}" for b in randomisation_order(self.models[name])]

    def maps(self, name: str, image: int, step: str = "trained") -> dict:
        from .maps import module_maps
        from .sanity import gradcam_map, gradient_map, randomisation_order, randomised

        if name not in self.models:
            raise ValueError(f"name must be one of {list(self.models)}, got {name!r}")
        if not 0 <= image < len(self.images):
            raise ValueError(f"image must be in [0, {len(self.images)}), got {image!r}")
        if step not in self.steps(name):
            raise ValueError(f"step must be one of {self.steps(name)}, got {step!r}")
        model = self.models[name]
        if step != "trained":
            order = randomisation_order(model)
            k = order.index(step.removeprefix("randomised down to ")) + 1
            model = randomised(model, order[:k], seed=self.seed)
        param = next(model.parameters(), None)               # the images go where the model is
        x = self.images[image:image + 1].to(param.device if param is not None else "cpu")
        b = self.boxes[image:image + 1]
        out = dict(module_maps(model, x, b))
        if hasattr(model, "stages"):
            out["Grad-CAM"] = (gradcam_map(model, x), "stride")
        out["gradient"] = (gradient_map(model, x), "stride")
        return out

    def draw(self, name: str, image: int, step: str = "trained"):
        fig = map_panel(self.images[image:image + 1].cpu(), self.boxes[image:image + 1],
                        self.maps(name, image, step))
        fig.suptitle(f"{name}: {step}", fontsize=9)
        return fig

    def widget(self):
        import ipywidgets as w
        from IPython.display import display

        first = next(iter(self.models))
        module = w.Dropdown(options=list(self.models), value=first, description="module")
        image = w.IntSlider(min=0, max=len(self.images) - 1, value=0, description="image")
        step = w.Dropdown(options=self.steps(first), value="trained", description="weights")
        out = w.Output()

        def redraw(*_):
            if step.value not in self.steps(module.value):
                step.options = self.steps(module.value)
                step.value = "trained"
                return
            with out:
                out.clear_output(wait=True)
                fig = self.draw(module.value, image.value, step.value)
                display(fig)
                plt.close(fig)

        for control in (module, image, step):
            control.observe(redraw, names="value")
        redraw()
        return w.VBox([w.HBox([module, image, step]), out])
