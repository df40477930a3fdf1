"""What a module costs: parameters, FLOPs and latency.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts **2 FLOPs
per multiply-add** (a ``k x k`` convolution from ``C_in`` to ``C_out`` channels on an
``H x W`` output costs ``2 * C_in * C_out * k * k * H * W``) and ignores element-wise
operations such as ReLU, sigmoid, pooling and the ``⊗`` of an attention gate.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _example(model: nn.Module, inputs) -> torch.Tensor:
    if isinstance(inputs, torch.Tensor):
        return inputs
    shape = tuple(inputs)
    if len(shape) < 2 or any((not isinstance(s, int)) or s < 1 for s in shape):
        raise ValueError(f"input shape must be a tuple of positive ints like (1, 1, 40, 40), got {inputs!r}")
    try:
        p = next(model.parameters())
        device = p.device
    except StopIteration:
        device = torch.device("cpu")
    return torch.randn(shape, device=device)


@torch.no_grad()
def count_flops(model: nn.Module, inputs) -> int:
    """FLOPs of one forward pass (eval mode) on ``inputs`` (a tensor or a shape)."""
    x = _example(model, inputs)
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())


@torch.no_grad()
def measure_latency(model: nn.Module, inputs, *, warmup: int = 5, repeats: int = 30) -> float:
    """Median wall time of one forward pass in milliseconds (eval mode, after warm-up)."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    x = _example(model, inputs)
    was_training = model.training
    model.eval()
    cuda = x.device.type == "cuda"
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(x)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    model.train(was_training)
    return 1000 * statistics.median(times)


class CostTable:
    """Rows of ``name, params, FLOPs, latency`` with ratios to a baseline row."""

    def __init__(self, rows: list[dict], baseline: str | None):
        self.rows, self.baseline = rows, baseline

    def row(self, name: str) -> dict:
        for r in self.rows:
            if r["name"] == name:
                return r
        raise KeyError(name)

    def __str__(self) -> str:
        w = max([22] + [len(r["name"]) + 2 for r in self.rows])
        head = f"{'model':<{w}}{'params':>12}{'x base':>8}{'MFLOPs':>11}{'x base':>8}"
        has_lat = any("latency_ms" in r for r in self.rows)
        if has_lat:
            head += f"{'latency ms':>12}{'x base':>8}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            line = (f"{r['name']:<{w}}{r['params']:>12,}{r['params_ratio']:>8.3f}"
                    f"{r['flops'] / 1e6:>11.2f}{r['flops_ratio']:>8.3f}")
            if has_lat:
                line += f"{r['latency_ms']:>12.2f}{r['latency_ratio']:>8.2f}"
            lines.append(line)
        return "\n".join(lines)

    __repr__ = __str__


def cost_table(models: dict[str, nn.Module], inputs, *, baseline: str | None = None,
               latency: bool = True, repeats: int = 30) -> CostTable:
    """Measure every model in ``models`` on the same input; ratios are to ``baseline``
    (default: the first entry)."""
    if not models:
        raise ValueError("models must be a non-empty dict of name -> module")
    names = list(models)
    baseline = baseline if baseline is not None else names[0]
    if baseline not in models:
        raise ValueError(f"baseline {baseline!r} is not one of the models {names}")
    rows = []
    for name, m in models.items():
        r = {"name": name, "params": count_params(m), "flops": count_flops(m, inputs)}
        if latency:
            r["latency_ms"] = measure_latency(m, inputs, repeats=repeats)
        rows.append(r)
    base = rows[names.index(baseline)]
    for r in rows:
        r["params_ratio"] = r["params"] / base["params"]
        r["flops_ratio"] = r["flops"] / base["flops"]
        if latency:
            r["latency_ratio"] = r["latency_ms"] / base["latency_ms"]
    return CostTable(rows, baseline)


def pareto_front(costs: dict[str, float], better) -> list[str]:
    """The names of ``costs`` on the accuracy-against-cost front, cheapest first.

    ``costs``: ``{name: cost}`` (lower is better: FLOPs, parameters, latency). ``better``:
    ``{name: score}`` (higher is better), or a relation ``better(a, b) -> bool`` that says
    whether ``a`` is *detectably* better than ``b`` (e.g. a comparison's interval above 0).
    ``a`` dominates ``b`` when it costs no more and is better, or costs less and is not
    worse (``not better(b, a)``); the front is every name nothing dominates. With a relation
    built from intervals, an arm that costs more than another without being detectably better
    is off the front: its extra cost buys nothing the runs can see.
    """
    if not isinstance(costs, dict) or not costs:
        raise ValueError(f"costs must be a non-empty dict of name -> cost, got {costs!r}")
    for name, c in costs.items():
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c == c:
            raise ValueError(f"costs[{name!r}] must be a number, got {c!r}")
    if isinstance(better, dict):
        missing = sorted(set(costs) - set(better))
        if missing:
            raise ValueError(f"better must give a score for every name of costs; missing {missing}")
        scores = better
        better = lambda a, b: scores[a] > scores[b]   # noqa: E731
    elif not callable(better):
        raise ValueError(f"better must be a dict of scores or a function (a, b) -> bool, got "
                         f"{type(better).__name__}")

    def dominates(a, b):
        return (costs[a] <= costs[b] and better(a, b)) or (costs[a] < costs[b] and not better(b, a))

    front = [n for n in costs if not any(dominates(m, n) for m in costs if m != n)]
    return sorted(front, key=lambda n: costs[n])
