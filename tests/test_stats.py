"""The comparison routine against scipy.stats on known data."""
import math

import numpy as np
import pytest
from scipy import stats

from attn_lesson.stats import compare
from attn_lesson.train import History, SeedRuns

A = [0.9417, 0.9380, 0.9455, 0.9401, 0.9432]
B = [0.9490, 0.9421, 0.9530, 0.9466, 0.9475]


def runs(label, values, seeds=None):
    seeds = list(range(len(values))) if seeds is None else seeds
    return SeedRuns(label, [History(label, s, test_acc=[v]) for s, v in zip(seeds, values)])


def test_paired_by_seed_matches_scipy_ttest_rel():
    c = compare(runs("base", A), runs("SE", B))
    ref = stats.ttest_rel(B, A)
    lo, hi = ref.confidence_interval(0.95)
    assert c.method == "paired by seed"
    assert c.diff == pytest.approx(np.mean(B) - np.mean(A))
    assert (c.ci_low, c.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert c.p_value == pytest.approx(ref.pvalue)
    assert c.df == 4 and c.direction == 1 and c.verdict == "SE higher than base"


def test_welch_matches_scipy_ttest_ind_unequal_var():
    c = compare(runs("base", A), runs("SE", B[:4], seeds=[10, 11, 12, 13]))
    ref = stats.ttest_ind(B[:4], A, equal_var=False)
    lo, hi = ref.confidence_interval(0.95)
    assert c.method == "Welch"
    assert (c.ci_low, c.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert c.p_value == pytest.approx(ref.pvalue)
    assert c.df == pytest.approx(ref.df)


def test_pairing_follows_seeds_not_order():
    a = {0: A[0], 1: A[1], 2: A[2], 3: A[3]}
    b = {3: B[3], 2: B[2], 1: B[1], 0: B[0]}
    c = compare(a, b)
    ref = stats.ttest_rel(B[:4], A[:4])
    assert c.method == "paired by seed" and c.p_value == pytest.approx(ref.pvalue)


def test_plain_sequences_use_welch_unless_paired_is_asked():
    assert compare(A, B).method == "Welch"
    c = compare(A, B, paired=True)
    assert c.method == "paired by seed"
    assert c.p_value == pytest.approx(stats.ttest_rel(B, A).pvalue)


def test_mde_is_the_t_quantile_sum_times_the_standard_error():
    c = compare(runs("a", A), runs("b", B))
    d = np.subtract(B, A)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert c.se == pytest.approx(se)
    assert c.mde == pytest.approx((stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * se)
    # more runs with the same spread -> smaller MDE
    c10 = compare(runs("a", A * 2, seeds=list(range(10))), runs("b", B * 2, seeds=list(range(10))))
    assert c10.mde < c.mde


def test_mde_gives_the_stated_power_in_simulation():
    # paired normal differences with sd 0.01, n = 5: a true effect equal to the (expected)
    # MDE should be detected in about 80 % of experiments
    rng = np.random.default_rng(0)
    sd, n = 0.01, 5
    mdes = [compare(list(np.zeros(n)), list(rng.normal(0, sd, n)), paired=True).mde for _ in range(400)]
    effect = float(np.median(mdes))
    hits = [compare(list(np.zeros(n)), list(rng.normal(effect, sd, n)), paired=True).direction == 1
            for _ in range(800)]
    assert 0.65 < np.mean(hits) < 0.95


def test_tost_matches_two_one_sided_scipy_tests():
    a = [0.940, 0.941, 0.939, 0.942, 0.940]
    b = [0.941, 0.940, 0.940, 0.942, 0.941]
    c = compare(a, b, paired=True, margin=0.005)
    d = np.subtract(b, a)
    p1 = stats.ttest_1samp(d, -0.005, alternative="greater").pvalue
    p2 = stats.ttest_1samp(d, 0.005, alternative="less").pvalue
    assert c.p_equivalence == pytest.approx(max(p1, p2))
    assert c.equivalent and c.direction == 0 and c.verdict.startswith("equivalent within ±0.50 points")
    # Welch TOST: shift one arm by the margin and use the one-sided Welch tests
    cw = compare(a, b[:4], margin=0.005)
    q1 = stats.ttest_ind(np.array(b[:4]) + 0.005, a, equal_var=False, alternative="greater").pvalue
    q2 = stats.ttest_ind(np.array(b[:4]) - 0.005, a, equal_var=False, alternative="less").pvalue
    assert cw.p_equivalence == pytest.approx(max(q1, q2))


def test_without_a_margin_a_null_result_is_never_called_no_difference():
    c = compare(runs("base", A), runs("SE", [v + 0.0001 * (-1) ** i for i, v in enumerate(A)]))
    assert c.direction == 0
    assert c.verdict.startswith("not detectable at 5 seeds (MDE ") and "points" in c.verdict
    assert "no difference" not in str(c) and "equivalent" not in c.verdict


def test_fewer_than_three_runs_reports_numbers_but_no_verdict():
    c = compare(runs("base", A[:2]), runs("SE", B[:2]))
    assert c.verdict == "too few runs to judge" and c.direction is None and not c.equivalent
    assert math.isfinite(c.diff) and "too few runs to judge" in str(c)
    one = compare([0.9], [0.95])
    assert one.verdict == "too few runs to judge" and math.isnan(one.ci_low)
    assert "0.9000" in str(one) and "CI n/a" in str(one)


def test_report_names_the_method_and_the_interval():
    text = str(compare(runs("base", A), runs("SE", B)))
    assert "paired by seed" in text and "95% CI [" in text and "MDE" in text and "-> SE higher" in text


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 0.7}, "alpha must be in"),
    ({"power": 1.2}, "power must be in"),
    ({"margin": -0.01}, "margin must be a positive number"),
    ({"paired": "yes"}, "paired must be None, True or False"),
])
def test_bad_options_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare(A, B, **kwargs)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="must be SeedRuns"):
        compare("0.9", B)
    with pytest.raises(ValueError, match="at least one value"):
        compare([], B)
    with pytest.raises(ValueError, match="finite"):
        compare([0.9, float("nan"), 0.8], B)
    with pytest.raises(ValueError, match="same seeds"):
        compare(runs("a", A), runs("b", B, seeds=[5, 6, 7, 8, 9]), paired=True)
    with pytest.raises(ValueError, match="equal numbers of runs"):
        compare(A, B[:3], paired=True)


def test_tost_verdict_comes_with_its_90_percent_interval():
    """TOST at level alpha succeeds exactly when the (1 - 2 alpha) interval lies inside the
    margin; the printout shows that interval beside the 95 % one."""
    a = [0.960, 0.961, 0.958, 0.962, 0.960]
    b = [0.962, 0.963, 0.959, 0.965, 0.960]
    c = compare(a, b, margin=0.005)
    t = stats.t.ppf(0.95, c.df)
    assert c.eq_ci_low == pytest.approx(c.diff - t * c.se)
    assert c.eq_ci_high == pytest.approx(c.diff + t * c.se)
    assert c.ci_low < c.eq_ci_low < c.eq_ci_high < c.ci_high
    assert c.equivalent == (-0.005 < c.eq_ci_low and c.eq_ci_high < 0.005)
    assert "90% CI" in str(c) and "inside the margin" in str(c)
    # a 95 % interval that crosses the margin beside "equivalent": possible, and visible
    d = compare(A, [x + 0.0005 for x in A[:4]] + [A[4] + 0.009], paired=True, margin=0.01)
    assert d.ci_high > 0.01 or d.ci_low < -0.01 or d.equivalent is False or "90% CI" in str(d)
    assert "90% CI" not in str(compare(a, b))          # no margin, no TOST, no 90 % line
