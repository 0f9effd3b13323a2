"""The drift statistics against scipy (and hand-computed values), and their CI coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.stats import norm

from mlwarden.checks.drift import stats
from mlwarden.checks.drift.sketch import NumericSketch, grid


def _sketches(x: np.ndarray, y: np.ndarray) -> tuple[NumericSketch, NumericSketch]:
    a, b = NumericSketch(), NumericSketch()
    a.add(x)
    b.add(y)
    return a, b


@pytest.mark.parametrize("n", [40, 3000])
def test_ks_from_counts_equals_scipy(n: int) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, n), rng.normal(0.2, 1.1, n + 17)
    x[:5] = y[:5] = 0.5  # ties across samples
    g = grid(*_sketches(x, y))
    lo, hi = stats.ks_grid(g.ca, g.cb, g.point)
    ref = sps.ks_2samp(x, y)
    assert lo == hi == pytest.approx(ref.statistic, abs=1e-12)
    assert stats.ks_exact(g.rep_a, g.ca, g.cb) == pytest.approx((ref.statistic, ref.pvalue), abs=1e-12)
    asymp = sps.ks_2samp(x, y, method="asymp")
    assert stats.ks_pvalue(lo, x.size, y.size) == pytest.approx(asymp.pvalue, rel=1e-9, abs=1e-300)


def test_chi2_and_cramers_v_equal_scipy_on_counts() -> None:
    table = np.array([[520, 310, 150, 20], [130, 90, 60, 25]])
    ref = sps.chi2_contingency(table, correction=False)
    x2, p, dof = stats.chi2(table)
    assert (x2, p, dof) == pytest.approx((ref.statistic, ref.pvalue, ref.dof), rel=1e-12)
    assert float(stats.cramers_v(table)) == pytest.approx(np.sqrt(ref.statistic / table.sum()), rel=1e-12)
    assert float(stats.cramers_v(table)) == pytest.approx(
        sps.contingency.association(table, method="cramer", correction=False), rel=1e-12)
    # empty categories are dropped before the test, as scipy requires
    assert stats.chi2(np.c_[table, [0, 0]]) == (x2, p, dof)


def test_benjamini_hochberg_hand_example() -> None:
    q = stats.benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.005, 0.9]))
    # sorted: .005·5/1=.025, .01·5/2=.025, .03·5/3=.05, .04·5/4=.05, .9·5/5=.9
    assert q == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.9])
    assert stats.benjamini_hochberg(np.array([0.5, 0.6])) == pytest.approx([0.6, 0.6])  # monotone step-up
    assert stats.benjamini_hochberg(np.array([])).size == 0


def test_benjamini_hochberg_equals_statsmodels() -> None:
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.random.default_rng(3).uniform(0, 0.2, 50) ** 2
    assert stats.benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])


def test_psi_hand_example_and_smoothing() -> None:
    p, q = np.array([500, 500]), np.array([800, 200])
    sp, sq = (p + 0.5) / 1001, (q + 0.5) / 1001
    assert float(stats.psi(p, q)) == pytest.approx(float(np.sum((sq - sp) * np.log(sq / sp))))
    assert float(stats.psi(p, p)) == 0.0
    assert np.isfinite(stats.psi(np.array([10, 0]), np.array([0, 10])))


def test_js_distance_bounds() -> None:
    assert stats.js_distance(np.array([3, 1]), np.array([6, 2])) == pytest.approx(0.0, abs=1e-7)
    assert stats.js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)


def test_quantile_bins_equal_shares_and_ties_kept() -> None:
    ca = np.ones(1000, dtype=np.int64)
    assert np.bincount(stats.quantile_bins(ca)).tolist() == [100] * 10
    ties = np.array([700, 100, 100, 100])  # one value holds 70 %: never split
    bins = stats.quantile_bins(ties)
    assert bins[0] == 0 and len(set(bins.tolist())) == 4


def _population_psi(shift: float, bins: int = 10) -> float:
    z = norm.ppf(np.arange(bins + 1) / bins)
    q, p = np.diff(norm.cdf(z - shift)), np.full(bins, 1 / bins)
    return float(np.sum((q - p) * np.log(q / p)))


def test_ci_coverage_on_known_shift() -> None:
    """100 seeded repetitions, N(0,1) vs N(0.3,1), 2000 rows each: the 95 % CIs cover."""
    shift, n = 0.3, 2000
    d_true, psi_true = 2 * norm.cdf(shift / 2) - 1, _population_psi(shift)
    covered_d = covered_psi = 0
    for rep in range(100):
        rng = np.random.default_rng(rep)
        a, b = _sketches(rng.normal(0, 1, n), rng.normal(shift, 1, n))
        g = grid(a, b)
        lo, hi = stats.ks_grid(g.ca, g.cb, g.point)
        ci = stats.ks_interval(lo, hi, a.n, b.n)
        covered_d += ci[0] <= d_true <= ci[1]
        bins = stats.quantile_bins(g.ca)
        ci = stats.psi_interval(np.random.default_rng([0, rep]), stats.binned(g.ca, bins), stats.binned(g.cb, bins))
        covered_psi += ci[0] <= psi_true <= ci[1]
    assert covered_d >= 95  # DKW is conservative: its coverage is guaranteed
    assert covered_psi >= 85


def test_v_interval_is_seeded_and_covers_estimate_for_real_shift() -> None:
    table = np.array([[600, 300, 100], [300, 400, 300]])
    a = stats.v_interval(np.random.default_rng(5), table)
    assert a == stats.v_interval(np.random.default_rng(5), table)
    assert a[0] < float(stats.cramers_v(table)) < a[1]
