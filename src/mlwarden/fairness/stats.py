"""Tests behind every flagged disparity, Benjamini–Hochberg across them, and intervals.

A group's metric and the reference's are two proportions (numerator over denominator
counts), so each comparison is a two-sided two-proportion test: the pooled z-test when
every expected cell count is at least 5, Fisher's exact test otherwise. The p-values of
all comparisons a check makes (groups × metrics × attributes) are corrected together
with Benjamini–Hochberg, which controls the false discovery rate among flagged findings.

Proportions get Wilson score intervals (they stay inside [0, 1] and keep their coverage
for small groups and rates near 0 or 1, where the Wald interval fails); differences of
proportions get Newcombe's hybrid score interval built from the two Wilson intervals;
ratios get the Katz log interval.
"""

from __future__ import annotations

import math

import numpy as np

MIN_EXPECTED = 5.0


def proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, str]:
    """Two-sided p-value that x1/n1 and x2/n2 share one proportion, and the test used."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, "none"
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0, "z"
    expected = min(n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled))
    if expected < MIN_EXPECTED:
        from scipy.stats import fisher_exact  # scipy.stats takes seconds to import: only when needed

        _, p = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]])
        return float(p), "fisher"
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (x1 / n1 - x2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2.0)), "z"


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """BH-adjusted q-values (NaN p-values stay NaN and do not count as tests)."""
    p = np.asarray(pvalues, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return q
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def z_of(confidence: float) -> float:
    """The two-sided normal quantile for a confidence level (1.96 for 0.95)."""
    from scipy.stats import norm  # scipy.stats takes seconds to import: only when needed

    return float(norm.ppf(1 - (1 - confidence) / 2))


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 − p2."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, z), wilson(k2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def katz(k1: int, n1: int, k2: int, n2: int, z: float) -> tuple[float, float, float]:
    """(p1/p2, low, high): the Katz log interval, with 0.5 added to empty cells."""
    if k1 == 0 or k2 == 0:
        k1, k2, n1, n2 = k1 + 0.5, k2 + 0.5, n1 + 0.5, n2 + 0.5  # type: ignore[assignment]
    r = (k1 / n1) / (k2 / n2)
    se = math.sqrt(max(0.0, 1 / k1 - 1 / n1 + 1 / k2 - 1 / n2))
    return r, r * math.exp(-z * se), r * math.exp(z * se)
