"""Gradient evasion for differentiable models: ART's FGSM, iterated (PGD) with repair after each step.

ART (adversarial-robustness-toolbox) computes the loss gradients of scikit-learn's
LogisticRegression and SVC directly (``art.estimators.classification.SklearnClassifier``).
Each PGD step is one ART FGSM step with a per-feature step size (a fraction of the radius,
in the feature's cost unit), a mask that freezes immutables, categories and one-hot groups,
then a projection onto the L∞ ball around the target and onto the constraints
(:func:`mlwarden.attacks.repair.repair`). Radii grow over ``RADII`` (in cost units per
feature); each target keeps its cheapest valid flip. The model is queried through the
facade (counted against the budget) only to confirm flips; gradient calls are white-box and
counted apart. ART loads only here: without it the check says what to install.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..sources.model import Model
from .cost import CostModel
from .repair import repair
from .space import Space

RADII = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
STEPS = 8
DIFFERENTIABLE = ("LogisticRegression", "SVC", "LinearSVC", "SGDClassifier")


class NotDifferentiable(Exception):
    """The estimator has no gradients ART can compute (the message says why)."""


@dataclass
class GradientResult:
    best: np.ndarray
    cost: np.ndarray
    gradient_calls: int
    stopped_early: bool
    reason: str | None


def art_classifier(estimator: Any, space: Space) -> Any:
    """ART's wrapper of ``estimator``; ImportError when ART is missing, NotDifferentiable otherwise."""
    name = type(estimator).__name__
    if name not in DIFFERENTIABLE:
        raise NotDifferentiable(f"{name} has no input gradients (gradient attacks suit {', '.join(DIFFERENTIABLE)})")
    if space.categorical.any():
        raise NotDifferentiable("the model reads category features directly; gradients need numbers")
    from art.estimators.classification import SklearnClassifier  # lazy: an optional extra

    lo = np.where(np.isfinite(space.lo), space.lo, -1e12)
    hi = np.where(np.isfinite(space.hi), space.hi, 1e12)
    try:
        return SklearnClassifier(model=estimator, clip_values=(lo.astype(np.float32), hi.astype(np.float32)))
    except (TypeError, ValueError) as e:
        raise NotDifferentiable(f"ART cannot wrap {name}: {e}") from e


def pgd(model: Model, space: Space, costm: CostModel, X0: np.ndarray, y: np.ndarray, *, deadline: float,
        radii: tuple[float, ...] = RADII, steps: int = STEPS) -> GradientResult:
    """Cheapest valid flip per target over growing L∞ radii (in cost units); ``y`` = class index."""
    import time

    from art.attacks.evasion import FastGradientMethod  # lazy: an optional extra

    clf = art_classifier(model.estimator, space)
    scales = np.asarray(costm.scales)
    mask = (~space.immutable & ~space.categorical).astype(np.float32)
    for g in space.groups:
        mask[list(g)] = 0.0
    onehot = np.eye(len(model.classes))[y]
    best = np.full_like(X0, np.nan)
    cost = np.full(len(X0), np.inf)
    calls, stopped, reason = 0, False, None
    for r in radii:
        todo = np.flatnonzero(np.isinf(cost))
        if not len(todo):
            break
        if time.perf_counter() > deadline:
            stopped, reason = True, "time limit"
            break
        x0 = X0[todo]
        x = x0.copy()
        lo, hi = x0 - r * scales, x0 + r * scales
        fgsm = FastGradientMethod(clf, eps=(r / 4 * scales).astype(np.float32),
                                  eps_step=(r / 4 * scales).astype(np.float32), minimal=False)
        for _ in range(steps):
            with warnings.catch_warnings():  # ART hands sklearn bare arrays; the model was fitted on named columns
                warnings.simplefilter("ignore", UserWarning)
                x = fgsm.generate(x.astype(np.float32), y=onehot[todo],
                                  mask=np.broadcast_to(mask, x.shape)).astype(float)
            calls += len(x)
            x = np.clip(x, lo, hi)
            x, ok = repair(space, x, x0, scales)
        rem = model.budget.remaining
        ok_rows = np.flatnonzero(ok)
        if rem is not None and rem < len(ok_rows):
            stopped, reason = True, "query budget"
            break
        if not len(ok_rows):
            continue
        pred = np.asarray(model.predict_proba(space.frame(x[ok_rows]))).argmax(axis=1) if model.exposes_proba else \
            np.searchsorted(model.classes, model.predict(space.frame(x[ok_rows])))
        flip = pred != y[todo][ok_rows]
        hit = todo[ok_rows[flip]]
        c = costm.cost(X0[hit], x[ok_rows[flip]])
        better = c < cost[hit]
        cost[hit[better]], best[hit[better]] = c[better], x[ok_rows[flip]][better]
    return GradientResult(best=best, cost=cost, gradient_calls=calls, stopped_early=stopped, reason=reason)
