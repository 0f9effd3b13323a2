"""Tests behind every flagged disparity, and Benjamini–Hochberg across them.

A group's metric and the reference's are two proportions (numerator over denominator
counts), so each comparison is a two-sided two-proportion test: the pooled z-test when
every expected cell count is at least 5, Fisher's exact test otherwise. The p-values of
all comparisons a check makes (groups × metrics × attributes) are corrected together
with Benjamini–Hochberg, which controls the false discovery rate among flagged findings.
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
