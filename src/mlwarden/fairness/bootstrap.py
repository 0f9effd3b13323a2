"""Bootstrap confidence intervals by resampling counts, stratified by group.

Drawing ``n_g`` rows with replacement from a group whose rows fall into cells with counts
``c_g`` gives cell counts distributed Multinomial(n_g, c_g / n_g) — exactly, not as an
approximation. So a resample of a million rows costs one multinomial draw per group, and
a thousand resamples of every group are a few vectorized calls, whatever the data size.
Intervals are percentile intervals; a resample where a metric is undefined (zero
denominator) is left out of that metric's interval.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import metrics
from .metrics import CELLS, FN, TP

CHUNK_CELLS = 4_000_000
"""Cells drawn per chunk (resamples × groups × cells): bounds the memory of one draw."""


def resample_counts(counts: np.ndarray, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks ``[b, groups, cells]`` of multinomial resamples of ``counts[groups, cells]``.

    Each group keeps its size (stratified bootstrap); the chunks together hold
    ``resamples`` resamples, and the same seed gives the same draws.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n[:, None] > 0, counts / np.where(n > 0, n, 1)[:, None], 0.0)
    p[n == 0, 0] = 1.0  # an empty group draws nothing; pvals must still sum to 1
    rng = np.random.default_rng(seed)
    per = max(1, CHUNK_CELLS // max(1, counts.size))
    done = 0
    while done < resamples:
        b = min(per, resamples - done)
        yield rng.multinomial(n, p, size=(b, counts.shape[0]))
        done += b


def percentile_ci(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper percentile bounds over the first axis (NaN resamples ignored)."""
    alpha = (1.0 - confidence) / 2.0
    s = np.asarray(samples, dtype=np.float64)
    ok = ~np.all(np.isnan(s), axis=0)
    lo = np.full(s.shape[1:], np.nan)
    hi = np.full(s.shape[1:], np.nan)
    if np.any(ok):
        q = np.nanquantile(s[:, ok], [alpha, 1.0 - alpha], axis=0)
        lo[ok], hi[ok] = q[0], q[1]
    return lo, hi


@dataclass
class Estimates:
    """Group metrics of some groups: exact values from the counts, and their resamples."""

    cells: np.ndarray
    """Confusion counts ``[groups, 4]``."""
    point: dict[str, np.ndarray]
    """Metric → value per group."""
    samples: dict[str, np.ndarray]
    """Metric → ``[resamples, groups]``."""


def estimate(cells: np.ndarray, score_sums: np.ndarray | None, membership: np.ndarray,
             resamples: int, seed: int) -> Estimates:
    """Metrics (and calibration, when scores exist) of groups built from strata.

    ``cells[strata, bins, 4]`` are the counts of the finest groups (the intersections of
    every sensitive attribute) by score bin and confusion cell; ``membership[groups,
    strata]`` is 1 where a stratum belongs to a group, so one attribute's groups, or any
    combination's, are sums of strata. Resampling is stratified by the finest groups,
    which keeps every coarser group's size fixed too; all groups share the same draws.
    """
    strata, bins, _ = cells.shape
    m = np.asarray(membership, dtype=np.float64)
    flat = cells.reshape(strata, bins * CELLS).astype(np.float64)
    grouped = (m @ flat).reshape(m.shape[0], bins, CELLS)
    point = metrics.values(grouped.sum(axis=1))
    mean_score = None
    if score_sums is not None:
        total = grouped.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_score = np.where(total > 0, (m @ score_sums) / np.where(total > 0, total, 1), 0.0)
        point["calibration_error"] = metrics.calibration_error(grouped[..., FN] + grouped[..., TP], total,
                                                               mean_score)
    draw = cells.reshape(strata, bins * CELLS) if score_sums is not None else cells.sum(axis=1)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for r in resample_counts(draw, resamples, seed):
        g = np.matmul(m, r.astype(np.float64))
        if mean_score is not None:
            g4 = g.reshape(g.shape[0], m.shape[0], bins, CELLS)
            conf = g4.sum(axis=2)
            chunks["calibration_error"].append(metrics.calibration_error(
                g4[..., FN] + g4[..., TP], g4.sum(axis=-1), mean_score))
        else:
            conf = g
        for k, v in metrics.values(conf).items():
            chunks[k].append(v)
    samples = {k: np.concatenate(v, axis=0) for k, v in chunks.items()}
    return Estimates(cells=grouped.sum(axis=1), point=point, samples=samples)
