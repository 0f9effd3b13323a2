"""Model extraction through the query interface: equation solving and learned surrogates.

Everything here talks to the model only through :class:`~mlwarden.sources.model.Model`
(``predict``/``predict_proba``, each row one query on its budget), so it runs the same
against a local artifact and a live endpoint.

- :func:`solve_linear` — Tramèr et al. (USENIX Security 2016): a binary logistic model
  returns p = σ(w·x + b), so logit(p) is linear in x and d+1 queries (a base point and
  one step along each feature) determine w and b exactly.
- :func:`surrogate_curve` — learning-based extraction: query in-distribution rows
  (eval rows, perturbed) or uniform rows over the schema's bounds, fit a surrogate on the
  answers, and measure fidelity (agreement with the target on held-out rows) as the query
  budget grows — with the full scores, scores rounded to 2 decimals, and labels only, so
  the report can say which output policy helps. Answers are bought once per query source
  at the largest budget; smaller budgets use a prefix, and the coarser policies are
  derived from the same answers (what the endpoint would have returned under them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import SourceError
from ..sources.model import FeatureSchema, Model
from .trees import as_matrix, to_frame

Policy = Literal["scores", "rounded", "labels"]
POLICIES: tuple[Policy, ...] = ("scores", "rounded", "labels")
CLIP = 1e-15
SURROGATE_CLIP = 1e-3
"""Scores are clipped to [1e-3, 1 - 1e-3] before the logit a surrogate regresses on: a forest's 0/1
votes would otherwise become ±35 and drown the informative scores in between."""


@dataclass(frozen=True)
class LinearRecovery:
    weights: np.ndarray
    bias: float
    queries: int

    def logit(self, X: np.ndarray) -> np.ndarray:
        return X @ self.weights + self.bias


def _logit(p: np.ndarray, clip: float = CLIP) -> np.ndarray:
    p = np.clip(p, clip, 1 - clip)
    return np.log(p) - np.log1p(-p)


def solve_linear(model: Model, base: pd.DataFrame, steps: np.ndarray) -> LinearRecovery:
    """w and b of a binary logistic model from ``d + 1`` queries: ``base`` (one row) and one step per feature."""
    if not model.exposes_proba:
        raise SourceError("equation solving needs scores; the model returns labels only")
    if len(model.classes) != 2:
        raise SourceError("equation solving is implemented for binary models")
    x0 = as_matrix(base[model.schema.names])[0]
    d = len(x0)
    X = np.repeat(x0[None, :], d + 1, axis=0)
    X[np.arange(1, d + 1), np.arange(d)] += steps
    cols = list(model.schema.names)
    p = model.predict_proba(pd.DataFrame(X, columns=cols))[:, 1]
    z = _logit(p)
    w = (z[1:] - z[0]) / steps
    return LinearRecovery(w, float(z[0] - x0 @ w), d + 1)


def uniform_rows(schema: FeatureSchema, like: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` rows drawn uniformly over the schema: bounds for numbers, allowed values, one hot column per group."""
    X = np.zeros((n, len(schema.features)))
    index = {f.name: i for i, f in enumerate(schema.features)}
    for i, f in enumerate(schema.features):
        if f.group:
            continue
        vals = _values(f.values)
        if vals is not None and not f.numeric:
            X[:, i] = rng.choice(vals, n)
            continue
        lo = f.min if f.min is not None else 0.0
        hi = f.max if f.max is not None else lo + 1.0
        v = rng.uniform(lo, hi, n)
        X[:, i] = np.round(v / f.step) * f.step if f.step else v
    for cols in schema.groups().values():
        hot = rng.integers(0, len(cols), n)
        for k, c in enumerate(cols):
            X[:, index[c]] = (hot == k).astype(float)
    return to_frame(X, like[schema.names])


def perturbed_rows(schema: FeatureSchema, rows: pd.DataFrame, scales: np.ndarray, n: int,
                   rng: np.random.Generator, noise: float = 0.1) -> pd.DataFrame:
    """``n`` rows resampled from ``rows`` with numeric features jittered by ``noise`` × scale (kept in bounds)."""
    base = as_matrix(rows[schema.names])
    X = base[rng.integers(0, len(base), n)].copy()
    for i, f in enumerate(schema.features):
        if not f.numeric or f.group or (f.values is not None and f.kind != "float" and f.step is None):
            continue
        X[:, i] = X[:, i] + rng.normal(0, noise * scales[i], n)
        if f.step:
            X[:, i] = np.round(X[:, i] / f.step) * f.step
        X[:, i] = np.clip(X[:, i], f.min if f.min is not None else -np.inf, f.max if f.max is not None else np.inf)
    return to_frame(np.nan_to_num(X), rows[schema.names])


def _values(values: Sequence[Any] | None) -> np.ndarray | None:
    if values is None:
        return None
    try:
        return np.asarray([float(v) for v in values])
    except (TypeError, ValueError):
        return None


def answers(model: Model, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels and (when exposed) class-1 scores for ``X``: one query per row."""
    if model.exposes_proba and len(model.classes) == 2:
        p = model.predict_proba(X)
        return model.classes[np.argmax(p, axis=1)], p[:, 1]
    return np.asarray(model.predict(X)), None


def fit_surrogate(X: np.ndarray, labels: np.ndarray, scores: np.ndarray | None, policy: Policy, seed: int) -> Any:
    """The attacker's best of a linear and a boosted surrogate (3-fold CV on its own answers)."""
    from threadpoolctl import threadpool_limits

    # small fits: OpenMP threads cost more than they give, and the engine already runs checks side by side
    with threadpool_limits(1):
        return _fit_surrogate(X, labels, scores, policy, seed)


def _fit_surrogate(X: np.ndarray, labels: np.ndarray, scores: np.ndarray | None, policy: Policy, seed: int) -> Any:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.nan_to_num(X)
    if policy != "labels" and scores is not None:
        target = _logit(np.round(scores, 2) if policy == "rounded" else scores, SURROGATE_CLIP)
        cands = [make_pipeline(StandardScaler(), Ridge(alpha=1e-6)),
                 HistGradientBoostingRegressor(max_iter=100, random_state=seed)]
        return _Regressed(_best(cands, X, target, seed, scoring=_sign_agreement), labels_of=np.unique(labels))
    if len(np.unique(labels)) < 2:
        return _Constant(labels[0])
    cands = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
             HistGradientBoostingClassifier(max_iter=100, random_state=seed)]
    return _best(cands, X, labels, seed)


def _sign_agreement(est: Any, X: np.ndarray, y: np.ndarray) -> float:
    """What the attacker wants of a score surrogate: the same decisions, not the best fit of the logit."""
    return float(np.mean((est.predict(X) > 0) == (y > 0)))


def _best(cands: list[Any], X: np.ndarray, y: np.ndarray, seed: int, scoring: Any = None) -> Any:
    from sklearn.model_selection import KFold, cross_val_score

    if len(X) < 30:
        return cands[0].fit(X, y)
    cv = KFold(3, shuffle=True, random_state=seed)
    scores = []
    for c in cands:
        try:
            scores.append(float(np.mean(cross_val_score(c, X, y, cv=cv, scoring=scoring))))
        except ValueError:  # a fold with one class
            scores.append(-np.inf)
    return cands[int(np.argmax(scores))].fit(X, y)


@dataclass
class _Regressed:
    reg: Any
    labels_of: np.ndarray

    def predict_positive(self, X: np.ndarray) -> np.ndarray:
        return self.reg.predict(np.nan_to_num(X)) > 0


@dataclass
class _Constant:
    label: Any

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.label)


def surrogate_decisions(sur: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    if isinstance(sur, _Regressed):
        return np.where(sur.predict_positive(X), classes[1], classes[0])
    return np.asarray(sur.predict(np.nan_to_num(X)))


@dataclass(frozen=True)
class CurvePoint:
    source: str
    policy: Policy
    queries: int
    fidelity: float
    accuracy: float | None


def surrogate_curve(model: Model, queries: pd.DataFrame, source: str, budgets: Sequence[int],
                    holdout: np.ndarray, holdout_target: np.ndarray, holdout_truth: np.ndarray | None,
                    seed: int) -> list[CurvePoint]:
    """Fidelity (and accuracy) of surrogates fit on prefixes of ``queries`` of each budget, per policy.

    ``queries`` must hold ``max(budgets)`` rows; they are bought from ``model`` (its budget).
    """
    labels, scores = answers(model, queries)
    X = as_matrix(queries[model.schema.names])
    out = []
    policies = POLICIES if scores is not None else ("labels",)
    for b in sorted(budgets):
        for pol in policies:
            sur = fit_surrogate(X[:b], labels[:b], None if scores is None else scores[:b], pol, seed)
            pred = surrogate_decisions(sur, holdout, model.classes)
            fid = float(np.mean(pred == holdout_target))
            acc = float(np.mean(pred == holdout_truth)) if holdout_truth is not None else None
            out.append(CurvePoint(source, pol, b, fid, acc))
    return out
