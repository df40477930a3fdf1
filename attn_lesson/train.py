"""Training and evaluation: ``fit``, ``evaluate`` and ``run_seeds``.

``fit`` trains with AdamW and a one-cycle learning-rate schedule on mini-batches that
stay on the device (:class:`~attn_lesson.data.BatchIterator`). On CUDA it uses mixed
precision (bf16 on Ampere or newer; fp16 with a GradScaler before) and channels-last
memory. A tqdm progress bar shows live loss and accuracy.
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


@torch.no_grad()
def evaluate(model: nn.Module, data, *, batch_size: int = 500, device=None) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on ``data`` (eval mode, no augmentation)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    images, labels = _tensors(data)
    was_training = model.training
    model.eval()
    dtype, _ = _amp(device)
    total_loss, correct, n = 0.0, 0, 0
    for x, y in BatchIterator(images, labels, batch_size, shuffle=False, device=device):
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += y.shape[0]
    model.train(was_training)
    return {"loss": total_loss / n, "acc": correct / n}


def fit(model: nn.Module, train, test=None, *, epochs: int = 5, lr: float = 5e-3,
        weight_decay: float = 5e-4, batch_size: int = 128, augment=None, seed: int = 0,
        device=None, progress: bool = True, label: str | None = None,
        eval_every_epoch: bool = True, channels_last: bool = True) -> History:
    """Train ``model`` in place and return its :class:`History`.

    ``train``/``test`` are :class:`DigitSet` objects or ``(images, labels)`` pairs.
    ``seed`` fixes batch order and augmentation; seed the model's initialisation yourself
    (:func:`~attn_lesson.runtime.seed_everything` before building it) or use :func:`run_seeds`.
    AdamW with one-cycle schedule (peak ``lr``). With ``eval_every_epoch`` the test set is
    scored after each epoch (else only after the last). ``channels_last`` stores the model's
    weights and each batch in NHWC order, which convolutions run faster on, on a GPU and on
    a CPU alike (``make bench`` measures the ratio); the numbers computed are the same up to
    floating-point rounding.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not (lr > 0):
        raise ValueError(f"lr must be positive, got {lr!r}")
    device = torch.device(device) if device is not None else get_device()
    label = label or type(model).__name__
    images, labels = _tensors(train)
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
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            n += y.shape[0]
            if progress and (step % 10 == 0 or step == len(loader) - 1):
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
            bar.update(1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time += time.perf_counter() - t0
        seen += n
        hist.train_loss.append(loss_sum.item() / n)
        hist.train_acc.append(correct.item() / n)
        if test is not None and (eval_every_epoch or epoch == epochs - 1):
            ev = evaluate(model, test, device=device)
            hist.test_loss.append(ev["loss"])
            hist.test_acc.append(ev["acc"])
            bar.set_postfix(epoch=epoch + 1, loss=f"{hist.train_loss[-1]:.3f}",
                            test_acc=f"{ev['acc']:.3f}")
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
