"""Extraction attacks through the Model facade: exact recovery, path-finding, surrogates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlwarden.attacks.extraction import (
    perturbed_rows,
    solve_linear,
    surrogate_curve,
    uniform_rows,
)
from mlwarden.attacks.extraction_paths import path_find
from mlwarden.attacks.trees import as_matrix
from mlwarden.attacks.trees_grid import feature_scales
from mlwarden.sources.model import (
    Feature,
    FeatureSchema,
    LocalModel,
    QueryBudget,
    infer_schema,
)

COLS = ["income", "debt", "years", "red", "green", "blue"]


def _data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    color = rng.integers(0, 3, n)
    df = pd.DataFrame({"income": rng.normal(50, 10, n), "debt": rng.uniform(0, 30, n),
                       "years": rng.integers(0, 20, n).astype(np.int64),
                       **{c: (color == k).astype(np.int64) for k, c in enumerate(COLS[3:])}})
    y = (df.income / 10 - df.debt / 8 + df.years / 5 + df.red + rng.normal(0, 0.8, n) > 4).astype(int).to_numpy()
    return df, y


def _schema(df: pd.DataFrame) -> FeatureSchema:
    base = infer_schema(COLS, df)
    return FeatureSchema(tuple(Feature(**{**f.__dict__, "group": "color"}) if f.name in COLS[3:] else f
                               for f in base.features))


@pytest.mark.parametrize("make", [lambda: LogisticRegression(max_iter=1000),
                                  lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.3))])
def test_logistic_model_recovered_exactly_in_d_plus_1_queries(make):
    df, y = _data()
    tr, te = df.iloc[:2000], df.iloc[2000:]
    est = make().fit(tr, y[:2000])
    model = LocalModel(est, schema=_schema(tr), budget=QueryBudget(len(COLS) + 1), where="t")
    rec = solve_linear(model, tr.median().to_frame().T, feature_scales(model.schema, tr))
    assert rec.queries == model.budget.used == len(COLS) + 1
    Xte = as_matrix(te)
    true_logit = est.decision_function(te)
    assert np.max(np.abs(rec.logit(Xte) - true_logit)) < 1e-6
    if isinstance(est, LogisticRegression):
        assert np.allclose(rec.weights, est.coef_[0], atol=1e-6) and abs(rec.bias - est.intercept_[0]) < 1e-6
    assert np.array_equal(rec.logit(Xte) > 0, est.predict(te) == 1)  # decisions agree on every test row


def test_path_finding_recovers_a_decision_tree_from_scores():
    df, y = _data()
    tr, te = df.iloc[:2000], df.iloc[2000:]
    est = DecisionTreeClassifier(max_depth=4, random_state=0).fit(tr, y[:2000])
    model = LocalModel(est, schema=_schema(tr), budget=QueryBudget(8000), where="t")
    res = path_find(model, tr.min().to_numpy(float), tr.max().to_numpy(float), tr)
    assert res.complete and res.queries == model.budget.used <= 8000
    got = np.array([int(np.argmax(v)) for v in res.tree.predict(as_matrix(te))])
    assert np.mean(got == est.predict(te)) >= 0.99
    root_f, root_t = est.tree_.feature[0], est.tree_.threshold[0]
    found = [t for f, t in zip(res.tree.feature, res.tree.threshold) if f == root_f]
    col = tr.iloc[:, root_f]
    tol = 0.25 if col.dtype.kind == "i" else 1e-3 * (col.max() - col.min())  # integers: pinned to a quarter step
    assert min(abs(t - root_t) for t in found) <= tol


def test_path_finding_stops_at_the_budget_and_still_answers():
    df, y = _data()
    est = DecisionTreeClassifier(max_depth=6, random_state=0).fit(df, y)
    model = LocalModel(est, schema=_schema(df), budget=QueryBudget(150), where="t")
    res = path_find(model, df.min().to_numpy(float), df.max().to_numpy(float), df)
    assert not res.complete and model.budget.used <= 150
    assert all(v is not None for v in res.tree.predict(as_matrix(df.iloc[:50])))


def test_surrogate_fidelity_grows_with_queries_and_policies_are_reported():
    df, y = _data(4000)
    tr, pool, hold = df.iloc[:2000], df.iloc[2000:3000], df.iloc[3000:]
    est = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(tr, y[:2000])
    sch = _schema(tr)
    model = LocalModel(est, schema=sch, budget=QueryBudget(1000), where="t")
    rng = np.random.default_rng(0)
    queries = perturbed_rows(sch, pool, feature_scales(sch, tr), 1000, rng)
    pts = surrogate_curve(model, queries, "in-distribution", [100, 1000], as_matrix(hold), est.predict(hold),
                          y[3000:], seed=0)
    assert model.budget.used == 1000
    assert {(p.policy, p.queries) for p in pts} == {(a, b) for a in ("scores", "rounded", "labels") for b in (100, 1000)}
    fid = {(p.policy, p.queries): p.fidelity for p in pts}
    assert fid[("scores", 1000)] >= 0.9 and fid[("labels", 1000)] >= 0.85
    assert max(fid[(pol, 1000)] for pol in ("scores", "labels")) > min(fid[(pol, 100)] for pol in ("scores", "labels"))
    labels_only = LocalModel(est, schema=sch, budget=QueryBudget(100), where="t")
    labels_only.exposes_proba = False
    pts = surrogate_curve(labels_only, queries.iloc[:100], "in-distribution", [100], as_matrix(hold),
                          est.predict(hold), None, seed=0)
    assert [p.policy for p in pts] == ["labels"] and pts[0].accuracy is None


def test_query_rows_respect_bounds_steps_and_one_hot_groups():
    df, _ = _data(500)
    sch = _schema(df)
    rng = np.random.default_rng(1)
    for rows in (uniform_rows(sch, df, 400, rng), perturbed_rows(sch, df, feature_scales(sch, df), 400, rng)):
        X = as_matrix(rows)
        for i, f in enumerate(sch.features):
            assert X[:, i].min() >= f.min - 1e-9 and X[:, i].max() <= f.max + 1e-9
        assert np.all(X[:, 2] == np.round(X[:, 2]))  # years stays an integer
        assert np.all(X[:, 3:].sum(axis=1) == 1)
