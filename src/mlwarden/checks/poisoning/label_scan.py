"""Where label issues concentrate beyond the noise null: regions, time windows, row batches.

Random flips spread over the whole table are, to any method, just more aleatoric noise; what
poisoning and broken labelling leave behind is *concentration* — one region of the feature
space, one time window or one delivered batch with far more issues than the model's calibrated
uncertainty predicts there. Each slice (every value of a categorical feature, every decile of
a numeric one, of the time column and of the row order) is tested: observed issues against
the sum of the rows' simulated flag rates (:mod:`.label_noise`), with the Poisson-binomial
variance inflated by a robust overdispersion factor — the median squared z over all slices
(a model is never perfectly calibrated in every slice, and that must not read as poisoning) —
and Benjamini–Hochberg across all slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...fairness.stats import benjamini_hochberg

BINS = 10
MIN_EXPECTED = 5.0  # the normal approximation needs a few expected issues per slice
Q_REPORT = 0.01
Q_CONCENTRATED = 0.001
MIN_RATIO = 1.25
MIN_EXCESS_SHARE = 0.005  # of all rows: slices whose excess is too small to matter are noted, not alarmed
MIN_EXCESS_ROWS = 10
NOISE_RATIO = 3.0  # a group's expected label disagreement against the rest's
NOISE_Z = 5.0
_MEDIAN_CHI2_1 = 0.454936  # median of chi-square with one degree of freedom


@dataclass(frozen=True)
class Dimension:
    """One way of slicing the rows: ``codes[i]`` is row i's slice, ``labels[c]`` names slice c."""

    name: str
    codes: np.ndarray
    labels: tuple[str, ...]
    categorical: bool = False


def categorical(name: str, values: np.ndarray, names: list[str]) -> Dimension:
    """Slices by category code (NaN: missing) of a column coded by ``names``."""
    missing = np.isnan(values)
    codes = np.where(missing, len(names), np.nan_to_num(values, nan=0)).astype(np.int64)
    return Dimension(name, codes, tuple(f"{name} = {v}" for v in names) + (f"{name} missing",), categorical=True)


def quantiles(name: str, values: np.ndarray, show: Any = None) -> Dimension:
    """Slices by decile (each value its own slice when there are at most ``BINS``); NaN apart."""
    fmt = show or (lambda v: f"{v:.4g}")
    ok = ~np.isnan(values)
    distinct = np.unique(values[ok])
    if distinct.size <= BINS:
        cuts = distinct[1:]
    else:
        cuts = np.unique(np.quantile(values[ok], np.linspace(0, 1, BINS + 1)[1:-1], method="lower"))
        cuts = cuts[cuts > distinct[0]]
    codes = np.where(ok, np.searchsorted(cuts, np.where(ok, values, 0), side="right"), cuts.size + 1)
    labels = []
    for c in range(cuts.size + 1):
        inside = values[ok & (codes == c)]
        lo, hi = (inside.min(), inside.max()) if inside.size else (np.nan, np.nan)
        labels.append(f"{name} = {fmt(lo)}" if lo == hi else f"{name} {fmt(lo)} … {fmt(hi)}")
    return Dimension(name, codes.astype(np.int64), tuple(labels) + (f"{name} missing",))


def scan(observed: np.ndarray, rate: np.ndarray, dims: list[Dimension]) -> dict[str, Any]:
    """Slices with more issues than the null predicts, most significant first."""
    n = observed.size
    rows: list[dict[str, Any]] = []
    z_all: list[float] = []
    for d in dims:
        m = len(d.labels)
        size = np.bincount(d.codes, minlength=m)
        obs = np.bincount(d.codes, weights=observed.astype(np.float64), minlength=m)
        exp = np.bincount(d.codes, weights=rate, minlength=m)
        var = np.bincount(d.codes, weights=rate * (1 - rate), minlength=m)
        for c in np.flatnonzero((exp >= MIN_EXPECTED) & (size < n)):
            z = (obs[c] - exp[c]) / np.sqrt(max(var[c], 1e-12))
            z_all.append(float(z))
            rows.append({"slice": d.labels[c], "dimension": d.name, "rows": int(size[c]),
                         "observed": int(obs[c]), "expected": round(float(exp[c]), 2), "_var": float(var[c])})
    if not rows:
        return {"slices_tested": 0, "dispersion": 1.0, "excess_floor": 0.0, "significant": [], "concentrated": []}
    dispersion = max(1.0, float(np.median(np.square(z_all))) / _MEDIAN_CHI2_1) if len(rows) >= 10 else 1.0
    from scipy.stats import norm  # scipy.stats is slow to import: only when the check runs

    for r in rows:
        # continuity correction: counts are whole numbers
        z = (r["observed"] - r["expected"] - 0.5) / np.sqrt(dispersion * max(r.pop("_var"), 1e-12))
        r["z"] = round(float(z), 3)
        r["p_value"] = float(norm.sf(z))
    q = benjamini_hochberg(np.array([r["p_value"] for r in rows]))
    for r, qv in zip(rows, q):
        r["q_value"] = float(qv)
        r["ratio"] = round(r["observed"] / r["expected"], 3)
        r["excess"] = round(r["observed"] - r["expected"], 2)
    significant = sorted((r for r in rows if r["q_value"] < Q_REPORT and r["observed"] > r["expected"]),
                         key=lambda r: (r["q_value"], -r["excess"], r["slice"]))
    floor = max(MIN_EXCESS_ROWS, MIN_EXCESS_SHARE * n)
    concentrated = [r for r in significant
                    if r["q_value"] < Q_CONCENTRATED and r["ratio"] >= MIN_RATIO and r["excess"] >= floor]
    return {"slices_tested": len(rows), "dispersion": round(dispersion, 4), "excess_floor": round(floor, 2),
            "significant": significant[:20], "concentrated": concentrated[:10]}


def noise_concentration(noise: np.ndarray, dims: list[Dimension]) -> list[dict[str, Any]]:
    """Categories whose rows carry far more label noise than the rest of the data.

    ``noise[i]`` is row i's expected disagreement with its likeliest class under the calibrated
    probabilities. A cell of flipped labels inside otherwise clean data does not make
    confident-learning issues (the model learns the cell's mix and calls the flips noise, and
    the noise null agrees): it shows as noise piled in one group. Flagged: at least
    ``NOISE_RATIO`` times the rest's mean, ``NOISE_Z`` standard errors above it, and an
    excess of at least ``MIN_EXCESS_SHARE`` of all rows. A group whose outcome the features
    simply do not decide looks the same from the training data alone.
    """
    n = noise.size
    floor = max(MIN_EXCESS_ROWS, MIN_EXCESS_SHARE * n)
    out: list[dict[str, Any]] = []
    for d in dims:
        if not d.categorical:
            continue
        m = len(d.labels)
        size = np.bincount(d.codes, minlength=m)
        total = np.bincount(d.codes, weights=noise, minlength=m)
        squares = np.bincount(d.codes, weights=noise * noise, minlength=m)
        for c in np.flatnonzero((size >= 30) & (size < n)):
            rest_n = n - size[c]
            mean, rest = total[c] / size[c], (noise.sum() - total[c]) / rest_n
            var = max(squares[c] / size[c] - mean * mean, 0.0)
            rest_var = max((np.dot(noise, noise) - squares[c]) / rest_n - rest * rest, 0.0)
            z = (mean - rest) / np.sqrt(max(var / size[c] + rest_var / rest_n, 1e-18))
            excess = (mean - rest) * size[c]
            if mean >= NOISE_RATIO * rest and z >= NOISE_Z and excess >= floor:
                out.append({"slice": d.labels[c], "dimension": d.name, "rows": int(size[c]),
                            "noise": round(float(mean), 4), "noise_elsewhere": round(float(rest), 4),
                            "ratio": round(float(mean / max(rest, 1e-12)), 2), "z": round(float(z), 1),
                            "excess_rows": round(float(excess), 1)})
    return sorted(out, key=lambda r: (-r["excess_rows"], r["slice"]))[:10]
