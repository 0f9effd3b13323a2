"""Membership inference: was this row in the training data? Threshold baseline and offline RMIA.

Scores (higher = "member"):

- **threshold** — Pr(true label | x) under the target model (equivalently minus its loss);
  labels only: **correctness**, 1 when the model gets the row right (Yeom et al. 2018).
- **RMIA** (Zarifzadeh et al., ICML 2024), offline: the likelihood ratio of x,
  Pr(x|θ) / Pr(x), is compared with that of population samples z, and the score is the
  share of z it beats by a factor ``gamma``. Pr(x) comes from reference models trained with
  the same recipe on random halves of a pool (members ∪ non-members); for each point only
  the reference models that did *not* train on it count (OUT models), and the paper's
  offline correction turns their mean into an estimate of the IN/OUT average:
  Pr(x) = ½((1 + a)·Pr_OUT(x) + (1 − a)).

:func:`evaluate` gives AUC and TPR at fixed low FPRs with stratified bootstrap intervals
and the ROC curve sampled on a log FPR grid — the figures LiRA (Carlini et al., S&P 2022)
asked the field to report instead of accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OFFLINE_A = 0.3
"""The paper's offline scaling ``a`` (its default; ~0.2–0.6 work on its datasets)."""
GAMMA = 1.0
"""Pairwise likelihood-ratio threshold: x beats z when LR(x)/LR(z) ≥ gamma."""
FPRS = (0.001, 0.01)
RESAMPLES = 200
_EPS = 1e-12


def reference_plan(n: int, refs: int, rng: np.random.Generator) -> np.ndarray:
    """(n × refs) bool: which pool rows each reference model trains on.

    Models come in complementary pairs (a random half and the other half), so with an even
    number every row is OUT for exactly refs/2 models; a single model leaves half the rows
    with one OUT model and the other half with none (those cannot be scored).
    """
    plan = np.zeros((n, refs), dtype=bool)
    for k in range(0, refs, 2):
        half = rng.permutation(n) < n // 2
        plan[:, k] = half
        if k + 1 < refs:
            plan[:, k + 1] = ~half
    return plan


def out_mean(ref_p: np.ndarray, plan: np.ndarray) -> np.ndarray:
    """Mean of Pr(true label) over each row's OUT models; NaN where every model trained on it."""
    out = ~plan
    k = out.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, (ref_p * out).sum(axis=1) / np.maximum(k, 1), np.nan)


def rmia_scores(p_x: np.ndarray, out_x: np.ndarray, p_z: np.ndarray, out_z: np.ndarray, *,
                a: float = OFFLINE_A, gamma: float = GAMMA) -> np.ndarray:
    """Offline RMIA: for each x, the share of z with Pr(x|θ)/Pr(x) ≥ gamma · Pr(z|θ)/Pr(z)."""
    ratio_x = np.clip(p_x, _EPS, None) / np.clip(0.5 * ((1 + a) * out_x + (1 - a)), _EPS, None)
    ratio_z = np.sort(np.clip(p_z, _EPS, None) / np.clip(0.5 * ((1 + a) * out_z + (1 - a)), _EPS, None))
    return np.searchsorted(ratio_z, ratio_x / gamma, side="right") / max(1, ratio_z.size)


def auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties count half)."""
    m, n = members.size, nonmembers.size
    if not m or not n:
        return float("nan")
    # scipy.stats costs ~0.3-0.5 s to import: only when used
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([members, nonmembers]))
    return float((r[:m].sum() - m * (m + 1) / 2) / (m * n))


def tpr_at(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> float:
    """Highest TPR with FPR ≤ ``fpr``: members strictly above the (k+1)-th highest non-member score."""
    n = nonmembers.size
    if not n or not members.size:
        return float("nan")
    k = int(np.floor(fpr * n + 1e-9))
    if k >= n:
        return 1.0
    cut = np.partition(nonmembers, n - 1 - k)[n - 1 - k]
    return float((members > cut).mean())


def evaluate(members: np.ndarray, nonmembers: np.ndarray, rng: np.random.Generator, *,
             fprs: tuple[float, ...] = FPRS, resamples: int = RESAMPLES, points: int = 40) -> dict[str, Any]:
    """AUC and TPR@FPR with 95 % percentile intervals (members and non-members resampled apart), and
    the ROC curve as [FPR, TPR, low, high] rows on :func:`roc_grid`.

    ``meaningful`` says, per FPR, whether there are enough non-members for it: at least
    1/FPR (1,000 for 0.1 %), or the FPR is set by a handful of rows.
    """
    members, nonmembers = np.asarray(members, float), np.asarray(nonmembers, float)
    if not members.size or not nonmembers.size:
        raise ValueError("membership evaluation needs members and non-members")
    out: dict[str, Any] = {"members": int(members.size), "nonmembers": int(nonmembers.size),
                           "auc": round(auc(members, nonmembers), 4)}
    grid = roc_grid(nonmembers.size, points)
    boots = np.empty((resamples, 1 + len(fprs)))
    curves = np.empty((resamples, grid.size))
    for b in range(resamples):
        mb = members[rng.integers(0, members.size, members.size)]
        nb = nonmembers[rng.integers(0, nonmembers.size, nonmembers.size)]
        boots[b] = [auc(mb, nb), *(tpr_at(mb, nb, f) for f in fprs)]
        curves[b] = [tpr_at(mb, nb, f) for f in grid]
    lo, hi = np.nanquantile(boots, [0.025, 0.975], axis=0)
    band = np.nanquantile(curves, [0.025, 0.975], axis=0) if resamples else np.full((2, grid.size), np.nan)
    out["auc_ci"] = [round(float(lo[0]), 4), round(float(hi[0]), 4)]
    out["tpr_at_fpr"] = {}
    for j, f in enumerate(fprs, start=1):
        out["tpr_at_fpr"][_pct(f)] = {"tpr": round(tpr_at(members, nonmembers, f), 5),
                                      "ci": [round(float(lo[j]), 5), round(float(hi[j]), 5)],
                                      "meaningful": nonmembers.size >= round(1 / f)}
    out["roc"] = [[round(float(f), 6), round(tpr_at(members, nonmembers, f), 5),
                   round(float(band[0, i]), 5), round(float(band[1, i]), 5)] for i, f in enumerate(grid)]
    return out


def roc_grid(n: int, points: int = 40) -> np.ndarray:
    """A log-spaced FPR grid from 1/n to 1 (what a log-scaled ROC plot needs), with 0.1 %, 1 %, 10 %."""
    if not n:
        return np.empty(0)
    grid = np.unique(np.concatenate([np.geomspace(1 / n, 1.0, points), [0.001, 0.01, 0.1]]))
    return grid[grid >= 1 / n - 1e-12]


def _pct(f: float) -> str:
    return f"{f * 100:g}%"
