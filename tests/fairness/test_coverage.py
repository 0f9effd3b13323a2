"""Bootstrap intervals cover the known truth about as often as they claim to."""

from __future__ import annotations

import numpy as np

from mlwarden.fairness.bootstrap import estimate, percentile_ci

# Two groups with known population cell probabilities (TN, FP, FN, TP).
TRUTH = np.array([[0.35, 0.15, 0.10, 0.40], [0.50, 0.10, 0.15, 0.25]])
SIZES = np.array([600, 400])


def test_95_percent_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    true_sr = TRUTH[:, 1] + TRUTH[:, 3]
    true_tpr = TRUTH[:, 3] / (TRUTH[:, 2] + TRUTH[:, 3])
    rng = np.random.default_rng(12345)
    hits = {"sr": 0, "tpr": 0, "diff": 0}
    reps = 200
    for rep in range(reps):
        cells = np.stack([rng.multinomial(n, p) for n, p in zip(SIZES, TRUTH)])[:, None, :]
        est = estimate(cells, None, np.eye(2), 1000, seed=rep)
        lo, hi = percentile_ci(est.samples["selection_rate"], 0.95)
        hits["sr"] += int(lo[0] <= true_sr[0] <= hi[0])
        lo, hi = percentile_ci(est.samples["true_positive_rate"], 0.95)
        hits["tpr"] += int(lo[1] <= true_tpr[1] <= hi[1])
        d = est.samples["selection_rate"][:, 1] - est.samples["selection_rate"][:, 0]
        lo, hi = percentile_ci(d[:, None], 0.95)
        hits["diff"] += int(lo[0] <= true_sr[1] - true_sr[0] <= hi[0])
    for name, k in hits.items():
        assert 0.90 <= k / reps <= 0.99, (name, k / reps)
