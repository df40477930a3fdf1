"""Training and evaluation: ``fit``, ``evaluate`` and ``run_seeds``.

``fit`` trains with AdamW and a one-cycle learning-rate schedule on mini-batches that
stay on the device (:class:`~attn_lesson.data.BatchIterator`). On CUDA it uses mixed
precision (bf16 on Ampere or newer; fp16 with a GradScaler before) and channels-last
memory. A tqdm progress bar shows live loss and accuracy.

Labels are one class per image ``(B,)`` (classification) or one class per pixel ``(B, H, W)``
(segmentation, for a model that returns logits ``(B, K, H, W)``); losses and accuracies are
then means over pixels. The test score that ``fit`` records is named by ``metric``:
``"acc"`` (accuracy, the default) or ``"miou"`` (mean intersection over union,
:func:`mean_iou`, from one confusion matrix accumulated over the whole test set).
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm

from .data import BatchIterator, DigitSet
from .runtime import get_device, seed_everything


@dataclass
class History:
    """What one training run measured. Lists hold one value per epoch."""

    label: str
    seed: int
    # test_acc holds the test score that fit's ``metric`` names: accuracy by default, the mean
    # IoU for ``metric="miou"`` (so SeedRuns and compare treat both alike)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    wall_time: float = 0.0          # seconds for the whole run, evaluation included
    images_per_sec: float = 0.0     # training throughput (forward + backward + step)

    @property
    def final_test_acc(self) -> float:
        return self.test_acc[-1] if self.test_acc else float("nan")

    def __repr__(self) -> str:
        return (f"History({self.label!r}, seed={self.seed}, epochs={len(self.train_loss)}, "
                f"final test acc={self.final_test_acc:.4f}, {self.images_per_sec:.0f} img/s, "
                f"{self.wall_time:.1f} s)")



PROGRESS_ENV = "ATTN_LESSON_PROGRESS"
PROGRESS_STYLES = ("auto", "text")


def progress_bar(**kwargs):
    """A tqdm bar: a widget in Jupyter (``auto``), or plain text when ``$ATTN_LESSON_PROGRESS``
    is ``text`` (recorded runs use text so that the static book shows each bar's final state)."""
    style = os.environ.get(PROGRESS_ENV) or "auto"
    if style not in PROGRESS_STYLES:
        raise ValueError(f"${PROGRESS_ENV} must be one of {PROGRESS_STYLES}, got {style!r}")
    if style == "text":
        return text_tqdm(file=sys.stdout, **kwargs)
    return auto_tqdm(**kwargs)


def _tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, DigitSet):
        return data.images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ValueError("data must be a DigitSet or an (images, labels) pair, got "
                     f"{type(data).__name__}")


def _amp(device: torch.device):
    """(autocast dtype or None, whether a GradScaler is needed) for this device."""
    if device.type != "cuda":
        return None, False
    major, _ = torch.cuda.get_device_capability(device)
    return (torch.bfloat16, False) if major >= 8 else (torch.float16, True)


METRICS = ("acc", "miou")


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return num_classes


def confusion_matrix(pred, target, num_classes: int) -> torch.Tensor:
    """``(K, K)`` int64 counts: row = true class, column = predicted class, over every element
    of ``pred`` and ``target`` (class indices of the same shape, e.g. ``(B, H, W)`` maps)."""
    num_classes = _check_num_classes(num_classes)
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    if pred.dtype.is_floating_point or target.dtype.is_floating_point:
        raise ValueError("pred and target must hold class indices (integers); take the argmax of "
                         "the logits first")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} has class indices outside 0..{num_classes - 1}: "
                             f"min {t.min().item()}, max {t.max().item()}")
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes ** 2).view(num_classes, num_classes).cpu()


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """IoU of every class from a confusion matrix: ``TP / (TP + FP + FN)``; ``nan`` for a class
    that occurs neither in the targets nor in the predictions."""
    cm = torch.as_tensor(confusion).double()
    if cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square (K, K) matrix, got {tuple(cm.shape)}")
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def _mean_over(iou: torch.Tensor, classes) -> float:
    k = iou.shape[0]
    if classes is None:
        classes = list(range(k))
    else:
        classes = list(classes)
        if (not classes or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < k
                               for c in classes) or len(set(classes)) != len(classes)):
            raise ValueError(f"iou_classes must be None or distinct class indices in 0..{k - 1}, "
                             f"got {classes!r}")
    vals = iou[classes]
    vals = vals[~torch.isnan(vals)]
    return float(vals.mean()) if len(vals) else float("nan")


def mean_iou(pred, target, num_classes: int, *, classes=None) -> float:
    """Mean intersection over union of class-index maps ``pred`` and ``target``:
    ``IoU_k = |pred = k and target = k| / |pred = k or target = k|``, averaged over ``classes``
    (default: all ``num_classes``; e.g. ``range(1, K)`` leaves out a background class 0).
    Classes absent from both are skipped. Pixels of all images are pooled in one confusion
    matrix, as segmentation benchmarks do, not averaged image by image."""
    return _mean_over(iou_per_class(confusion_matrix(pred, target, num_classes)), classes)


def _check_metric(metric, num_classes, iou_classes):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "miou":
        _check_num_classes(num_classes)
        if iou_classes is not None:
            _mean_over(torch.zeros(num_classes), iou_classes)      # checks the indices
    elif num_classes is not None or iou_classes is not None:
        raise ValueError("num_classes and iou_classes are used only with metric='miou'")


def _check_logits(logits: torch.Tensor, y: torch.Tensor) -> None:
    if y.dim() == 3 and (logits.dim() != 4 or logits.shape[-2:] != y.shape[-2:]):
        raise ValueError(f"per-pixel labels {tuple(y.shape)} need logits of shape (B, classes, "
                         f"{y.shape[-2]}, {y.shape[-1]}), got {tuple(logits.shape)}")


@torch.no_grad()
def evaluate(model: nn.Module, data, *, batch_size: int = 500, device=None, metric: str = "acc",
             num_classes: int | None = None, iou_classes=None) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on ``data`` (eval mode, no augmentation).

    With per-pixel labels ``(n, H, W)`` both are means over pixels. ``metric="miou"`` adds
    ``"miou"`` (mean IoU over ``iou_classes``, default all ``num_classes``) and ``"iou"`` (per
    class) from one confusion matrix of the whole set."""
    _check_metric(metric, num_classes, iou_classes)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    images, labels = _tensors(data)
    was_training = model.training
    model.eval()
    dtype, _ = _amp(device)
    total_loss, correct, n = 0.0, 0, 0
    cm = torch.zeros(num_classes or 1, num_classes or 1, dtype=torch.int64)
    for x, y in BatchIterator(images, labels, batch_size, shuffle=False, device=device):
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        _check_logits(logits, y)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        pred = logits.argmax(1)
        correct += (pred == y).sum().item()
        n += y.numel()
        if metric == "miou":
            cm += confusion_matrix(pred, y, num_classes)
    model.train(was_training)
    out = {"loss": total_loss / n, "acc": correct / n}
    if metric == "miou":
        iou = iou_per_class(cm)
        out["miou"], out["iou"] = _mean_over(iou, iou_classes), iou.tolist()
    return out


def fit(model: nn.Module, train, test=None, *, epochs: int = 5, lr: float = 5e-3,
        weight_decay: float = 5e-4, batch_size: int = 128, augment=None, seed: int = 0,
        device=None, progress: bool = True, label: str | None = None,
        eval_every_epoch: bool = True, channels_last: bool = True, metric: str = "acc",
        num_classes: int | None = None, iou_classes=None) -> History:
    """Train ``model`` in place and return its :class:`History`.

    ``train``/``test`` are :class:`DigitSet` objects or ``(images, labels)`` pairs.
    ``seed`` fixes batch order and augmentation; seed the model's initialisation yourself
    (:func:`~attn_lesson.runtime.seed_everything` before building it) or use :func:`run_seeds`.
    AdamW with one-cycle schedule (peak ``lr``). With ``eval_every_epoch`` the test set is
    scored after each epoch (else only after the last). ``channels_last`` stores the model's
    weights and each batch in NHWC order, which convolutions run faster on, on a GPU and on
    a CPU alike (``make bench`` measures the ratio); the numbers computed are the same up to
    floating-point rounding.

    Labels may be per-pixel class maps ``(n, H, W)`` for a model with logits ``(n, K, H, W)``
    (segmentation); training loss and accuracy are then means over pixels, and ``augment`` is
    refused (it would move the images but not their label maps). ``metric`` names the test score
    stored in ``History.test_acc``: ``"acc"`` (accuracy) or ``"miou"`` (mean IoU over
    ``iou_classes``, default all ``num_classes``; see :func:`evaluate`).

    A model with its own training objective (e.g. RAM's REINFORCE term, :mod:`attn_lesson.glimpse`)
    defines a method ``objective(x, y) -> (loss, logits)``: ``fit`` then minimises that ``loss``
    instead of the cross-entropy of ``model(x)``, and reads the training accuracy from ``logits``.
    Evaluation is unchanged: it scores ``model(x)`` (eval mode) by cross-entropy and accuracy.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not (lr > 0):
        raise ValueError(f"lr must be positive, got {lr!r}")
    _check_metric(metric, num_classes, iou_classes)
    device = torch.device(device) if device is not None else get_device()
    label = label or type(model).__name__
    objective = getattr(model, "objective", None)
    if objective is not None and not callable(objective):
        raise ValueError(f"model.objective must be a method objective(x, y) -> (loss, logits), "
                         f"got {type(objective).__name__}")
    images, labels = _tensors(train)
    if labels.dim() == 3 and augment is not None:
        raise ValueError("augment moves only the images, so with per-pixel labels (n, H, W) it "
                         "would misalign images and label maps; train segmentation without it")
    loader = BatchIterator(images, labels, batch_size, shuffle=True, augment=augment,
                           seed=seed, device=device, drop_last=len(images) > batch_size)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    dtype, need_scaler = _amp(device)
    scaler = torch.amp.GradScaler("cuda", enabled=need_scaler)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * len(loader)
    # OneCycleLR divides by zero when pct_start * total_steps == 1 (e.g. 4 steps at 0.25)
    pct_start = 0.25 if steps != 4 else 0.3
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=pct_start)
    hist = History(label=label, seed=seed)
    bar = progress_bar(total=steps, desc=f"{label} (seed {seed})", disable=not progress, leave=True)
    t_start = time.perf_counter()
    train_time, seen = 0.0, 0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        n = 0
        for step, (x, y) in enumerate(loader):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                if objective is None:
                    logits = model(x)
                    if step == 0:                  # before the loss: a clear error for bad shapes
                        _check_logits(logits, y)
                    loss = F.cross_entropy(logits.float(), y)
                else:                          # the model's own training loss (e.g. REINFORCE)
                    loss, logits = objective(x, y)
                    if step == 0:
                        _check_logits(logits, y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            loss_sum += loss.detach() * y.numel()       # per-pixel labels: means over pixels
            correct += (logits.detach().argmax(1) == y).sum()
            n += y.numel()
            if progress and (step % 10 == 0 or step == len(loader) - 1):
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
            bar.update(1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time += time.perf_counter() - t0
        seen += n if labels.dim() == 1 else n // labels[0].numel()
        hist.train_loss.append(loss_sum.item() / n)
        hist.train_acc.append(correct.item() / n)
        if test is not None and (eval_every_epoch or epoch == epochs - 1):
            ev = evaluate(model, test, device=device, metric=metric, num_classes=num_classes,
                          iou_classes=iou_classes)
            hist.test_loss.append(ev["loss"])
            hist.test_acc.append(ev[metric])
            bar.set_postfix(epoch=epoch + 1, loss=f"{hist.train_loss[-1]:.3f}",
                            **{f"test_{metric}": f"{ev[metric]:.3f}"})
    bar.close()
    hist.wall_time = time.perf_counter() - t_start
    hist.images_per_sec = seen / train_time if train_time > 0 else float("nan")
    return hist


@dataclass
class SeedRuns:
    """Several runs of one configuration: final test accuracies, mean and sample std."""

    label: str
    histories: list[History]
    models: list = field(default_factory=list, repr=False)  # the trained models, one per seed

    @property
    def accs(self) -> list[float]:
        return [h.final_test_acc for h in self.histories]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1 in the denominator); 0 for a single run."""
        return statistics.stdev(self.accs) if len(self.accs) > 1 else 0.0

    @property
    def wall_time(self) -> float:
        return sum(h.wall_time for h in self.histories)

    def subset(self, seeds, label: str | None = None) -> "SeedRuns":
        """The runs whose seed is in ``seeds`` (histories and, where kept, models), in run order."""
        seeds = set(seeds)
        have = [h.seed for h in self.histories]
        if not seeds or not seeds <= set(have):
            raise ValueError(f"seeds must be a non-empty subset of this configuration's seeds {have}, "
                             f"got {sorted(seeds)}")
        keep = [i for i, s in enumerate(have) if s in seeds]
        models = [self.models[i] for i in keep] if self.models else []
        return SeedRuns(label or self.label, [self.histories[i] for i in keep], models)

    def __str__(self) -> str:
        return f"{self.label}: {self.mean:.4f} ± {self.std:.4f} (n={len(self.accs)} seeds)"

    __repr__ = __str__


def run_seeds(make_model: Callable[[], nn.Module], train, test, *, seeds=(0, 1, 2),
              label: str = "model", **fit_kwargs) -> SeedRuns:
    """Train a fresh ``make_model()`` once per seed and collect the histories.

    Before each run, :func:`seed_everything` is called with the seed, so both the model's
    initial weights and the batch order differ between seeds and repeat exactly for a seed.
    The trained models are kept in ``.models`` for inspection.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    histories, models = [], []
    for s in seeds:
        seed_everything(s)
        model = make_model()
        histories.append(fit(model, train, test, seed=s, label=label, **fit_kwargs))
        models.append(model)
    return SeedRuns(label, histories, models)


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation of a sequence of numbers."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std needs at least one value")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def load_backbone_weights(model: nn.Module, source: nn.Module) -> list[str]:
    """Copy every weight and buffer of ``source`` except its classifier (``head.*``) into
    ``model`` (e.g. a backbone trained to read digits into the same backbone with attention
    modules added). Returns the names of ``model``'s tensors left as they were, such as its
    attention modules and its head. Raises ``ValueError`` when ``source`` has a tensor that
    ``model`` lacks or shapes differ, i.e. when the two are not the same backbone."""
    own = model.state_dict()
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    alien = sorted(k for k in state if k not in own or own[k].shape != state[k].shape)
    if alien:
        raise ValueError(f"the source's tensors {alien[:5]}{' ...' if len(alien) > 5 else ''} have "
                         "no counterpart of the same shape in the model: not the same backbone")
    model.load_state_dict(state, strict=False)
    return sorted(k for k in own if k not in state)
