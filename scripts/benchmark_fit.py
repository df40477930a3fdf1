"""How fast is attn_lesson.fit? Three ways to train the same model on the same data.

1. ``fit``: the course's loop (device-resident BatchIterator, progress bar, one-cycle
   schedule, metrics), evaluation switched off so that only training is timed.
2. bare: a minimal forward/backward/step loop over batches sliced in advance (the floor).
3. DataLoader: torch's ``DataLoader`` over a per-sample ``Dataset`` (the usual tutorial
   pipeline), with the same augmentation done per sample in ``__getitem__``.

(1) and (2) are timed without augmentation (same work); (1b) and (3) with random shifts of up
to 2 pixels. Each variant runs ``--repeats`` times in interleaved order; medians are reported.
Usage: python scripts/benchmark_fit.py [--n 6000] [--epochs 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import attn_lesson as al


class PerSampleDigits(Dataset):
    def __init__(self, images, labels, max_shift=0):
        self.images, self.labels, self.max_shift = images, labels, max_shift

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i]
        if self.max_shift:
            m = self.max_shift
            dx, dy = torch.randint(-m, m + 1, (2,)).tolist()
            x = F.pad(x, (m, m, m, m))[:, m - dy:m - dy + self.images.shape[2], m - dx:m - dx + self.images.shape[3]]
        return x, self.labels[i]


def make_model(seed):
    al.seed_everything(seed)
    return al.ResNetBackbone()


def train_loop(model, batches, epochs, lr=5e-3):
    """The floor: no metrics, no progress bar; same optimiser and schedule as fit.
    ``batches`` is a list of pre-sliced batches or a DataLoader (re-iterated every epoch)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * len(batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25)
    model.train()
    seen = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
    return seen / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args()
    print(al.env_report())
    data = al.cluttered_digits(a.n, "train", seed=0)
    bs = a.batch_size
    nb = a.n // bs
    res = {k: [] for k in ("fit", "bare", "fit+shift", "DataLoader+shift")}
    for r in range(a.repeats):
        h = al.fit(make_model(r), data, epochs=a.epochs, batch_size=bs, progress=False, seed=r)
        res["fit"].append(h.images_per_sec)
        g = torch.Generator().manual_seed(r)
        perm = torch.randperm(a.n, generator=g)
        batches = [(data.images[perm[i * bs:(i + 1) * bs]], data.labels[perm[i * bs:(i + 1) * bs]])
                   for i in range(nb)]
        res["bare"].append(train_loop(make_model(r), batches, a.epochs))
        h = al.fit(make_model(r), data, epochs=a.epochs, batch_size=bs, progress=False, seed=r,
                   augment=al.random_shift(2))
        res["fit+shift"].append(h.images_per_sec)
        loader = DataLoader(PerSampleDigits(data.images, data.labels, 2), batch_size=bs,
                            shuffle=True, drop_last=True, num_workers=0)
        res["DataLoader+shift"].append(train_loop(make_model(r), loader, a.epochs))
    # the input pipeline alone: one epoch of augmented batches, no model
    pipe = {"BatchIterator+shift": [], "DataLoader+shift": []}
    for r in range(max(5, a.repeats)):
        it = al.BatchIterator(data.images, data.labels, bs, augment=al.random_shift(2), seed=r, drop_last=True)
        t0 = time.perf_counter()
        n = sum(len(y) for _, y in it)
        pipe["BatchIterator+shift"].append(n / (time.perf_counter() - t0))
        loader = DataLoader(PerSampleDigits(data.images, data.labels, 2), batch_size=bs,
                            shuffle=True, drop_last=True, num_workers=0)
        t0 = time.perf_counter()
        n = sum(len(y) for _, y in loader)
        pipe["DataLoader+shift"].append(n / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"\n{a.n} images, {a.epochs} epochs, batch {bs}, {a.repeats} repeats (median img/s):")
    for k, v in med.items():
        print(f"  {k:<18} {v:8.0f} img/s   runs: {', '.join(f'{x:.0f}' for x in res[k])}")
    print(f"\nfit / bare loop            = {med['fit'] / med['bare']:.3f}  (goal: >= 0.90)")
    print(f"fit+shift / DataLoader+shift = {med['fit+shift'] / med['DataLoader+shift']:.2f}  (goal: >= 2)")
    pm = {k: statistics.median(v) for k, v in pipe.items()}
    print("\ninput pipeline alone (one epoch of augmented batches, no model; median img/s):")
    for k, v in pm.items():
        print(f"  {k:<20} {v:10.0f} img/s")
    print(f"BatchIterator / DataLoader = {pm['BatchIterator+shift'] / pm['DataLoader+shift']:.1f}x")
    print("(on a CPU the model's forward/backward dominates end-to-end time, so a faster input\n"
          " pipeline moves the end-to-end ratio much less than the pipeline-only ratio)")


if __name__ == "__main__":
    main()
