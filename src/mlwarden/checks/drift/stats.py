"""Two-sample drift statistics, their confidence intervals, and Benjamini–Hochberg.

Pure functions of counts, so they are tested against scipy on the same numbers.

- **KS D** from two CDFs on common cells; p-value as ``scipy.stats.ks_2samp`` computes it
  (exact method for small samples, else the asymptotic ``kstwo`` with n = n₁n₂/(n₁+n₂)).
- **PSI** = Σ (pᵢ − qᵢ) ln(pᵢ/qᵢ) over bins, with 0.5 added to every bin count so an
  empty bin stays finite. Reading (Siddiqi 2006; Yurdakul 2018): < 0.1 no shift,
  0.1–0.25 moderate, > 0.25 major.
- **Cramér's V** of the 2 × K table (= Cohen's w for two rows: 0.1 small, 0.3 medium,
  0.5 large — Cohen 1988), from ``scipy.stats.chi2_contingency`` without continuity
  correction.
- **Jensen–Shannon distance**, base 2, in [0, 1].
- **Confidence intervals.** D: analytical, from the Dvoretzky–Kiefer–Wolfowitz inequality
  with Massart's constant (distribution-free, coverage ≥ 95 % at any n). PSI and V:
  bootstrap by multinomial resampling of each split's binned counts — exact resampling
  for statistics that are functions of those counts — seeded, basic (reverse-percentile)
  intervals, which cancel these statistics' upward bias.
"""

from __future__ import annotations

import numpy as np


def _scipy_stats():  # scipy.stats costs ~0.8 s to import (each audit worker): only finalizers need it
    from scipy import stats

    return stats

RESAMPLES = 500
CONFIDENCE = 0.95
PSI_BINS = 10
EXACT_KS_ROWS = 200_000
"""Below this many rows in both samples, D and p come from ``scipy.stats.ks_2samp`` itself."""


def ks_grid(ca: np.ndarray, cb: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    """(D at cell ends, upper bound on D) for two count vectors on common ordered cells.

    The first is attained by the data; the second adds what can hide inside cells that
    hold more than one distinct value. Equal when every cell is a single point.
    """
    na, nb = ca.sum(), cb.sum()
    fa, fb = np.cumsum(ca) / na, np.cumsum(cb) / nb
    d = float(np.max(np.abs(fa - fb))) if fa.size else 0.0
    if point.all():
        return d, d
    pa, pb = np.r_[0.0, fa[:-1]], np.r_[0.0, fb[:-1]]
    wide = ~point
    hi = max(d, float(np.max(np.maximum(np.abs(fa - pb), np.abs(pa - fb))[wide])))
    return d, hi


def ks_pvalue(d: float, na: int, nb: int) -> float:
    """Two-sided p-value of D as ``ks_2samp`` gives it for large samples (method 'asymp')."""
    en = na * nb / (na + nb)
    return float(np.clip(_scipy_stats().kstwo.sf(d, np.round(en)), 0.0, 1.0))


def ks_exact(values: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> tuple[float, float]:
    """D and p from ``scipy.stats.ks_2samp`` on the samples the counts describe."""
    r = _scipy_stats().ks_2samp(np.repeat(values, ca), np.repeat(values, cb))
    return float(r.statistic), float(r.pvalue)


def psi(p_counts: np.ndarray, q_counts: np.ndarray) -> np.ndarray:
    """PSI between count vectors (last axis = bins; leading axes broadcast, for resamples)."""
    p = (p_counts + 0.5) / (p_counts.sum(axis=-1, keepdims=True) + 0.5 * p_counts.shape[-1])
    q = (q_counts + 0.5) / (q_counts.sum(axis=-1, keepdims=True) + 0.5 * q_counts.shape[-1])
    return np.sum((q - p) * np.log(q / p), axis=-1)


def quantile_bins(ca: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Bin index of each ordered cell: cut where train's cumulative share passes k/bins.

    Cells are never split, so tied values stay in one bin (fewer bins for discrete data).
    """
    cum = np.cumsum(ca) / max(ca.sum(), 1)
    cuts = np.unique(np.searchsorted(cum, np.arange(1, bins) / bins - 1e-12, side="left"))
    return np.searchsorted(cuts, np.arange(ca.size), side="left")


def binned(c: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.bincount(index, weights=c, minlength=int(index.max()) + 1 if index.size else 1).astype(np.int64)


def chi2(table: np.ndarray) -> tuple[float, float, int]:
    """χ² of homogeneity (no continuity correction) on a 2 × K table of counts."""
    keep = table.sum(axis=0) > 0
    t = table[:, keep]
    if t.shape[1] < 2:
        return 0.0, 1.0, 0
    r = _scipy_stats().chi2_contingency(t, correction=False)
    return float(r.statistic), float(r.pvalue), int(r.dof)


def cramers_v(table: np.ndarray) -> np.ndarray:
    """Cramér's V of 2 × K tables (last two axes), vectorized over leading axes."""
    t = np.asarray(table, dtype=np.float64)
    n = t.sum(axis=(-2, -1), keepdims=True)
    expected = t.sum(axis=-1, keepdims=True) * t.sum(axis=-2, keepdims=True) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        x2 = np.where(expected > 0, (t - expected) ** 2 / expected, 0.0).sum(axis=(-2, -1))
    return np.sqrt(x2 / n[..., 0, 0])


def js_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(a / a.sum(), b / b.sum(), base=2.0))


def wasserstein(rep_a: np.ndarray, ca: np.ndarray, rep_b: np.ndarray, cb: np.ndarray) -> float:
    ma, mb = ca > 0, cb > 0
    return float(_scipy_stats().wasserstein_distance(rep_a[ma], rep_b[mb], ca[ma], cb[mb]))


def weighted_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    m = counts > 0
    v, c = values[m], counts[m]
    cum = np.cumsum(c) / c.sum()
    return float(v[min(int(np.searchsorted(cum, q, side="left")), v.size - 1)])


def multinomial(rng: np.random.Generator, counts: np.ndarray, size: int) -> np.ndarray:
    n = int(counts.sum())
    return rng.multinomial(n, counts / n, size=size)


def interval(estimate: float, samples: np.ndarray, hi: float = np.inf) -> list[float]:
    """Basic (reverse-percentile) bootstrap interval: [2θ̂ − q₉₇.₅, 2θ̂ − q₂.₅], clipped at 0.

    PSI and V are biased upward (they are ≥ 0 and noise adds to them); the bootstrap
    replicates carry the same bias relative to θ̂, and reflecting them cancels it, where
    the plain percentile interval would sit above the estimate for small shifts.
    """
    a = (1 - CONFIDENCE) / 2
    q = np.quantile(samples, [a, 1 - a])
    return [float(np.clip(2 * estimate - q[1], 0.0, hi)), float(np.clip(2 * estimate - q[0], 0.0, hi))]


def ks_interval(d_lo: float, d_hi: float, na: int, nb: int) -> list[float]:
    """Analytical CI of the population D (Dvoretzky–Kiefer–Wolfowitz with Massart's constant).

    P(sup|F̂ − F| > ε) ≤ 2·exp(−2nε²) for each sample; spending α/2 on each,
    |D̂ − D| ≤ ε_a + ε_b with probability ≥ 1 − α. Distribution-free and valid for any n
    (conservative); ``d_lo``/``d_hi`` widen it by the histogram's own bound.
    """
    alpha = 1 - CONFIDENCE
    eps = sum(float(np.sqrt(np.log(4 / alpha) / (2 * n))) for n in (na, nb))
    return [max(0.0, d_lo - eps), min(1.0, d_hi + eps)]


def psi_interval(rng: np.random.Generator, pa: np.ndarray, pb: np.ndarray) -> list[float]:
    return interval(float(psi(pa, pb)), psi(multinomial(rng, pa, RESAMPLES), multinomial(rng, pb, RESAMPLES)))


def v_interval(rng: np.random.Generator, table: np.ndarray) -> list[float]:
    ra, rb = multinomial(rng, table[0], RESAMPLES), multinomial(rng, table[1], RESAMPLES)
    return interval(float(cramers_v(table)), cramers_v(np.stack([ra, rb], axis=1)), hi=1.0)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values), step-up, monotone, capped at 1."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if not m:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out
