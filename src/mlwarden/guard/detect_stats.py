"""The numbers behind the detectors: nearest-neighbour distances and a normality test.

Exact nearest neighbours with numpy: a key's history is bounded (a thousand rows by default),
so one request costs ``rows × history × width`` multiply-adds, a few tens of microseconds for
one row — less than the index an approximate search would need to keep in shared state.
Distances are Euclidean divided by ``norm`` (the square root of the number of model features),
so a threshold reads as a typical per-feature change in scale units, whatever the width.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

MAX_REFERENCE = 2000
"""Reference rows kept for the uniform-query detector (a random sample of the training data)."""
LOG_FLOOR = 1e-6
"""Distances are floored here before the logarithm: an exact repeat is as close as it gets."""


def _dist(A: np.ndarray, B: np.ndarray, bb: np.ndarray | None = None) -> np.ndarray:
    if bb is None:
        bb = squared_norms(B)
    d2 = squared_norms(A)[:, None] + bb[None, :] - 2.0 * (A @ B.T)
    np.maximum(d2, 0.0, out=d2)
    return np.sqrt(d2, out=d2)


def squared_norms(R: np.ndarray) -> np.ndarray:
    """Row norms squared, as :func:`nearest` computes them (pass them as ``pool_sq`` for a fixed ``H``)."""
    return (R * R).sum(1)


def nearest(H: np.ndarray, X: np.ndarray, k: int, norm: float, *, within: bool = True,
            pool_sq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``X``: mean distance to its ``k`` nearest and distance to its nearest.

    With ``within`` (the history case), row ``i`` is compared with ``H`` and with the rows of
    ``X`` before it — the order the queries arrived in; a row with fewer than ``k`` earlier
    rows gets NaN for the first, and the very first row NaN for both. Without it, rows are
    compared with ``H`` alone (the reference case), and ``pool_sq`` (:func:`squared_norms` of
    ``H``, computed once) spares recomputing them, most of the cost for one query row.
    """
    m, b = len(H), len(X)
    pool = np.vstack([H, X]) if within else H
    if len(pool) == 0:
        return np.full(b, np.nan), np.full(b, np.nan)
    D = _dist(X, pool, None if within else pool_sq)
    avail = m + np.arange(b) if within else np.full(b, m)
    if within:
        D[np.arange(m + b)[None, :] >= (m + np.arange(b))[:, None]] = np.inf
    kk = min(k, len(pool))
    part = np.partition(D, kk - 1, axis=1)[:, :kk] if kk < len(pool) else np.sort(D, axis=1)[:, :kk]
    with np.errstate(invalid="ignore"):
        knn = np.where(avail >= k, part.mean(1) / norm, np.nan)
        mind = np.where(avail >= 1, part.min(1) / norm, np.nan)
    return knn, mind


def log_shapiro(d: np.ndarray) -> float:
    """Shapiro–Wilk W of ``log(max(d, floor))``: near 1 when the distances look log-normal.

    Natural traffic's nearest-earlier distances are roughly log-normal; a stream of synthetic
    probes (steps along axes, jitter around a few seeds, repeats) piles them into a few spikes,
    which is what pulls W down. A constant sample is as unnatural as it gets: W = 0.
    """
    from scipy.stats import shapiro

    x = np.log(np.maximum(np.asarray(d, dtype=np.float64), LOG_FLOOR))
    if len(x) < 3 or float(np.ptp(x)) == 0.0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(shapiro(x).statistic)


def reference_scale(R: np.ndarray, norm: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A reference sample and its own typical nearest-neighbour distance (the uniform detector's unit).

    Half the rows (at most :data:`MAX_REFERENCE`) are kept; the other half measure how far a
    real row usually is from its nearest kept row (the median of the non-zero distances, since
    training sets hold exact duplicates).
    """
    idx = rng.permutation(len(R))
    keep = idx[: min(MAX_REFERENCE, max(1, len(R) // 2))]
    probe = idx[len(keep): len(keep) + 500]
    ref = R[keep]
    if len(probe) == 0:
        return ref, 1.0
    d = nearest(ref, R[probe], 1, norm, within=False)[1]
    d = d[d > 0]
    scale = float(np.median(d)) if len(d) else 1.0
    return ref, scale if scale > 0 and math.isfinite(scale) else 1.0


def benign_knn(R: np.ndarray, k: int, norm: float, rng: np.random.Generator, pool: int = 1000) -> float:
    """How close real rows are to their ``k`` nearest among a key-sized pool of other real rows.

    The median, over up to 500 probe rows, of the mean distance to their ``k`` nearest among
    ``min(pool, rows / 2)`` random reference rows: what a benign key's k-NN statistic looks like
    on this data. Dense, low-dimensional data (a few features with few values) has real rows
    much closer together than wide data, so a fixed threshold fires on honest traffic there.
    """
    if len(R) < 2 * (k + 1):
        return math.nan
    idx = rng.permutation(len(R))
    size = min(pool, len(R) // 2)
    d = nearest(R[idx[:size]], R[idx[size:size + 500]], k, norm, within=False)[0]
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) else math.nan
