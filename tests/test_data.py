"""Cluttered Digits: determinism, glyph pools, boxes and masks, knobs, speed, errors."""
import time

import pytest
import torch

import attn_lesson.data as data_mod
import attn_lesson as al
from attn_lesson import DigitSet, cluttered_digits, glyph_pools
from attn_lesson.data import BOX_THRESHOLD, GLYPH

N_GLYPHS = 1797


def _box_mask(boxes, h, w):
    """Bool (n, h, w): pixels inside each (x0, y0, x1, y1) box (x1, y1 exclusive)."""
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    b = boxes.view(-1, 4, 1, 1)
    return (xs >= b[:, 0]) & (xs < b[:, 2]) & (ys >= b[:, 1]) & (ys < b[:, 3])


@pytest.fixture(scope="module")
def train_set():
    return cluttered_digits(300, "train", seed=5)


@pytest.fixture(scope="module")
def clean_set():
    return cluttered_digits(300, "train", clutter=0, seed=6)


@pytest.fixture(scope="module")
def triple_set():
    return cluttered_digits(200, "test", canvas=(24, 72), n_digits=3, seed=7)


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_images():
    kw = dict(canvas=32, scale=(1.2, 2.0), clutter=3, fragment=3, seed=11)
    a = cluttered_digits(80, "test", **kw)
    b = cluttered_digits(80, "test", **kw)
    for name in ("images", "labels", "boxes", "masks"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_different_seed_or_split_differs():
    a = cluttered_digits(80, "train", seed=0)
    b = cluttered_digits(80, "train", seed=1)
    c = cluttered_digits(80, "test", seed=0)
    assert not torch.equal(a.images, b.images)
    assert not torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_digitset_shapes_params_and_helpers(train_set):
    d = train_set
    assert isinstance(d, DigitSet) and len(d) == 300 and d.split == "train"
    assert d.images.shape == (300, 1, 40, 40) and d.images.dtype == torch.float32
    assert d.labels.shape == (300,) and d.labels.dtype == torch.int64
    assert d.boxes.shape == (300, 4)
    assert d.masks.shape == (300, 40, 40) and d.masks.dtype == torch.bool
    assert d.params == dict(canvas=(40, 40), scale=(1.5, 2.5), clutter=4, fragment=4,
                            n_digits=1, colour=False, seed=5)
    assert set(d.labels.tolist()) == set(range(10))
    sub = d.subset(slice(10, 20))
    assert len(sub) == 10 and torch.equal(sub.images, d.images[10:20])
    assert torch.equal(sub.boxes, d.boxes[10:20]) and sub.params == d.params
    moved = d.to("cpu")
    assert torch.equal(moved.masks, d.masks) and moved.split == "train"
    assert "n=300" in repr(d)


def test_non_square_canvas():
    d = cluttered_digits(20, canvas=(30, 50), seed=2)
    assert d.images.shape == (20, 1, 30, 50) and d.masks.shape == (20, 30, 50)
    assert (d.boxes[:, 2] <= 50).all() and (d.boxes[:, 3] <= 30).all()


# --------------------------------------------------------------------------- glyph pools
def test_glyph_pools_disjoint_complete_stratified():
    pools = glyph_pools()
    train, test = pools["train"], pools["test"]
    assert set(pools) == {"train", "test"}
    assert not set(train.tolist()) & set(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(N_GLYPHS))
    assert abs(len(test) / N_GLYPHS - 0.3) < 0.01
    _, labels = data_mod._all_glyphs()
    for c in range(10):
        n_train = int((labels[train] == c).sum())
        n_test = int((labels[test] == c).sum())
        assert n_train > 0 and n_test > 0, c
        assert abs(n_test / (n_train + n_test) - 0.3) < 0.02, c
    again = glyph_pools()
    assert torch.equal(again["train"], train) and torch.equal(again["test"], test)


@pytest.mark.parametrize("split", ["train", "test"])
def test_identity_render_reproduces_pool_glyphs(split):
    """With an 8x8 canvas, scale 1 and no clutter, every image *is* one glyph of the pool."""
    glyphs, glyph_labels = data_mod._all_glyphs()
    pool = glyph_pools()[split]
    d = cluttered_digits(60, split, canvas=8, scale=(1.0, 1.0), clutter=0, seed=3)
    flat = glyphs[pool].reshape(len(pool), -1)
    dist = torch.cdist(d.images.reshape(60, -1), flat)  # (60, len(pool))
    best = dist.argmin(1)
    assert dist.min(1).values.max() < 1e-4
    assert torch.equal(glyph_labels[pool[best]], d.labels)


def _glyph_match(crops, split):
    """For each 8x8 crop, the largest correlation with any glyph of the pool, and that glyph's label."""
    glyphs, glyph_labels = data_mod._all_glyphs()
    pool = glyph_pools()[split]
    def unit(x):
        x = x.reshape(x.shape[0], -1) - x.reshape(x.shape[0], -1).mean(1, keepdim=True)
        return x / x.norm(dim=1, keepdim=True)
    corr = unit(crops) @ unit(glyphs[pool]).T
    best = corr.max(1)
    return best.values, glyph_labels[pool[best.indices]]


@pytest.mark.parametrize("rotation", [(0, 0), (-45, 45), (60, 90)])
def test_transforms_cut_out_the_upright_glyph(rotation):
    """grid_sample with the returned theta gives the digit's canonical view: one pool glyph."""
    import torch.nn.functional as F
    d = cluttered_digits(120, "test", clutter=0, scale=(1.5, 2.0), rotation=rotation, seed=4)
    assert d.transforms.shape == (120, 2, 3)
    grid = F.affine_grid(d.transforms, (120, 1, GLYPH, GLYPH), align_corners=False)
    crops = F.grid_sample(d.images, grid, align_corners=False)
    corr, labels = _glyph_match(crops, "test")
    assert float(corr.min()) > 0.9
    assert float((labels == d.labels).float().mean()) > 0.95
    angle = torch.rad2deg(torch.atan2(d.transforms[:, 1, 0], d.transforms[:, 0, 0]))
    assert float(angle.min()) >= rotation[0] - 1e-3 and float(angle.max()) <= rotation[1] + 1e-3
    if rotation != (0, 0):
        assert float(angle.max() - angle.min()) > 0.8 * (rotation[1] - rotation[0])
        assert d.params["rotation"] == tuple(float(a) for a in rotation)
    else:
        assert "rotation" not in d.params


def test_rotation_is_deterministic_keeps_ink_on_canvas_and_defaults_upright():
    a = cluttered_digits(50, "train", rotation=(-45, 45), seed=2)
    b = cluttered_digits(50, "train", rotation=(-45, 45), seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.transforms, b.transforms)
    assert not torch.equal(a.images, cluttered_digits(50, "train", seed=2).images)
    up = cluttered_digits(50, "train", seed=2)
    assert torch.equal(up.images, cluttered_digits(50, "train", rotation=(0, 0), seed=2).images)
    big = cluttered_digits(300, "train", clutter=0, scale=(2.5, 2.5), canvas=29, rotation=(-45, 45), seed=0)
    assert float(big.boxes[:, :2].min()) >= 0 and float(big.boxes[:, 2:].max()) <= 29
    import torch.nn.functional as F      # no digit is clipped: every canonical view is a whole glyph
    crops = F.grid_sample(big.images, F.affine_grid(big.transforms, (300, 1, GLYPH, GLYPH),
                                                    align_corners=False), align_corners=False)
    assert float(_glyph_match(crops, "train")[0].min()) > 0.9
    sub = a.subset(slice(0, 5))
    assert torch.equal(sub.transforms, a.transforms[:5])


@pytest.mark.parametrize("split, other", [("train", "test"), ("test", "train")])
def test_split_uses_only_its_pool_for_digits_and_clutter(monkeypatch, split, other):
    """Blanking every glyph of the *other* pool must not change a split's images at all."""
    kw = dict(clutter=6, fragment=5, colour=True, seed=9)
    ref = cluttered_digits(120, split, **kw)
    glyphs, labels = data_mod._all_glyphs()
    blanked = glyphs.clone()
    blanked[glyph_pools()[other]] = 0.0
    monkeypatch.setattr(data_mod, "_all_glyphs", lambda: (blanked, labels))
    again = cluttered_digits(120, split, **kw)
    assert torch.equal(ref.images, again.images)
    assert torch.equal(ref.masks, again.masks)
    # ...while blanking the split's own pool wipes its images out (the check can fail).
    own = glyphs.clone()
    own[glyph_pools()[split]] = 0.0
    monkeypatch.setattr(data_mod, "_all_glyphs", lambda: (own, labels))
    assert cluttered_digits(120, split, **kw).images.abs().max() == 0


# --------------------------------------------------------------------------- boxes & masks
def _check_boxes(boxes, masks, h, w):
    x0, y0, x1, y1 = boxes.unbind(-1)
    assert (boxes == boxes.round()).all()
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= w).all() and (y1 <= h).all()
    assert (x1 > x0).all() and (y1 > y0).all()


def test_boxes_in_canvas_contain_mask_and_are_tight(train_set):
    d = train_set
    _check_boxes(d.boxes, d.masks, 40, 40)
    assert d.masks.flatten(1).any(1).all(), "every image needs a non-empty digit mask"
    inside = _box_mask(d.boxes, 40, 40)
    assert not (d.masks & ~inside).any(), "digit pixels outside their box"
    # tight: the mask touches all four sides of its box
    for i in range(len(d)):
        x0, y0, x1, y1 = (int(v) for v in d.boxes[i])
        m = d.masks[i]
        assert m[:, x0].any() and m[:, x1 - 1].any() and m[y0].any() and m[y1 - 1].any()
        assert not m[:, :x0].any() and not m[:y0].any()


def test_digit_size_follows_scale():
    d = cluttered_digits(200, canvas=48, scale=(2.0, 2.0), clutter=0, seed=4)
    bw = d.boxes[:, 2] - d.boxes[:, 0]
    bh = d.boxes[:, 3] - d.boxes[:, 1]
    assert (bw <= 2 * GLYPH + 1).all() and (bh <= 2 * GLYPH + 1).all()
    big = cluttered_digits(200, canvas=48, scale=(4.0, 5.0), clutter=0, seed=4)
    bh_big = big.boxes[:, 3] - big.boxes[:, 1]
    assert bh_big.float().mean() > 1.8 * bh.float().mean()


def test_images_in_unit_range(train_set):
    colour = cluttered_digits(100, colour=True, clutter=8, seed=1)
    for d in (train_set, colour):
        assert d.images.min() >= 0 and d.images.max() <= 1
        assert d.images.max() > 0.9  # digits are drawn at full ink


def test_clean_digits_have_ink_only_on_the_digit(clean_set):
    d = clean_set
    img = d.images[:, 0]
    assert torch.equal(img > BOX_THRESHOLD, d.masks)
    outside = img * ~_box_mask(d.boxes, 40, 40)
    assert outside.max() < BOX_THRESHOLD  # only the faint anti-aliased rim
    assert outside.sum() < 0.01 * img.sum()
    assert (img * ~d.masks).sum() < 0.05 * img.sum()


def test_clutter_puts_ink_outside_the_digit(train_set):
    img = train_set.images[:, 0]
    outside = img * ~_box_mask(train_set.boxes, 40, 40)
    assert outside.sum() > 0.2 * img.sum()
    assert (outside > 0.5).flatten(1).any(1).float().mean() > 0.8


def test_three_digits_left_to_right(triple_set):
    d = triple_set
    n = len(d)
    assert d.labels.shape == (n, 3) and d.boxes.shape == (n, 3, 4)
    assert d.images.shape == (n, 1, 24, 72)
    _check_boxes(d.boxes, d.masks, 24, 72)
    x0, x1 = d.boxes[..., 0], d.boxes[..., 2]
    assert (x0[:, 1:] > x0[:, :-1]).all(), "boxes must be ordered left to right"
    assert (x1[:, :-1] <= x0[:, 1:]).all(), "digit slots must not overlap"
    inside_any = _box_mask(d.boxes.reshape(-1, 4), 24, 72).view(n, 3, 24, 72).any(1)
    assert not (d.masks & ~inside_any).any()
    for k in range(3):  # every digit has its own ink inside its box
        inside_k = _box_mask(d.boxes[:, k], 24, 72)
        assert (d.masks & inside_k).flatten(1).any(1).all()
    for k in range(3):
        assert set(d.labels[:, k].tolist()) == set(range(10))


def test_colour_gives_three_coloured_channels():
    d = cluttered_digits(50, colour=True, seed=2)
    assert d.images.shape == (50, 3, 40, 40)
    assert d.params["colour"] is True
    # digits get random colours: the channels are not copies of each other
    assert not torch.equal(d.images[:, 0], d.images[:, 1])
    grey = cluttered_digits(50, colour=False, seed=2)
    assert grey.images.shape[1] == 1


def test_default_train_set_is_fast():
    """The cpu-profile training set (6,000 images) renders in under 5 s.

    The best of up to three tries counts, so that a burst of load from another process
    on the machine does not fail the test; a genuinely slow renderer still does."""
    cluttered_digits(10)  # warm-up: loads scikit-learn's digits
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        d = cluttered_digits()
        times.append(time.perf_counter() - t0)
        assert len(d) == 6000 and d.images.shape == (6000, 1, 40, 40)
        if times[-1] < 5.0:
            break
    assert min(times) < 5.0, f"6000 images took {', '.join(f'{t:.2f}' for t in times)} s"


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kwargs, pattern", [
    (dict(canvas=16, scale=(2.5, 3)), r"canvas 16x16 is too small.*24"),
    (dict(scale=(3, 2)), r"low=3.0, high=2.0.*reversed"),
    (dict(scale=(0, 2)), r"0 < low <= high"),
    (dict(scale=2), r"scale must be a \(low, high\) pair"),
    (dict(clutter=-1), r"clutter must be >= 0, got -1"),
    (dict(n=0), r"n must be >= 1, got 0"),
    (dict(n=2.5), r"n must be an integer, got 2.5"),
    (dict(split="val"), r"split must be 'train' or 'test', got 'val'"),
    (dict(fragment=9), r"fragment must be between 1 and 8, got 9"),
    (dict(fragment=0), r"fragment must be between 1 and 8, got 0"),
    (dict(n_digits=0), r"n_digits must be >= 1, got 0"),
    (dict(n_digits=3), r"too small for 3 digit\(s\).*width >= 60"),
    (dict(canvas=(40, 30), n_digits=2), r"too small for 2 digit\(s\)"),
    (dict(canvas=5), r"at least 8 pixels.*\(5, 5\)"),
    (dict(canvas=(40, 40, 3)), r"canvas must be an int or a \(height, width\) pair"),
    (dict(seed=-2), r"seed must be >= 0, got -2"),
    (dict(rotation=(30, -30)), r"rotation must satisfy low <= high, got low=30, high=-30 \(the range is reversed\)"),
    (dict(rotation=(-200, 0)), r"rotation angles must lie in \[-180, 180\] degrees"),
    (dict(rotation=45), r"rotation must be a \(low, high\) pair of angles in degrees"),
    (dict(canvas=24, scale=(2.5, 3), rotation=(-45, 45)), r"too small.*rotated up to 45 degrees.*height >= 34"),
])
def test_bad_arguments(kwargs, pattern):
    kwargs = {"n": 4, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        cluttered_digits(**kwargs)


def test_relational_digits_labels_boxes_and_segmentation():
    from attn_lesson.data import relational_digits
    d = relational_digits(300, "train", seed=1)
    assert d.images.shape == (300, 1, 32, 96) and d.labels.shape == (300,)
    assert torch.equal(d.labels, (d.digits[:, 0] == d.digits[:, 1]).long())
    assert 0.35 < d.labels.float().mean() < 0.65                       # balanced by default
    assert float(d.boxes[:, 0, 2].max()) <= 24 and float(d.boxes[:, 1, 0].min()) >= 72   # gap of 48
    for k in range(2):                         # every digit's box holds the segmentation of its class
        for i in range(0, 300, 37):
            x0, y0, x1, y1 = d.boxes[i, k].long().tolist()
            inside = d.segmentation[i, y0:y1, x0:x1]
            assert (inside == 1 + d.digits[i, k]).any()
    assert torch.equal(d.masks, d.segmentation > 0)
    assert set(d.segmentation.unique().tolist()) <= set(range(11))
    again = relational_digits(300, "train", seed=1)
    assert torch.equal(d.images, again.images) and torch.equal(d.segmentation, again.segmentation)
    assert not torch.equal(d.images, relational_digits(300, "test", seed=1).images)
    sub = d.subset(slice(0, 5))
    assert sub.digits.shape == (5, 2) and sub.segmentation.shape == (5, 32, 96)


def test_relational_digits_p_same_extremes():
    from attn_lesson.data import relational_digits
    same = relational_digits(200, "test", p_same=1.0, clutter=0, seed=0)
    diff = relational_digits(200, "test", p_same=0.0, clutter=0, seed=0)
    assert same.labels.all() and not diff.labels.any()
    assert (diff.digits[:, 0] != diff.digits[:, 1]).all()
    assert len(diff.digits[:, 1].unique()) == 10                 # every other class occurs


@pytest.mark.parametrize("kwargs, message", [
    (dict(gap=80), "leaves 8 columns on each side"),
    (dict(p_same=1.5), "p_same must be a probability"),
    (dict(scale=(2.0, 1.0)), "scale must satisfy 0 < low <= high"),
    (dict(canvas=(8, 96)), "height >= 12"),
])
def test_relational_digits_bad_arguments(kwargs, message):
    from attn_lesson.data import relational_digits
    with pytest.raises(ValueError, match=message):
        relational_digits(10, **kwargs)


def test_cluttered_digits_segmentation_labels_the_digits_ink_only():
    d = cluttered_digits(200, "train", seed=1)
    assert d.segmentation.shape == (200, 40, 40) and d.segmentation.dtype == torch.int64
    assert torch.equal(d.segmentation > 0, d.masks)                  # clutter and background are 0
    classes = d.segmentation.flatten(1).amax(1)
    assert torch.equal(classes, 1 + d.labels)                         # one class per image: its digit's
    assert ((d.segmentation == 0) | (d.segmentation == (1 + d.labels).view(-1, 1, 1))).all()
    clutter_ink = (d.images[:, 0] > 0.1) & ~d.masks
    assert clutter_ink.any() and (d.segmentation[clutter_ink] == 0).all()
    two = cluttered_digits(50, "test", n_digits=2, canvas=(40, 80), colour=True, seed=2)
    left, right = two.segmentation[:, :, :40], two.segmentation[:, :, 40:]
    assert torch.equal(left.flatten(1).amax(1), 1 + two.labels[:, 0])
    assert torch.equal(right.flatten(1).amax(1), 1 + two.labels[:, 1])
    assert two.subset(slice(0, 3)).segmentation.shape == (3, 40, 80)


def test_relational_row_gap_puts_the_digits_in_opposite_corners():
    plain = al.relational_digits(64, "test", seed=3)
    again = al.relational_digits(64, "test", seed=3, row_gap=None)
    assert torch.equal(plain.images, again.images)              # the default layout is unchanged
    d = al.relational_digits(200, "train", canvas=(64, 96), gap=48, row_gap=24, seed=1)
    top, bottom = d.boxes[:, 0], d.boxes[:, 1]                  # boxes are (x0, y0, x1, y1)
    assert (top[:, 3] <= (64 - 24) / 2 + 1).all() and (bottom[:, 1] >= (64 + 24) / 2 - 1).all()
    assert (top[:, 2] <= (96 - 48) / 2 + 1).all() and (bottom[:, 0] >= (96 + 48) / 2 - 1).all()
    assert d.params["row_gap"] == 24 and "row_gap" not in plain.params
    with pytest.raises(ValueError, match="row_gap"):
        al.relational_digits(4, "train", row_gap=24)                # 32 rows: no room for two
    with pytest.raises(ValueError, match="row_gap"):
        al.relational_digits(4, "train", canvas=(64, 96), row_gap=-1)
