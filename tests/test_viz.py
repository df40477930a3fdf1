"""Every plot helper returns a Figure and draws what it was given."""
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from attn_lesson import History, cluttered_digits
from attn_lesson.viz import bar_errors, heatmap_grid, overlay_attention, plot_curves, show_images


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _rects(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


@pytest.fixture(scope="module")
def digits():
    return cluttered_digits(6, seed=0)


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_show_images_with_boxes_and_predictions(digits):
    preds = digits.labels.clone()
    preds[0] = (preds[0] + 1) % 10  # one wrong prediction, drawn in red
    fig = show_images(digits.images, digits.labels, digits.boxes, preds, ncols=4, title="t")
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 8  # 2 rows x 4 columns, the last two switched off
    assert [len(_rects(ax)) for ax in axes[:6]] == [1] * 6
    assert not axes[6].axison and not axes[7].axison
    assert axes[0].get_title() == f"y={int(digits.labels[0])} ŷ={int(preds[0])}"
    assert axes[0].title.get_color() == "tab:red" and axes[1].title.get_color() == "black"
    x0, y0, x1, y1 = digits.boxes[2].tolist()
    r = _rects(axes[2])[0]
    assert r.get_width() == x1 - x0 and r.get_height() == y1 - y0


def test_show_images_multi_digit_boxes_and_colour():
    d = cluttered_digits(3, canvas=(24, 72), n_digits=3, colour=True, seed=1)
    preds = d.labels.clone()
    preds[1, 2] = (preds[1, 2] + 1) % 10
    fig = show_images(d.images, d.labels, d.boxes, preds, ncols=3)
    assert isinstance(fig, Figure)
    assert [len(_rects(ax)) for ax in fig.axes] == [3, 3, 3]
    # integer digit sequences, not floats; a sequence with one wrong digit is marked red
    assert fig.axes[0].get_title() == f"y={d.labels[0].tolist()} ŷ={d.labels[0].tolist()}"
    assert fig.axes[0].title.get_color() == "black"
    assert fig.axes[1].title.get_color() == "tab:red"


def test_show_images_numpy_without_labels():
    fig = show_images(np.random.rand(3, 10, 10))
    assert isinstance(fig, Figure) and len(fig.axes) == 8


@pytest.mark.parametrize("maps_shape", [(4, 5, 5), (4, 1, 5, 5), (4, 40, 40)])
def test_overlay_attention(digits, maps_shape):
    maps = torch.rand(maps_shape)
    fig = overlay_attention(digits.images[:4], maps, boxes=digits.boxes[:4], ncols=2,
                            titles=["a", "b", "c", "d"], title="maps")
    assert isinstance(fig, Figure) and len(fig.axes) == 5  # 4 panels + the colour bar
    ax = fig.axes[1]
    assert len(ax.images) == 2  # the image and the map over it
    overlay = ax.images[1]
    assert overlay.get_array().shape == (40, 40)  # upsampled to the image size
    assert overlay.get_cmap().name == "viridis"
    assert ax.get_title() == "b" and len(_rects(ax)) == 1
    assert fig.axes[-1].get_ylabel() == "attention weight"


def test_overlay_attention_shares_one_colour_scale(digits):
    # a near-uniform map and a peaked one: the near-uniform one must not be stretched
    flat = torch.full((5, 5), 0.04) + 0.001 * torch.rand(5, 5)
    peak = torch.zeros(5, 5)
    peak[2, 2] = 1.0
    fig = overlay_attention(digits.images[:2], torch.stack([flat, peak]))
    limits = {fig.axes[i].images[1].get_clim() for i in range(2)}
    assert len(limits) == 1
    lo, hi = limits.pop()
    assert lo == pytest.approx(0.0, abs=1e-6) and hi == pytest.approx(1.0, abs=1e-6)
    fig2 = overlay_attention(digits.images[:2], torch.stack([flat, peak]), vmin=0, vmax=0.5)
    assert fig2.axes[0].images[1].get_clim() == (0.0, 0.5)


def test_overlay_attention_constant_map(digits):
    fig = overlay_attention(digits.images[:2], torch.ones(2, 3, 3))
    assert np.isfinite(np.asarray(fig.axes[0].images[1].get_array())).all()


def test_overlay_attention_bad_input(digits):
    with pytest.raises(ValueError, match="one map per image"):
        overlay_attention(digits.images[:2], torch.rand(3, 5, 5))
    with pytest.raises(ValueError, match="vmax must be >= vmin"):
        overlay_attention(digits.images[:2], torch.rand(2, 5, 5), vmin=1, vmax=0)


def test_plot_curves():
    hs = [History("base", s, train_loss=[2.0, 1.5, 1.2], test_acc=[0.5, 0.6, 0.7]) for s in (0, 1)]
    hs.append(History("se", 0, train_loss=[2.1, 1.4, 1.0], test_acc=[0.4, 0.6, 0.75]))
    fig = plot_curves(hs, title="curves")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 3
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["base", "se"]
    assert fig.axes[0].lines[0].get_color() == fig.axes[0].lines[1].get_color()
    assert fig.axes[0].lines[0].get_color() != fig.axes[0].lines[2].get_color()
    assert list(fig.axes[1].lines[2].get_ydata()) == [0.4, 0.6, 0.75]
    fig3 = plot_curves(hs, metrics=("train_loss", "train_acc", "test_acc"))
    assert len(fig3.axes) == 3


def test_plot_curves_band_draws_the_mean_of_each_label():
    hs = [History("base", s, train_loss=[2.0, 1.5], test_acc=[0.5, 0.7 + 0.1 * s]) for s in (0, 1)]
    hs.append(History("se", 0, train_loss=[2.1, 1.4], test_acc=[0.4, 0.6]))
    fig = plot_curves(hs, band=True)
    lines = fig.axes[1].lines
    assert len(lines) == 2 and [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["base", "se"]
    assert np.allclose(lines[0].get_ydata(), [0.5, 0.75]) and np.allclose(lines[1].get_ydata(), [0.4, 0.6])
    assert len(fig.axes[1].collections) == 2                     # one band per label


def test_bar_errors_with_points():
    fig = bar_errors(["base", "se", "cbam"], [0.9, 0.91, 0.85], [0.01, 0.02, 0.03],
                     points=[[0.89, 0.9, 0.91], [0.9, 0.92], [0.84, 0.86, 0.85]],
                     title="acc", ylim=(0.8, 1.0))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 3
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.9, 0.91, 0.85])
    assert len(ax.collections) >= 3  # the scattered runs (plus error bars)
    assert ax.get_ylim() == (0.8, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "se", "cbam"]


def test_heatmap_grid_nested_and_array():
    arrays = [[np.random.rand(4, 4), torch.rand(4, 4)], [np.random.rand(4, 4)]]
    fig = heatmap_grid(arrays, row_labels=["r0", "r1"], col_labels=["c0", "c1"], title="h",
                       vmin=0, vmax=1, xlabel=["channel", "key"], ylabel="class")
    assert isinstance(fig, Figure)
    axes = fig.axes[:4]
    assert len(fig.axes) == 5  # 2x2 grid plus a colour bar
    assert axes[0].get_title() == "c0" and axes[0].get_ylabel() == "r0\nclass"
    assert axes[0].get_xlabel() == "channel" and axes[1].get_xlabel() == "key"
    assert len(axes[0].get_xticks()) > 0  # index ticks are kept
    assert not axes[3].axison  # the missing cell of the ragged second row
    fig2 = heatmap_grid(np.random.rand(2, 3, 5, 5), colorbar=False)
    assert len(fig2.axes) == 6 and all(len(ax.images) == 1 for ax in fig2.axes)
    assert fig2.axes[0].get_xlabel() == "column index"


def test_heatmap_grid_shares_one_scale_with_a_colour_bar():
    fig = heatmap_grid([[np.zeros((3, 3)), np.full((3, 3), 2.0)]], cbar_label="weight")
    assert {ax.images[0].get_clim() for ax in fig.axes[:2]} == {(0.0, 2.0)}
    assert fig.axes[-1].get_ylabel() == "weight"
    with pytest.raises(ValueError, match="must be 2-D"):
        heatmap_grid([[np.zeros((2, 3, 3))]])
