"""Attribute inference: does the model's output help guess a sensitive attribute?

An attacker who knows a person's other features and sees the model's output (its score,
or only its decision) trains a classifier for the sensitive attribute. What the *model*
leaks is the difference between that classifier with the output and without it — the
features alone may already predict the attribute, and that is a data question, not a
model one. Both classifiers are scored out of fold (stratified K-fold), and the gain in
AUC gets a paired bootstrap interval over rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .membership import auc

FOLDS = 5
MIN_GROUP = 20
"""Groups of the attribute with fewer rows are pooled as "(other)": K-fold needs a few per fold."""
RESAMPLES = 200
OTHER = "(other)"


def target_groups(values: pd.Series) -> np.ndarray:
    """The attribute as group labels: missing as "(missing)", small groups pooled."""
    y = values.astype("object").where(values.notna(), "(missing)").astype(str)
    counts = y.value_counts()
    return np.where(y.map(counts).to_numpy() >= MIN_GROUP, y.to_numpy(), OTHER)


def encodings(frame: pd.DataFrame, groups: np.ndarray, columns: list[str]) -> list[str]:
    """Columns that are a function of the attribute (one value per group): its indicators or copies."""
    out = []
    for c in columns:
        per = pd.DataFrame({"g": groups, "v": frame[c].to_numpy()}).groupby("g")["v"].nunique(dropna=False)
        if len(per) > 1 and bool((per <= 1).all()):
            out.append(c)
    return out


def numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Category codes for non-numeric columns, so the attacker's classifier can read every column."""
    out = {}
    for c in frame.columns:
        col = frame[c]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            out[c] = pd.to_numeric(col, errors="coerce").astype(float)
        else:
            out[c] = col.astype("category").cat.codes.astype(float).replace(-1.0, np.nan)
    return pd.DataFrame(out, index=frame.index)


def oof_proba_task(task: tuple[pd.DataFrame, np.ndarray, int]) -> np.ndarray:
    """Out-of-fold class probabilities of a small gradient-boosting classifier (columns: sorted groups)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold

    X, y, seed = task
    classes = np.unique(y)
    proba = np.zeros((len(y), classes.size))
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(X, y):
        clf = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, random_state=seed)
        clf.fit(X.iloc[train], y[train])
        cols = np.searchsorted(classes, clf.classes_)
        proba[np.ix_(test, cols)] = clf.predict_proba(X.iloc[test])
    return proba


def auc_ovr(y: np.ndarray, proba: np.ndarray) -> float:
    """One-vs-rest AUC weighted by group size (binary: the plain AUC); equal to scikit-learn's.

    Rank-based (Mann–Whitney, ties count half): the bootstrap below calls it hundreds of times,
    where scikit-learn's validating ``roc_auc_score`` cost seconds per hundred calls.
    """
    classes = np.unique(y)
    if classes.size == 2:
        pos = y == classes[1]
        return auc(proba[pos, 1], proba[~pos, 1])
    total = 0.0
    for i, c in enumerate(classes):
        pos = y == c
        total += pos.mean() * auc(proba[pos, i], proba[~pos, i])
    return float(total)


def gain(y: np.ndarray, without: np.ndarray, with_: np.ndarray, rng: np.random.Generator,
         resamples: int = RESAMPLES) -> dict[str, Any]:
    """AUC of both attackers, the gain from the model's output, and its paired bootstrap 95 % interval."""
    a0, a1 = auc_ovr(y, without), auc_ovr(y, with_)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, y.size, y.size)
        if np.unique(y[idx]).size != np.unique(y).size:
            continue  # a resample missing a group has no AUC for it
        diffs.append(auc_ovr(y[idx], with_[idx]) - auc_ovr(y[idx], without[idx]))
    lo, hi = np.quantile(diffs, [0.025, 0.975]) if diffs else (np.nan, np.nan)
    return {"auc_features_only": round(a0, 4), "auc_with_model_output": round(a1, 4),
            "auc_gain": round(a1 - a0, 4), "auc_gain_ci": [round(float(lo), 4), round(float(hi), 4)]}
