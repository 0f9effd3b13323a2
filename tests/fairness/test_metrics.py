"""The metric table, aggregates, groups, bootstrap draws and tests, on hand-made counts."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from mlwarden.fairness.bootstrap import percentile_ci, resample_counts
from mlwarden.fairness.groups import MISSING, group_labels
from mlwarden.fairness.metrics import AGGREGATES, METRICS, confusion_cells, summaries, values
from mlwarden.fairness.stats import benjamini_hochberg, proportion_test


def test_each_metric_is_a_function_of_the_four_cells() -> None:
    cells = np.array([50, 10, 5, 35])  # TN FP FN TP
    v = values(cells)
    assert v["selection_rate"] == pytest.approx(45 / 100)
    assert v["true_positive_rate"] == pytest.approx(35 / 40)
    assert v["false_positive_rate"] == pytest.approx(10 / 60)
    assert v["false_negative_rate"] == pytest.approx(5 / 40)
    assert v["precision"] == pytest.approx(35 / 45)
    assert v["accuracy"] == pytest.approx(85 / 100)


def test_undefined_metric_is_nan_not_zero() -> None:
    v = values(np.array([10, 0, 0, 0]))  # no positives, nothing predicted favorable
    assert math.isnan(v["true_positive_rate"]) and math.isnan(v["precision"])
    assert v["false_positive_rate"] == 0.0


def test_aggregates_and_summaries_over_groups() -> None:
    sr = np.array([0.2, 0.5, np.nan, 0.4])
    assert AGGREGATES["difference"](sr) == pytest.approx(0.3)
    assert AGGREGATES["ratio"](sr) == pytest.approx(0.4)
    cells = np.array([[50, 10, 5, 35], [70, 5, 15, 10]])
    s = summaries(values(cells))
    tpr, fpr = values(cells)["true_positive_rate"], values(cells)["false_positive_rate"]
    assert s["equalized_odds_difference"] == pytest.approx(max(abs(tpr[0] - tpr[1]), abs(fpr[0] - fpr[1])))


def test_confusion_cells_counts_rows_per_group() -> None:
    y = np.array([1, 1, 0, 0, 1], dtype=bool)
    p = np.array([1, 0, 1, 0, 1], dtype=bool)
    g = np.array([0, 0, 0, 1, 1])
    assert confusion_cells(y, p, g, 2).tolist() == [[0, 1, 1, 1], [1, 0, 0, 1]]


def test_missing_sensitive_values_are_their_own_group() -> None:
    t = pa.table({"race": ["a", None, "b", ""], "sex": pa.array([1.0, float("nan"), None, 2.0])})
    assert group_labels(t, ["race"]).tolist() == ["a", MISSING, "b", MISSING]
    assert group_labels(t, ["sex"]).tolist() == ["1", MISSING, MISSING, "2"]
    assert group_labels(t, ["race", "sex"]).tolist() == [
        "race=a & sex=1", f"race={MISSING} & sex={MISSING}", f"race=b & sex={MISSING}", f"race={MISSING} & sex=2"]


def test_resamples_keep_group_sizes_and_repeat_with_the_seed() -> None:
    counts = np.array([[5, 3, 2, 10], [100, 0, 0, 1]])
    a = np.concatenate(list(resample_counts(counts, 300, seed=3)))
    b = np.concatenate(list(resample_counts(counts, 300, seed=3)))
    assert a.shape == (300, 2, 4) and np.array_equal(a, b)
    assert (a.sum(axis=-1) == counts.sum(axis=-1)).all()
    assert (a[:, 1, 1:3] == 0).all()  # an empty cell stays empty
    lo, hi = percentile_ci(a[:, 0, 3:4].astype(float), 0.9)
    assert lo[0] <= 10 <= hi[0]


def test_proportion_test_matches_scipy() -> None:
    p, test = proportion_test(30, 100, 50, 100)
    table = np.array([[30, 70], [50, 50]])
    chi2 = stats.chi2_contingency(table, correction=False)
    assert test == "z" and p == pytest.approx(chi2.pvalue, rel=1e-9)
    p, test = proportion_test(1, 10, 6, 10)
    assert test == "fisher" and p == pytest.approx(stats.fisher_exact([[1, 9], [6, 4]])[1])
    assert math.isnan(proportion_test(0, 0, 1, 2)[0])


def test_benjamini_hochberg_matches_scipy() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.001, 0.2])
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p), rtol=1e-12)
    q = benjamini_hochberg(np.array([np.nan, 0.01]))
    assert math.isnan(q[0]) and q[1] == pytest.approx(0.01)


def test_metric_table_lists_the_issue_metrics() -> None:
    assert set(METRICS) == {"selection_rate", "true_positive_rate", "false_positive_rate",
                            "false_negative_rate", "precision", "accuracy"}
