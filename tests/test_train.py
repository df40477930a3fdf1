"""fit / evaluate / run_seeds on a tiny Cluttered Digits problem (CPU, a few seconds)."""
import statistics

import pytest
import torch
import torch.nn.functional as F

from attn_lesson import (History, ResNetBackbone, SeedRuns, cluttered_digits, evaluate, fit,
                         mean_std, run_seeds, seed_everything)

WIDTHS = (8, 16, 32)


@pytest.fixture(scope="module")
def train_set():
    return cluttered_digits(600, "train", seed=1)


@pytest.fixture(scope="module")
def test_set():
    return cluttered_digits(200, "test", seed=1)


def small_model():
    return ResNetBackbone(widths=WIDTHS)


def _train(seed, train, test=None, fit_seed=None, **kw):
    seed_everything(seed)
    model = small_model()
    kw = {"epochs": 2, "device": "cpu", "progress": False, **kw}
    hist = fit(model, train, test, seed=seed if fit_seed is None else fit_seed, **kw)
    return model, hist


def test_short_fit_learns_and_reports(train_set, test_set):
    model, h = _train(0, train_set, test_set, epochs=3, label="tiny")
    assert isinstance(h, History) and h.label == "tiny" and h.seed == 0
    assert len(h.train_loss) == len(h.train_acc) == len(h.test_loss) == len(h.test_acc) == 3
    assert h.train_loss[-1] < h.train_loss[0]
    assert all(0 <= a <= 1 for a in h.train_acc + h.test_acc)
    assert all(v > 0 for v in h.train_loss + h.test_loss)
    assert h.images_per_sec > 0 and h.wall_time > 0
    assert h.final_test_acc == h.test_acc[-1]
    # the recorded test score is the score of the returned model
    ev = evaluate(model, test_set)
    assert ev["acc"] == pytest.approx(h.test_acc[-1])
    assert ev["loss"] == pytest.approx(h.test_loss[-1], rel=1e-5)
    assert "tiny" in repr(h) and "epochs=3" in repr(h)


def test_fit_without_test_and_eval_only_at_end(train_set, test_set):
    _, h = _train(0, train_set, epochs=1)
    assert h.test_acc == [] and h.test_loss == [] and len(h.train_loss) == 1
    assert h.final_test_acc != h.final_test_acc  # nan
    _, h2 = _train(0, train_set, test_set, epochs=2, eval_every_epoch=False)
    assert len(h2.train_loss) == 2 and len(h2.test_acc) == 1


def test_same_seed_is_bit_identical_different_seed_differs(train_set):
    m1, h1 = _train(3, train_set)
    m2, h2 = _train(3, train_set)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert h1.train_loss == h2.train_loss and h1.train_acc == h2.train_acc
    m3, h3 = _train(4, train_set)
    assert not torch.equal(s1["head.weight"], m3.state_dict()["head.weight"])
    assert h3.train_loss != h1.train_loss
    # same initial weights, different batch order (fit's seed) also differs
    m4, _ = _train(3, train_set, fit_seed=5)
    assert not torch.equal(s1["head.weight"], m4.state_dict()["head.weight"])


def test_fit_accepts_tensor_pair_and_rejects_other_data(train_set, test_set):
    _, h_set = _train(2, train_set, test_set, epochs=1)
    _, h_pair = _train(2, (train_set.images, train_set.labels),
                       [test_set.images, test_set.labels], epochs=1)
    assert h_pair.train_loss == h_set.train_loss and h_pair.test_acc == h_set.test_acc
    model = small_model()
    with pytest.raises(ValueError, match="DigitSet or an \\(images, labels\\) pair, got dict"):
        fit(model, {"images": train_set.images}, epochs=1, progress=False)
    with pytest.raises(ValueError, match="got Tensor"):
        fit(model, train_set.images, epochs=1, progress=False)
    with pytest.raises(ValueError, match="got tuple"):
        evaluate(model, (train_set.images,))


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(epochs=0), "epochs must be a positive int, got 0"),
    (dict(epochs=1.5), "epochs must be a positive int, got 1.5"),
    (dict(epochs=True), "epochs must be a positive int"),
    (dict(lr=0), "lr must be positive, got 0"),
    (dict(lr=-1e-3), "lr must be positive"),
    (dict(lr=float("nan")), "lr must be positive"),
])
def test_fit_bad_arguments(train_set, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        fit(small_model(), train_set, progress=False, **kwargs)


def test_evaluate(train_set, test_set):
    torch.manual_seed(0)
    model = small_model()
    model.train()
    ev = evaluate(model, test_set, batch_size=64)
    assert set(ev) == {"loss", "acc"} and 0 <= ev["acc"] <= 1 and ev["loss"] > 0
    assert model.training, "evaluate must restore training mode"
    model.eval()
    with torch.no_grad():
        logits = model(test_set.images)
    assert ev["acc"] == pytest.approx((logits.argmax(1) == test_set.labels).float().mean().item())
    assert ev["loss"] == pytest.approx(F.cross_entropy(logits, test_set.labels).item(), rel=1e-4)
    # a tensor pair gives the same numbers; batch size does not matter
    ev2 = evaluate(model, (test_set.images, test_set.labels), batch_size=500)
    assert ev2["acc"] == ev["acc"] and ev2["loss"] == pytest.approx(ev["loss"], rel=1e-5)


def test_run_seeds(train_set, test_set):
    runs = run_seeds(small_model, train_set, test_set, seeds=(0, 1, 2), label="tiny",
                     epochs=1, device="cpu", progress=False)
    assert isinstance(runs, SeedRuns) and runs.label == "tiny"
    assert len(runs.histories) == 3 and [h.seed for h in runs.histories] == [0, 1, 2]
    assert all(h.label == "tiny" for h in runs.histories)
    accs = [h.test_acc[-1] for h in runs.histories]
    assert runs.accs == accs
    assert runs.mean == pytest.approx(statistics.fmean(accs))
    assert runs.std == pytest.approx(statistics.stdev(accs))
    assert runs.wall_time == pytest.approx(sum(h.wall_time for h in runs.histories))
    assert "n=3 seeds" in str(runs)
    # the trained models are kept, one per seed, and score what their history says
    assert len(runs.models) == 3 and all(isinstance(m, ResNetBackbone) for m in runs.models)
    assert [evaluate(m, test_set)["acc"] for m in runs.models] == pytest.approx(accs)
    # each run is exactly what seed_everything(seed) + fit(seed=seed) gives
    _, manual = _train(1, train_set, test_set, epochs=1, label="tiny")
    assert manual.train_loss == runs.histories[1].train_loss
    assert manual.test_acc == runs.histories[1].test_acc
    # different seeds start from different weights
    assert runs.histories[0].train_loss != runs.histories[1].train_loss


def test_run_seeds_single_seed_and_empty(train_set, test_set):
    with pytest.raises(ValueError, match="at least one seed"):
        run_seeds(small_model, train_set, test_set, seeds=())
    one = run_seeds(small_model, train_set.subset(slice(0, 200)), test_set, seeds=[5],
                    epochs=1, device="cpu", progress=False)
    assert len(one.histories) == 1 and one.std == 0.0 and one.mean == one.accs[0]


def test_mean_std():
    m, s = mean_std([0.9, 0.92, 0.94])
    assert m == pytest.approx(0.92) and s == pytest.approx(0.02)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std(torch.tensor([1.0, 3.0])) == (2.0, pytest.approx(2 ** 0.5))
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])


def test_fit_with_exactly_four_steps(train_set):
    """Regression: OneCycleLR used to divide by zero when a run had exactly 4 steps."""
    small = train_set.subset(slice(0, 8))
    for epochs, batch in [(1, 2), (2, 4), (4, 8)]:
        seed_everything(0)
        h = fit(small_model(), small, epochs=epochs, batch_size=batch, device="cpu", progress=False)
        assert len(h.train_loss) == epochs
        assert all(v == v for v in h.train_loss)  # finite, not nan


def test_seed_runs_subset_keeps_matching_runs_and_rejects_unknown_seeds():
    hist = [History(label="x", seed=s, test_acc=[a]) for s, a in ((0, 0.5), (1, 0.7), (2, 0.9))]
    runs = SeedRuns("x", hist, models=["m0", "m1", "m2"])
    sub = runs.subset((2, 0))
    assert [h.seed for h in sub.histories] == [0, 2] and sub.models == ["m0", "m2"]
    assert sub.label == "x" and sub.mean == pytest.approx(0.7)
    assert runs.subset([1], label="y").label == "y"
    assert SeedRuns("x", hist).subset([1]).models == []
    for bad in ([3], [0, 3], []):
        with pytest.raises(ValueError, match="subset of this configuration's seeds"):
            runs.subset(bad)


def test_progress_style_from_the_environment(monkeypatch):
    from tqdm import std

    from attn_lesson import train

    monkeypatch.setenv("ATTN_LESSON_PROGRESS", "text")
    bar = train.progress_bar(total=3, disable=True)
    assert type(bar) is std.tqdm
    monkeypatch.setenv("ATTN_LESSON_PROGRESS", "widget")
    with pytest.raises(ValueError, match=r"ATTN_LESSON_PROGRESS must be one of \('auto', 'text'\)"):
        train.progress_bar(total=3)


# ---------------------------------------------------------------- per-pixel labels, mean IoU
def test_mean_iou_against_a_hand_computation():
    from attn_lesson import confusion_matrix, iou_per_class, mean_iou
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    cm = confusion_matrix(pred, target, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    # class 0: TP 2, FP 1, FN 1 -> 2/4; class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: 2/3; class 3 absent
    iou = iou_per_class(cm)
    assert iou[:3].tolist() == pytest.approx([0.5, 2 / 3, 2 / 3]) and torch.isnan(iou[3])
    assert mean_iou(pred, target, 4) == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert mean_iou(pred, target, 4, classes=[1, 2]) == pytest.approx(2 / 3)
    assert mean_iou(target, target, 3) == 1.0
    # pooled over the whole set, not averaged per image
    a = mean_iou(pred[:1], target[:1], 3)
    b = mean_iou(pred[1:], target[1:], 3)
    assert mean_iou(pred, target, 3) != pytest.approx((a + b) / 2)


@pytest.mark.parametrize("call, pattern", [
    (lambda f: f(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long), 3), "same shape"),
    (lambda f: f(torch.zeros(4), torch.zeros(4, dtype=torch.long), 3), "class indices"),
    (lambda f: f(torch.full((4,), 3), torch.zeros(4, dtype=torch.long), 3), r"outside 0\.\.2"),
    (lambda f: f(torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long), 1), "num_classes must be"),
])
def test_confusion_matrix_bad_arguments(call, pattern):
    from attn_lesson import confusion_matrix
    with pytest.raises(ValueError, match=pattern):
        call(confusion_matrix)


def test_mean_iou_bad_classes():
    from attn_lesson import mean_iou
    t = torch.zeros(4, dtype=torch.long)
    for bad in ([], [3], [1, 1], [True]):
        with pytest.raises(ValueError, match="iou_classes must be None or distinct class indices"):
            mean_iou(t, t, 3, classes=bad)


class _PixelModel(torch.nn.Module):
    """A 1x1 convolution: per-pixel logits at the input's size."""

    def __init__(self, k=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, k, 1)

    def forward(self, x):
        return self.conv(x)


def _pixel_data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=g)
    y = (x[:, 0] > 0.5).long() + (x[:, 0] > 0.8).long()              # 3 classes by intensity
    return x, y


def test_evaluate_per_pixel_accuracy_loss_and_miou():
    from attn_lesson import mean_iou
    torch.manual_seed(0)
    m = _PixelModel()
    x, y = _pixel_data()
    ev = evaluate(m, (x, y), batch_size=7, metric="miou", num_classes=3)
    with torch.no_grad():
        logits = m(x)
    pred = logits.argmax(1)
    assert ev["acc"] == pytest.approx((pred == y).float().mean().item())   # over pixels, not images
    assert ev["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert ev["miou"] == pytest.approx(mean_iou(pred, y, 3)) and len(ev["iou"]) == 3
    fg = evaluate(m, (x, y), metric="miou", num_classes=3, iou_classes=[1, 2])
    assert fg["miou"] == pytest.approx(mean_iou(pred, y, 3, classes=[1, 2]))
    assert "miou" not in evaluate(m, (x, y))


def test_fit_segmentation_learns_and_stores_the_metric_in_test_acc():
    seed_everything(0)
    m = _PixelModel()
    x, y = _pixel_data(200)
    xt, yt = _pixel_data(50, seed=1)
    h = fit(m, (x, y), (xt, yt), epochs=10, batch_size=20, lr=0.2, device="cpu", progress=False,
            metric="miou", num_classes=3)
    assert h.train_loss[-1] < h.train_loss[0] and 0 <= h.train_acc[-1] <= 1
    assert h.test_acc[-1] == pytest.approx(evaluate(m, (xt, yt), metric="miou", num_classes=3)["miou"])
    assert h.test_acc[-1] > 0.5
    assert h.images_per_sec > 0 and SeedRuns("px", [h]).mean == h.test_acc[-1]


def test_fit_per_pixel_bad_arguments(train_set):
    from attn_lesson import random_shift
    x, y = _pixel_data()
    m = _PixelModel()
    with pytest.raises(ValueError, match="augment moves only the images"):
        fit(m, (x, y), epochs=1, augment=random_shift(1), device="cpu", progress=False)
    with pytest.raises(ValueError, match="metric must be one of"):
        fit(m, (x, y), epochs=1, metric="dice", device="cpu", progress=False)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        fit(m, (x, y), epochs=1, metric="miou", device="cpu", progress=False)
    with pytest.raises(ValueError, match="only with metric='miou'"):
        evaluate(m, (x, y), num_classes=3)
    with pytest.raises(ValueError, match=r"per-pixel labels \(4, 40, 40\) need logits"):
        fit(small_model(), (train_set.images[:4], train_set.segmentation[:4]), epochs=1, device="cpu",
            progress=False)


class _ShiftedObjective(ResNetBackbone):
    """The small backbone, whose own objective teaches it to answer (y + 1) mod 10."""

    def objective(self, x, y):
        logits = self(x)
        return F.cross_entropy(logits, (y + 1) % 10), logits


def test_fit_minimises_a_models_own_objective_and_evaluates_its_logits(train_set):
    x, y = train_set.images[:64], train_set.labels[:64]
    seed_everything(0)
    model = _ShiftedObjective(widths=WIDTHS)
    h = fit(model, (x, y), (x, y), epochs=15, batch_size=16, device="cpu", progress=False)
    # it learned its own (shifted) task on these 64 images; accuracies are still read against y
    assert evaluate(model, (x, (y + 1) % 10))["acc"] > 0.9
    assert h.train_acc[-1] < 0.1 and h.test_acc[-1] < 0.1
    assert h.test_acc[-1] == evaluate(model, (x, y))["acc"]


def test_fit_refuses_an_objective_that_is_not_a_method(train_set):
    model = small_model()
    model.objective = 3
    with pytest.raises(ValueError, match="model.objective must be a method"):
        fit(model, train_set, epochs=1, device="cpu", progress=False)
