"""The bounded summaries: exact below their caps, partition-free above, bounds that hold."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as sps

from mlwarden.checks.drift import stats
from mlwarden.checks.drift.sketch import (
    EXACT_DISTINCT, MAX_BUCKETS, MISSING, RELATIVE_WIDTH, CategorySketch, NumericSketch, bucket_keys, category_counts, grid,
    numeric_values,
)


def _fold(chunks: list[np.ndarray]) -> NumericSketch:
    parts = []
    for c in chunks:
        s = NumericSketch()
        s.add(c)
        parts.append(s)
    out = NumericSketch()
    for p in parts:
        out = out.merge(p)
    return out


def test_exact_below_cap_counts_distinct_values() -> None:
    x = np.array([3.0, 1.0, 3.0, np.nan, -0.0, 0.0, np.inf])
    s = _fold([x[:3], x[3:]])
    assert s.exact and s.n == 5 and s.missing == 1 and s.nonfinite == 1
    assert s.keys.tolist() == [0.0, 1.0, 3.0] and s.counts.tolist() == [2, 1, 2]
    assert s.method == "exact"


def test_histogram_past_cap_is_the_same_for_any_partitioning() -> None:
    x = np.random.default_rng(0).lognormal(10, 1, 3 * EXACT_DISTINCT) * np.where(np.arange(3 * EXACT_DISTINCT) % 7, 1, -1)
    one = _fold([x])
    cuts = [0, 5, 19_000, 19_001, 40_000, x.size]
    many = _fold([x[i:j] for i, j in zip(cuts, cuts[1:])][::-1])  # other chunks, other order
    assert not one.exact and not many.exact
    for f in ("keys", "counts", "mins", "maxs"):
        assert np.array_equal(getattr(one, f), getattr(many, f)), f
    assert np.allclose(one.sums, many.sums, rtol=1e-12)
    assert one.n == x.size and one.counts.sum() == x.size
    assert one.nbytes() < 300_000  # bounded: a few thousand buckets, not 60,000 values


def test_buckets_are_ordered_and_narrow() -> None:
    x = np.sort(np.r_[np.random.default_rng(1).normal(0, 1e3, 20_000), [0.0, -1e-300, 1e300]])
    keys = bucket_keys(x)
    assert np.all(np.diff(keys) >= 0)
    s = _fold([x, x[:EXACT_DISTINCT + 1] + 0.5])
    assert s.mins is not None and s.maxs is not None
    wide = np.abs(s.mins) > 1e-300
    assert np.all((s.maxs[wide] - s.mins[wide]) <= RELATIVE_WIDTH * np.abs(s.mins[wide]) * (1 + 1e-12))


def test_ks_bounds_from_histograms_contain_the_exact_statistic() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.lognormal(10.5, 0.5, 60_000), rng.lognormal(10.55, 0.5, 45_000)
    g = grid(_fold([x]), _fold([y]))
    assert not g.exact
    lo, hi = stats.ks_grid(g.ca, g.cb, g.point)
    d = sps.ks_2samp(x, y).statistic
    assert lo <= d + 1e-12 and d <= hi + 1e-12
    assert hi - lo < 0.02


def test_discrete_columns_stay_exact_at_any_size() -> None:
    ages = np.random.default_rng(3).integers(18, 90, 500_000).astype(float)
    s = _fold(np.array_split(ages, 7))
    assert s.exact and s.keys.size == 72 and s.n == ages.size


def test_mixed_exact_and_histogram_compare_on_one_grid() -> None:
    rng = np.random.default_rng(4)
    big, small = rng.normal(0, 1, 30_000), rng.normal(0, 1, 500)
    g = grid(_fold([big]), _fold([small]))
    lo, hi = stats.ks_grid(g.ca, g.cb, g.point)
    assert lo <= sps.ks_2samp(big, small).statistic <= hi + 1e-12


def test_states_pickle() -> None:
    s = _fold([np.random.default_rng(5).normal(size=30_000)])
    c = CategorySketch()
    c.add_counts({"a": 3, "b": 1})
    for obj in (s, c):
        back = pickle.loads(pickle.dumps(obj))
        assert pickle.dumps(back) == pickle.dumps(obj)


def test_misra_gries_exact_below_capacity_and_bounded_above() -> None:
    rng = np.random.default_rng(6)
    heavy = {"h1": 5000, "h2": 3000}
    tail = {f"t{i}": int(c) for i, c in enumerate(rng.integers(1, 5, 3000))}
    truth = heavy | tail
    items = list(truth.items())
    rng.shuffle(items)
    parts = []
    for chunk in np.array_split(np.arange(len(items)), 9):
        c = CategorySketch(capacity=100)
        c.add_counts(dict(items[i] for i in chunk))
        parts.append(c)
    s = parts[0]
    for p in parts[1:]:
        s = s.merge(p)
    n = sum(truth.values())
    assert s.n == n and not s.exact and len(s.counts) <= 100
    assert s.decremented <= n / 101
    for k, true in truth.items():
        est = s.counts.get(k, 0)
        assert true - s.decremented <= est <= true, k
    small = CategorySketch()
    small.add_counts({"x": 2, "y": 1})
    assert small.exact and small.counts == {"x": 2, "y": 1}


def test_category_counts_normalizes_missing_and_types() -> None:
    assert category_counts(pa.array(["a", "", None, "a"])) == {"a": 2, MISSING: 2}
    assert category_counts(pa.array([True, False, True])) == {"true": 2, "false": 1}
    assert category_counts(pa.array(["u", "v", "u"]).dictionary_encode()) == {"u": 2, "v": 1}


def test_numeric_values_of_times_are_seconds() -> None:
    ts = pa.array([0, 86_400_000_000_000, None], pa.timestamp("ns"))
    assert numeric_values(ts)[:2].tolist() == [0.0, 86_400.0] and np.isnan(numeric_values(ts)[2])
    assert numeric_values(pa.array([1], pa.date32())).tolist() == [86_400.0]
    assert numeric_values(pa.array([1, None], pa.int8()))[0] == 1.0


@pytest.mark.parametrize("x", [np.array([]), np.array([np.nan])])
def test_empty_input_leaves_an_empty_sketch(x: np.ndarray) -> None:
    s = _fold([x])
    assert s.n == 0 and s.exact and s.keys.size == 0


def test_bucket_cap_coarsens_the_same_way_for_any_partitioning() -> None:
    rng = np.random.default_rng(7)
    x = rng.choice([-1.0, 1.0], 200_000) * 10.0 ** rng.uniform(-150, 150, 200_000)  # 300 orders of magnitude
    one = _fold([x])
    many = _fold(np.array_split(x, 13)[::-1])
    assert one.level > 0 and one.keys.size <= MAX_BUCKETS and one.method.endswith(f"2^-{8 - one.level})")
    assert one.level == many.level
    for f in ("keys", "counts", "mins", "maxs"):
        assert np.array_equal(getattr(one, f), getattr(many, f)), f
    assert one.mins is not None and one.maxs is not None
    assert np.all(one.maxs - one.mins <= one.relative_width * np.maximum(np.abs(one.mins), np.abs(one.maxs)) * (1 + 1e-12))
    y = rng.normal(0, 1, 30_000)  # a fine histogram compared with a coarse one
    g = grid(one, _fold([y]))
    lo, hi = stats.ks_grid(g.ca, g.cb, g.point)
    assert lo <= sps.ks_2samp(x, y).statistic <= hi + 1e-12
