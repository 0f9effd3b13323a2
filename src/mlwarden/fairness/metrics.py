"""The metric table: every group metric is a function of confusion counts.

Counts live in arrays whose last axis holds the four confusion cells in the order
``TN, FP, FN, TP`` (cell = 2·truth + prediction, "1" meaning the favorable label), so one
function evaluates a group, every group, or every bootstrap resample of every group at
once. A metric whose denominator is zero is NaN (undefined) — fairlearn returns 0 there;
both agree wherever the metric is defined.

Derived variants (difference, ratio, group min/max between groups) come from the
:data:`AGGREGATES` table, as fairlearn's ``MetricFrame`` derives them, and the summary
measures (demographic parity, equalized odds, equal opportunity, predictive parity)
follow fairlearn's ``between_groups`` definitions exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

TN, FP, FN, TP = 0, 1, 2, 3
CELLS = 4


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    numerator: tuple[int, ...]
    denominator: tuple[int, ...]
    better: Literal["higher", "lower", "neither"]
    """Which way is good for the people in the group (``neither``: it depends on the harm)."""

    def counts(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(numerator, denominator) counts of ``cells[..., 4]``."""
        cells = np.asarray(cells)
        return (cells[..., list(self.numerator)].sum(axis=-1),
                cells[..., list(self.denominator)].sum(axis=-1))

    def __call__(self, cells: np.ndarray) -> np.ndarray:
        num, den = self.counts(cells)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


_ALL = (TN, FP, FN, TP)
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("selection_rate", "selection rate", (FP, TP), _ALL, "higher"),
    Metric("true_positive_rate", "true positive rate", (TP,), (TP, FN), "higher"),
    Metric("false_positive_rate", "false positive rate", (FP,), (FP, TN), "neither"),
    Metric("false_negative_rate", "false negative rate", (FN,), (FN, TP), "lower"),
    Metric("precision", "precision", (TP,), (TP, FP), "neither"),
    Metric("accuracy", "accuracy", (TP, TN), _ALL, "higher"),
)}


def _nan_reduce(fn: Callable[..., np.ndarray], values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape[:-1], np.nan)
    ok = ~np.all(np.isnan(v), axis=-1)
    if np.any(ok):
        out[ok] = fn(v[ok], axis=-1)
    return out


def group_min(values: np.ndarray) -> np.ndarray:
    return _nan_reduce(np.nanmin, values)


def group_max(values: np.ndarray) -> np.ndarray:
    return _nan_reduce(np.nanmax, values)


def difference(values: np.ndarray) -> np.ndarray:
    """Largest minus smallest group value (fairlearn's ``between_groups`` difference)."""
    return group_max(values) - group_min(values)


def ratio(values: np.ndarray) -> np.ndarray:
    """Smallest over largest group value (fairlearn's ``between_groups`` ratio)."""
    lo, hi = group_min(values), group_max(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hi > 0, lo / np.where(hi > 0, hi, 1), np.nan)


AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "group_min": group_min, "group_max": group_max, "difference": difference, "ratio": ratio,
}
"""Derived variants over the group axis (the last one) of a metric's values."""


def values(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of the table on ``cells[..., 4]``."""
    return {name: m(cells) for name, m in METRICS.items()}


SUMMARIES: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "demographic_parity_difference": lambda v: difference(v["selection_rate"]),
    "demographic_parity_ratio": lambda v: ratio(v["selection_rate"]),
    "equalized_odds_difference": lambda v: np.fmax(difference(v["true_positive_rate"]),
                                                   difference(v["false_positive_rate"])),
    "equalized_odds_ratio": lambda v: np.fmin(ratio(v["true_positive_rate"]), ratio(v["false_positive_rate"])),
    "equal_opportunity_difference": lambda v: difference(v["true_positive_rate"]),
    "equal_opportunity_ratio": lambda v: ratio(v["true_positive_rate"]),
    "predictive_parity_difference": lambda v: difference(v["precision"]),
}
"""Fairness measures over groups from the per-group metric values (groups on the last axis)."""


def summaries(group_values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: fn(group_values) for name, fn in SUMMARIES.items()}


def confusion_cells(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                    n_groups: int) -> np.ndarray:
    """Counts ``[n_groups, 4]`` from boolean truth/prediction and integer group codes."""
    cell = 2 * np.asarray(y_true, dtype=np.int64) + np.asarray(y_pred, dtype=np.int64)
    flat = np.asarray(groups, dtype=np.int64) * CELLS + cell
    return np.bincount(flat, minlength=n_groups * CELLS).reshape(n_groups, CELLS)


BINS = 10


def score_bins(score: np.ndarray) -> np.ndarray:
    """Calibration bin of each score: ten equal-width bins over [0, 1]."""
    s = np.clip(np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return np.minimum((s * BINS).astype(np.int64), BINS - 1)


def calibration_error(pos: np.ndarray, total: np.ndarray, mean_score: np.ndarray) -> np.ndarray:
    """Expected calibration error from per-bin counts ``[..., BINS]``.

    ``pos`` favorable labels and ``total`` rows per bin; ``mean_score`` the bin's mean score.
    ECE = Σ_b (n_b / n) · |mean score_b − favorable rate_b|.
    """
    n = total.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, pos / np.where(total > 0, total, 1), 0.0)
        gap = np.where(total > 0, np.abs(mean_score - rate), 0.0)
        return np.where(n > 0, (total * gap).sum(axis=-1) / np.where(n > 0, n, 1), np.nan)
