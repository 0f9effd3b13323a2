"""Tree ensembles read into one representation: flat node arrays over every tree.

scikit-learn's DecisionTree, RandomForest, ExtraTrees, GradientBoosting and
HistGradientBoosting binary classifiers (and XGBoost/LightGBM, never imported here: their
boosters are not readable from a safe-loaded pickle) become an :class:`Ensemble` whose
score is ``base + Σ leaf values`` and whose decision is class 1 exactly when the score is
above ``cut`` (forests: the mean class-1 probability against 0.5; boosting: the raw
log-odds against 0). Ties go to class 0, as ``argmax`` does in scikit-learn.

A split sends ``x <= threshold`` left and a missing value where the tree learned to send it.
scikit-learn's trees compare ``float32(x)``; HistGradientBoosting compares float64 against
``num_threshold`` (the real threshold of its bin split). Categorical HistGB splits (bitsets)
are refused. Every reading is checked against the estimator's own scores on sample rows:
trees that do not reproduce the model are never attacked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MlwardenError


class UnsupportedModel(MlwardenError):
    """The model is not a tree ensembles mlwarden can read (the message says why)."""


@dataclass(frozen=True, eq=False)
class Ensemble:
    """All trees of a binary classifier as flat arrays (node ids are global; -1: none)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    """Contribution of a leaf to the score (already divided by the tree count for forests)."""
    roots: np.ndarray
    levels: tuple[np.ndarray, ...]
    """Internal nodes by depth: level-order propagation without a Python loop over nodes."""
    base: float
    cut: float
    float32: bool
    kind: str
    n_features: int

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_leaves(self) -> int:
        return int((self.feature < 0).sum())

    def thresholds(self, f: int) -> np.ndarray:
        """Sorted distinct split thresholds on feature ``f``."""
        return np.unique(self.threshold[self.feature == f])

    def cast(self, X: np.ndarray) -> np.ndarray:
        """``X`` as the model compares it (float32-rounded for scikit-learn trees)."""
        X = np.asarray(X, dtype=np.float64)
        return X.astype(np.float32).astype(np.float64) if self.float32 else X

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """(rows, trees) → the leaf each row reaches in each tree."""
        Xc = np.atleast_2d(self.cast(X))
        node = np.repeat(self.roots[None, :], len(Xc), axis=0)
        for _ in range(len(self.levels)):
            f = self.feature[node]
            inner = f >= 0
            if not inner.any():
                break
            v = np.take_along_axis(Xc, np.where(inner, f, 0), axis=1)
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return node

    def score(self, X: np.ndarray) -> np.ndarray:
        return self.base + self.value[self.leaves(X)].sum(axis=1)

    def positive(self, X: np.ndarray) -> np.ndarray:
        """True where the decision is class 1 (``classes_[1]``)."""
        return self.score(X) > self.cut


def read_ensemble(est: Any, X: np.ndarray | None = None) -> Ensemble:
    """The trees of ``est`` (a binary tree-ensemble classifier), checked against it on ``X``."""
    name = type(est).__name__
    classes = getattr(est, "classes_", None)
    if classes is None or len(classes) != 2:
        raise UnsupportedModel(f"{name} is not a binary classifier; the tree bounds handle two classes")
    if name in ("DecisionTreeClassifier", "ExtraTreeClassifier"):
        trees, base, cut, f32 = [_sk_tree(est.tree_, proba=True, weight=1.0)], 0.0, 0.5, True
    elif name in ("RandomForestClassifier", "ExtraTreesClassifier"):
        n = len(est.estimators_)
        trees, base, cut, f32 = [_sk_tree(t.tree_, proba=True, weight=1.0 / n) for t in est.estimators_], 0.0, 0.5, True
    elif name == "GradientBoostingClassifier":
        lr = float(est.learning_rate)
        trees, base, cut, f32 = [_sk_tree(t.tree_, proba=False, weight=lr) for t in est.estimators_[:, 0]], 0.0, 0.0, True
    elif name == "HistGradientBoostingClassifier":
        trees = [_hist_tree(p[0]) for p in est._predictors]
        base, cut, f32 = float(np.ravel(est._baseline_prediction)[0]), 0.0, False
    else:
        raise UnsupportedModel(f"{name} is not a tree ensemble mlwarden can read (scikit-learn DecisionTree, "
                               "RandomForest, ExtraTrees, GradientBoosting, HistGradientBoosting classifiers)")
    ens = _flatten(trees, base=base, cut=cut, float32=f32, kind=name, n_features=int(est.n_features_in_))
    if X is not None and len(X):
        ens = _calibrate(ens, est, np.asarray(X, dtype=np.float64))
    return ens


def _sk_tree(t: Any, *, proba: bool, weight: float) -> dict[str, np.ndarray]:
    val = np.asarray(t.value)[:, 0, :]
    if proba:
        tot = val.sum(axis=1)
        v = np.divide(val[:, 1], tot, out=np.zeros(len(val)), where=tot > 0)
    else:
        v = val[:, 0]
    miss = np.asarray(getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=bool)), dtype=bool)
    return {"feature": np.asarray(t.feature, dtype=np.int64), "threshold": np.asarray(t.threshold, dtype=np.float64),
            "left": np.asarray(t.children_left, dtype=np.int64), "right": np.asarray(t.children_right, dtype=np.int64),
            "missing_left": miss, "value": v * weight}


def _hist_tree(pred: Any) -> dict[str, np.ndarray]:
    nodes = pred.nodes
    if bool(np.any(nodes["is_categorical"] & ~nodes["is_leaf"].astype(bool))):
        raise UnsupportedModel("HistGradientBoosting with categorical splits (bitsets) is not supported yet; "
                               "one-hot encode the categories, or accept black-box evasion only")
    leaf = nodes["is_leaf"].astype(bool)
    return {"feature": np.where(leaf, -1, nodes["feature_idx"].astype(np.int64)),
            "threshold": np.asarray(nodes["num_threshold"], dtype=np.float64),
            "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
            "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
            "missing_left": nodes["missing_go_to_left"].astype(bool),
            "value": np.where(leaf, nodes["value"], 0.0).astype(np.float64)}


def _flatten(trees: list[dict[str, np.ndarray]], **kw: Any) -> Ensemble:
    parts: dict[str, list[np.ndarray]] = {k: [] for k in trees[0]}
    roots, depth_parts, off = [], [], 0
    for t in trees:
        n = len(t["feature"])
        for k, a in t.items():
            parts[k].append(a + off if k in ("left", "right") else a)
        for k in ("left", "right"):
            parts[k][-1][t[k] < 0] = -1
        parts["value"][-1] = np.where(t["feature"] < 0, t["value"], 0.0)
        depth_parts.append(_depths(t["left"], t["right"]) + 0)
        roots.append(off)
        off += n
    flat = {k: np.concatenate(v) for k, v in parts.items()}
    depth = np.concatenate(depth_parts)
    inner = flat["feature"] >= 0
    levels = tuple(np.flatnonzero(inner & (depth == d)) for d in range(int(depth[inner].max(initial=-1)) + 1))
    return Ensemble(**flat, roots=np.asarray(roots, dtype=np.int64), levels=levels, **kw)  # type: ignore[arg-type]


def _depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(left), dtype=np.int64)
    frontier = np.array([0])
    d = 0
    while len(frontier):
        depth[frontier] = d
        kids = np.concatenate([left[frontier], right[frontier]])
        frontier = kids[kids >= 0]
        d += 1
    return depth


def _calibrate(ens: Ensemble, est: Any, X: np.ndarray) -> Ensemble:
    """Check (and, for boosting, fix the constant of) the reading against the estimator's scores."""
    import pandas as pd

    names = getattr(est, "feature_names_in_", None)
    Xq = pd.DataFrame(X, columns=list(names)) if names is not None else X
    mine = ens.score(X) - ens.base
    if ens.cut == 0.5:
        theirs = np.asarray(est.predict_proba(Xq))[:, 1]
        base = 0.0
    else:
        theirs = np.asarray(est.decision_function(Xq)).ravel()
        base = float(np.median(theirs - mine))
    err = float(np.max(np.abs(theirs - mine - base)))
    if not np.isfinite(err) or err > 1e-6 * max(1.0, float(np.max(np.abs(theirs)))):
        raise UnsupportedModel(f"the trees read from {ens.kind} do not reproduce its scores (max error {err:.2g}); "
                               "the bounds would not be about this model")
    return Ensemble(**{**ens.__dict__, "base": base})
