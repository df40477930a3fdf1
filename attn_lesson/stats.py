"""The one routine that decides every "A vs B" in the book: :func:`compare`.

For two arms with final test accuracies (one per seed) it reports the difference of means
:math:`\\hat\\Delta = \\bar b - \\bar a` with a 95 % confidence interval

.. math:: \\hat\\Delta \\pm t_{0.975,\\,\\nu}\\,\\mathrm{SE},

* **paired by seed** when both arms ran the same seeds (same initial batch order, same data):
  :math:`d_i = b_i - a_i`, :math:`\\mathrm{SE} = s_d/\\sqrt n`, :math:`\\nu = n-1`;
* **Welch** otherwise: :math:`\\mathrm{SE} = \\sqrt{s_a^2/n_a + s_b^2/n_b}` with the
  Welch–Satterthwaite degrees of freedom,

plus the **minimum detectable effect** at this n, :math:`\\mathrm{MDE} = (t_{1-\\alpha/2,\\nu} +
t_{\\text{power},\\nu})\\,\\mathrm{SE}`: the true difference that a two-sided test at level
:math:`\\alpha` would detect with the given power, for spreads like the observed ones.

Verdicts: with fewer than 3 runs per arm, "too few runs to judge" (numbers only). Otherwise the
difference is called when the interval excludes 0. When it does not, "no difference" is never
claimed: the result is "not detectable at n seeds (MDE x)", unless an equivalence ``margin`` is
given and two one-sided tests (TOST) at level :math:`\\alpha` put the difference inside
:math:`(-\\text{margin}, +\\text{margin})`. TOST at level :math:`\\alpha` succeeds exactly when
the :math:`1-2\\alpha` interval (90 % for :math:`\\alpha = 0.05`) lies inside the margin, so a
95 % interval that crosses the margin can sit beside "equivalent"; the printout shows both.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from scipy import stats as _st

MIN_RUNS = 3


def _values_and_seeds(arm, name):
    """(values, seeds or None, label or None) from SeedRuns, a {seed: value} dict or numbers."""
    if hasattr(arm, "histories") and hasattr(arm, "accs"):          # SeedRuns
        return [float(v) for v in arm.accs], [h.seed for h in arm.histories], arm.label
    if isinstance(arm, dict):
        return [float(v) for v in arm.values()], list(arm.keys()), None
    if isinstance(arm, (str, bytes)) or not hasattr(arm, "__iter__"):
        raise ValueError(f"{name} must be SeedRuns, a {{seed: value}} dict or a sequence of "
                         f"numbers, got {type(arm).__name__}")
    try:
        values = [float(v) for v in arm]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold one number per run, got {list(arm)[:5]!r}") from None
    return values, None, None


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`. ``diff`` is mean(b) − mean(a); intervals are 95 % by default."""

    label_a: str
    label_b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    method: str             # "paired by seed" or "Welch"
    diff: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float
    mde: float
    alpha: float
    power: float
    margin: float | None
    p_equivalence: float | None
    verdict: str
    scale: float = 100.0
    unit: str = "points"
    # the (1 - 2 alpha) interval (90 % by default) behind the TOST verdict: equivalence holds
    # exactly when it lies inside (-margin, +margin)
    eq_ci_low: float = float("nan")
    eq_ci_high: float = float("nan")

    @property
    def judged(self) -> bool:
        return self.verdict != "too few runs to judge"

    @property
    def direction(self) -> int | None:
        """+1 when b is detectably higher, −1 when lower, 0 when not detectable, None when too
        few runs to judge."""
        if not self.judged:
            return None
        if self.ci_low > 0:
            return 1
        if self.ci_high < 0:
            return -1
        return 0

    @property
    def equivalent(self) -> bool:
        """True when TOST against ``margin`` succeeded (False without a margin)."""
        return self.p_equivalence is not None and self.judged and self.p_equivalence < self.alpha

    def _pts(self, x: float) -> str:
        return f"{x * self.scale:.2f} {self.unit}".rstrip()

    def __str__(self) -> str:
        ci = f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}]" if math.isfinite(self.ci_low) else "n/a"
        lines = [
            f"{self.label_b} vs {self.label_a} ({self.method}, "
            f"n = {self.n_b} vs {self.n_a} runs)",
            f"  {self.label_a}: {self.mean_a:.4f} ± {self.sd_a:.4f}   "
            f"{self.label_b}: {self.mean_b:.4f} ± {self.sd_b:.4f}   (mean ± sd)",
            f"  difference {self.diff:+.4f}, {1 - self.alpha:.0%} CI {ci}"
            + (f", MDE {self._pts(self.mde)} at power {self.power:.0%}"
               if math.isfinite(self.mde) else ""),
        ]
        if self.margin is not None and self.p_equivalence is not None:
            ci_eq = (f"[{self.eq_ci_low:+.4f}, {self.eq_ci_high:+.4f}]"
                     if math.isfinite(self.eq_ci_low) else "n/a")
            inside = "inside" if self.equivalent else "not inside"
            lines.append(f"  equivalence margin ±{self._pts(self.margin)}: TOST p = "
                         f"{self.p_equivalence:.3f}; its {1 - 2 * self.alpha:.0%} CI {ci_eq} is "
                         f"{inside} the margin")
        lines.append(f"  -> {self.verdict}")
        return "\n".join(lines)

    __repr__ = __str__

    def as_dict(self) -> dict:
        return asdict(self)


def compare(a, b, *, labels: tuple[str, str] | None = None, paired: bool | None = None,
            margin: float | None = None, alpha: float = 0.05, power: float = 0.8,
            scale: float = 100.0, unit: str = "points") -> Comparison:
    """Compare arm ``b`` with arm ``a`` (the reference, e.g. the baseline).

    ``a`` and ``b`` are :class:`~attn_lesson.train.SeedRuns`, ``{seed: value}`` dicts or
    sequences of numbers (one per run). ``paired=None`` pairs by seed when both arms carry the
    same set of seeds and uses Welch otherwise; ``True`` insists on pairing (an error if the
    seeds differ; plain sequences are then paired by position), ``False`` forces Welch.
    ``margin`` (same units as the values, e.g. 0.01 = 1 point of accuracy) enables the
    equivalence test. ``scale``/``unit`` only affect how MDE and margin are printed.
    """
    if not (0 < alpha < 0.5):
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    if not (0.5 <= power < 1):
        raise ValueError(f"power must be in [0.5, 1), got {power!r}")
    if margin is not None and not (margin > 0):
        raise ValueError(f"margin must be a positive number (same units as the values), got {margin!r}")
    if not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"scale must be a positive number (100 prints points), got {scale!r}")
    if labels is not None and (not isinstance(labels, (tuple, list)) or len(labels) != 2
                               or not all(isinstance(x, str) for x in labels)):
        raise ValueError(f"labels must be None or a pair of strings (label of a, label of b), "
                         f"got {labels!r}")
    if paired not in (None, True, False):
        raise ValueError(f"paired must be None, True or False, got {paired!r}")
    va, sa, la = _values_and_seeds(a, "a")
    vb, sb, lb = _values_and_seeds(b, "b")
    if not va or not vb:
        raise ValueError(f"each arm needs at least one value, got {len(va)} and {len(vb)}")
    if any(not math.isfinite(v) for v in va + vb):
        raise ValueError("values must be finite numbers (a run without a test accuracy?)")
    label_a, label_b = labels if labels is not None else (la or "A", lb or "B")

    same_seeds = sa is not None and sb is not None and sorted(sa) == sorted(sb) \
        and len(set(sa)) == len(sa)
    if paired is True:
        if sa is not None or sb is not None:
            if not same_seeds:
                raise ValueError(f"paired=True needs both arms to have run the same seeds, "
                                 f"got {sa} and {sb}")
        elif len(va) != len(vb):
            raise ValueError(f"paired=True needs equal numbers of runs, got {len(va)} and {len(vb)}")
    use_paired = paired is True or (paired is None and same_seeds)
    if use_paired and sa is not None:
        ia, ib = dict(zip(sa, va)), dict(zip(sb, vb))
        order = sorted(ia)
        va, vb = [ia[s] for s in order], [ib[s] for s in order]

    mean_a, mean_b = statistics.fmean(va), statistics.fmean(vb)
    sd_a = statistics.stdev(va) if len(va) > 1 else 0.0
    sd_b = statistics.stdev(vb) if len(vb) > 1 else 0.0
    diff = mean_b - mean_a
    nan = float("nan")
    if use_paired:
        method = "paired by seed"
        d = [y - x for x, y in zip(va, vb)]
        n = len(d)
        se = statistics.stdev(d) / math.sqrt(n) if n > 1 else nan
        df = float(n - 1) if n > 1 else nan
        enough = n >= MIN_RUNS
    else:
        method = "Welch"
        na, nb = len(va), len(vb)
        if na > 1 and nb > 1:
            qa, qb = sd_a ** 2 / na, sd_b ** 2 / nb
            se = math.sqrt(qa + qb)
            df = (qa + qb) ** 2 / (qa ** 2 / (na - 1) + qb ** 2 / (nb - 1)) if se > 0 else float(na + nb - 2)
        else:
            se, df = nan, nan
        enough = na >= MIN_RUNS and nb >= MIN_RUNS

    if math.isfinite(se) and se > 0:
        t_crit = _st.t.ppf(1 - alpha / 2, df)
        ci_low, ci_high = diff - t_crit * se, diff + t_crit * se
        t_eq = _st.t.ppf(1 - alpha, df)
        eq_low, eq_high = diff - t_eq * se, diff + t_eq * se
        p_value = float(2 * _st.t.sf(abs(diff) / se, df))
        mde = float((t_crit + _st.t.ppf(power, df)) * se)
        p_eq = None
        if margin is not None:
            p_lower = _st.t.sf((diff + margin) / se, df)     # H0: diff <= -margin
            p_upper = _st.t.cdf((diff - margin) / se, df)    # H0: diff >= +margin
            p_eq = float(max(p_lower, p_upper))
    elif math.isfinite(se):                                  # identical runs: no spread at all
        ci_low = ci_high = eq_low = eq_high = diff
        p_value = 0.0 if diff != 0 else 1.0
        mde = 0.0
        p_eq = None if margin is None else (0.0 if abs(diff) < margin else 1.0)
    else:
        ci_low = ci_high = p_value = mde = eq_low = eq_high = nan
        p_eq = None

    if not enough:
        verdict = "too few runs to judge"
    else:
        n_txt = f"{min(len(va), len(vb))} seeds" if use_paired or len(va) == len(vb) \
            else f"{len(va)}+{len(vb)} runs"
        if ci_low > 0 or ci_high < 0:
            word = "higher" if diff > 0 else "lower"
            verdict = f"{label_b} {word} than {label_a}"
            if p_eq is not None and p_eq < alpha:
                verdict += f" (by less than the ±{margin * scale:.2f} {unit} margin)".replace("  ", " ")
        elif p_eq is not None and p_eq < alpha:
            verdict = f"equivalent within ±{margin * scale:.2f} {unit}".rstrip()
        else:
            verdict = (f"not detectable at {n_txt} (MDE {mde * scale:.2f} {unit})").replace(" )", ")")
    return Comparison(label_a, label_b, len(va), len(vb), mean_a, mean_b, sd_a, sd_b, method,
                      diff, se, df, ci_low, ci_high, p_value, mde, alpha, power, margin, p_eq,
                      verdict, scale, unit, eq_low, eq_high)
