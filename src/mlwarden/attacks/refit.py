"""Refitting the audited model's recipe: a fresh clone of its hyper-parameters, trained anew.

Membership inference trains reference models and the poisoning wargame retrains on poisoned
feedback; both take the loaded estimator's *hyper-parameters* through
``sklearn.base.clone`` (never its code, never its fitted state). Estimators left with
``random_state=None`` are pinned to the attack's seed so that the same spec gives the same
numbers. The task functions here are module-level and take plain tuples, so an engine can
ship them to Dask workers.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd


def recipe(estimator: Any, seed: int) -> Any:
    """An unfitted clone of ``estimator`` whose unset ``random_state`` parameters are ``seed``."""
    from sklearn.base import clone

    fresh = clone(estimator)
    unset = {k: seed for k, v in fresh.get_params(deep=True).items()
             if (k == "random_state" or k.endswith("__random_state")) and v is None}
    if unset:
        fresh.set_params(**unset)
    return fresh


def true_label_proba(proba: np.ndarray, classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pr(y | x) per row: the score of each row's true label (0 when the model never saw that label)."""
    index = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
    cols = np.array([index.get(v, -1) for v in np.asarray(y).tolist()], dtype=np.int64)
    out = np.where(cols >= 0, proba[np.arange(len(cols)), np.maximum(cols, 0)], 0.0)
    return np.asarray(out, dtype=np.float64)


def fit_score_task(task: tuple[Any, pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray, float]) -> np.ndarray | None:
    """Fit a recipe on (X, y); return Pr(true label) on (X_eval, y_eval); None past the deadline.

    The deadline is wall-clock (``time.time()``): a task that starts after it does nothing,
    so a time-limited attack stops scheduling work instead of overrunning.
    """
    est, X, y, X_eval, y_eval, deadline = task
    if time.time() > deadline:
        return None
    est.fit(X, y)
    return true_label_proba(est.predict_proba(X_eval), est.classes_, y_eval)
