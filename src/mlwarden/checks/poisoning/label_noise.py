"""How many label issues honest labels would give: the noise null of ``data.poisoning.label_issues``.

Every real task has aleatoric noise: where the features don't decide the label, a share of
correct labels disagrees with the most likely class, and confident learning flags them like
flipped ones. So the observed count is compared with the count that labels *drawn from the
model's own out-of-fold probabilities* would give, counted by the very same rule:

1. :func:`calibrate` — out-of-fold probabilities of boosted trees are not calibrated, and an
   overconfident model makes honest noise look like excess. Matrix scaling (Platt scaling on
   additive log-ratios; Guo et al., 2017) is fitted cross-fitted, on the folds a row is not in.
   It has few parameters on purpose: a flexible calibrator (isotonic) would learn a flipped
   region's noise and explain it away.
2. :func:`confident_issues` — cleanlab's ``filter_by="confident_learning"`` rule (off-diagonal
   of the confident joint, minus rows whose given label is the argmax), vectorised so it can
   be recounted for every simulated labelling; ``tests/checks/poisoning`` proves it equal to
   cleanlab's.
3. :func:`simulate` — ``SIMULATIONS`` seeded draws of labels from the calibrated probabilities,
   each counted with thresholds recomputed from the drawn labels: the expected count, its
   95 % interval, a Monte Carlo p-value, and each row's probability of being flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIMULATIONS = 200
FLOAT_TOLERANCE = 1e-6  # cleanlab's fuzzy comparison, so the two rules agree to the row
THRESHOLD_FLOOR = 2e-6


def confident_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Boolean mask of label issues by confident learning (Northcutt et al., 2021).

    A row is an issue when at least one class is *confident* for it (probability at or above
    that class's threshold, the mean probability of the class over rows labelled with it),
    the confident class (the argmax when several are) is not its label, and its label is
    not the model's argmax either.
    """
    n, k = probs.shape
    sums = np.bincount(labels, weights=probs[np.arange(n), labels], minlength=k)
    counts = np.bincount(labels, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), 2.0)
    thresholds = np.maximum(thresholds, THRESHOLD_FLOOR)
    if k == 2:
        # the same rule, unrolled: a row labelled 1 is an issue iff class 0 is confident and beats
        # class 1 by more than the tolerance (then it is also the argmax), and the other way round
        p0, p1 = probs[:, 0], probs[:, 1]
        return np.where(labels == 1, (p1 + FLOAT_TOLERANCE <= p0) & (p0 >= thresholds[0] - FLOAT_TOLERANCE),
                        (p0 + FLOAT_TOLERANCE < p1) & (p1 >= thresholds[1] - FLOAT_TOLERANCE))
    confident = probs >= thresholds - FLOAT_TOLERANCE
    n_conf = confident.sum(axis=1)
    guess = np.where(n_conf > 1, probs.argmax(axis=1), confident.argmax(axis=1))
    nudged = probs.copy()
    nudged[np.arange(n), labels] += FLOAT_TOLERANCE
    return (n_conf > 0) & (guess != labels) & (nudged.argmax(axis=1) != labels)


def calibrate(probs: np.ndarray, labels: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Cross-fitted matrix scaling: each fold's probabilities recalibrated by a multinomial logistic
    regression on additive log-ratios, fitted on the other folds (binary: Platt scaling)."""
    from sklearn.linear_model import LogisticRegression

    logp = np.log(np.clip(probs, FLOAT_TOLERANCE, 1.0))
    z = logp[:, 1:] - logp[:, :1]
    out = np.empty_like(probs)
    k = probs.shape[1]
    if k == 2:
        for train, test in folds:
            a, b = _platt(z[train, 0], labels[train].astype(np.float64))
            p1 = 0.5 * (1.0 + np.tanh(0.5 * (a * z[test, 0] + b)))
            out[test] = np.column_stack([1.0 - p1, p1])
        return out
    for train, test in folds:
        present = np.unique(labels[train])
        model = LogisticRegression(C=100.0, max_iter=2000).fit(z[train], labels[train])
        cal = np.zeros((test.size, k))
        cal[:, present] = model.predict_proba(z[test])
        out[test] = cal
    return out


def _platt(z: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Slope and intercept of ``P(y=1) = sigmoid(a·z + b)``: Newton's method with step halving (plain
    Newton can overshoot on saturated scores) and a 1e-6 ridge so separable data stays finite.
    A 2-parameter logistic regression; sklearn's general solver is ~100x slower here."""
    ridge = 1e-6

    def loss(a: float, b: float) -> float:
        t = a * z + b
        return float(np.sum(np.logaddexp(0.0, t) - y * t) + ridge * (a * a + b * b) / 2)

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * z + b)))  # the sigmoid, without overflow
        w = p * (1 - p)
        g = np.array([np.dot(z, p - y) + ridge * a, np.sum(p - y) + ridge * b])
        h = np.array([[np.dot(w * z, z) + ridge, np.dot(w, z)], [np.dot(w, z), np.sum(w) + ridge]])
        step = np.linalg.solve(h, g)
        scale = 1.0
        while scale > 1e-6:
            trial = loss(a - scale * step[0], b - scale * step[1])
            if trial <= current:
                break
            scale /= 2
        else:
            break  # no step lowers the loss: converged as far as floating point allows
        a, b, current = a - scale * step[0], b - scale * step[1], trial
        if np.abs(scale * step).max() < 1e-10:
            break
    return float(a), float(b)


@dataclass(frozen=True, eq=False)  # holds an array: compare fields, not instances
class Null:
    """Counts of label issues that honest labels, drawn from the calibrated model, give."""

    expected: float
    low: float  # 2.5th percentile of the simulated counts
    high: float  # 97.5th percentile
    p_value: float  # P(simulated count >= observed), Monte Carlo with the +1 correction
    row_rate: np.ndarray  # per row: share of simulations that flagged it
    simulations: int
    seed: int


def simulate(observed: int, probs: np.ndarray, calibrated: np.ndarray, *, seed: int,
             simulations: int = SIMULATIONS) -> Null:
    """Draw labels from ``calibrated`` ``simulations`` times and count issues against ``probs``."""
    rng = np.random.default_rng(seed)
    n, k = calibrated.shape
    cum = np.cumsum(calibrated, axis=1)
    cum[:, -1] = np.inf  # rounding never leaves a draw without a class
    counts = np.empty(simulations, dtype=np.int64)
    flagged = np.zeros(n, dtype=np.int64)
    for s in range(simulations):
        u = rng.random((n,))
        drawn = (u[:, None] >= cum).sum(axis=1) if k > 2 else (u >= cum[:, 0]).astype(np.int64)
        mask = confident_issues(drawn, probs)
        counts[s] = int(mask.sum())
        flagged += mask
    lo, hi = (float(np.percentile(counts, q)) for q in (2.5, 97.5))
    return Null(expected=float(counts.mean()), low=float(lo), high=float(hi),
                p_value=float((1 + np.sum(counts >= observed)) / (simulations + 1)),
                row_rate=flagged / simulations, simulations=simulations, seed=seed)
