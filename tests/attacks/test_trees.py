"""Tree-ensemble bounds against brute force over the threshold grid, with the real model as judge."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mlwarden.attacks.trees import make_problem, tree_bounds
from mlwarden.attacks.trees_grid import feature_scales
from mlwarden.attacks.trees_read import UnsupportedModel, read_ensemble
from mlwarden.sources.model import Feature, FeatureSchema, LocalModel, QueryBudget

GROUP = ("red", "green", "blue")


def _data(n: int = 500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    color = rng.integers(0, 3, n)
    df = pd.DataFrame({
        "income": rng.normal(50, 10, n),
        "years": rng.integers(0, 20, n),
        "age": rng.integers(18, 70, n),  # immutable
        **{c: (color == k).astype(int) for k, c in enumerate(GROUP)},
    })
    y = (df.income / 10 + df.years / 4 - df.age / 30 + 1.5 * df.red + rng.normal(0, 0.7, n) > 6).astype(int)
    return df, y.to_numpy()


def _schema() -> FeatureSchema:
    return FeatureSchema((
        Feature(name="income", kind="float", min=0.0, max=120.0),
        Feature(name="years", kind="int", min=0.0, max=19.0, step=1.0),
        Feature(name="age", kind="int", min=18.0, max=69.0, step=1.0, immutable=True),
        *(Feature(name=c, kind="int", min=0.0, max=1.0, step=1.0, group="color") for c in GROUP),
    ))


def _brute(est, ens, df: pd.DataFrame, x: np.ndarray, scales: np.ndarray) -> float:
    """The cheapest flip over every combination of grid values, judged by ``est.predict``."""
    sch = _schema()
    cands = []
    for i, f in enumerate(sch.features[:3]):
        vals = {x[i]}
        if not f.immutable:
            for t in ens.thresholds(i):
                if f.step:
                    vals |= {math.floor(t), math.floor(t) + 1}
                else:
                    vals |= {t - 1e-5 * scales[i], t + 1e-5 * scales[i]}
            vals = {v for v in vals if v == x[i] or f.min <= v <= f.max}
        cands.append(sorted(vals))
    combos = np.array([[*c, *np.eye(3)[k]] for c in itertools.product(*cands) for k in range(3)])
    before = est.predict(pd.DataFrame(x[None, :], columns=df.columns))[0]
    after = est.predict(pd.DataFrame(combos, columns=df.columns))
    cost = np.abs(combos[:, :2] - x[:2]) @ (1 / scales[:2]) + (np.abs(combos[:, 3:] - x[3:]).sum(axis=1) > 0)
    flips = after != before
    return float(cost[flips].min()) if flips.any() else math.inf


@pytest.mark.parametrize("make", [
    lambda: RandomForestClassifier(n_estimators=5, max_depth=3, random_state=1),
    lambda: GradientBoostingClassifier(n_estimators=6, max_depth=2, random_state=1),
    lambda: HistGradientBoostingClassifier(max_iter=6, max_leaf_nodes=5, random_state=1),
])
def test_bounds_bracket_brute_force_and_milp_is_exact(make):
    df, y = _data()
    est = make().fit(df, y)
    sch = _schema()
    X = df.to_numpy(np.float64)
    ens = read_ensemble(est, X[:100])
    scales = feature_scales(sch, df)
    model = LocalModel(est, schema=sch, budget=QueryBudget(10_000), where="test")
    prob = make_problem(ens, sch, scales, X[:300], milp_seconds=5.0)
    targets = df.iloc[300:330]
    tb = tree_bounds(model, prob, targets)
    assert tb.disagreed == 0 and len(tb.rows) == 30
    assert model.budget.used == 30 + sum(r.example is not None for r in tb.rows)  # originals + confirmations
    for k, r in enumerate(tb.rows):
        x = targets.to_numpy(np.float64)[k]
        exact = _brute(est, ens, df, x, scales)
        assert r.lower <= exact + 1e-3, (k, r, exact)
        assert exact <= r.upper + 1e-3, (k, r, exact)
        if r.status == "optimal":
            assert r.exact and r.upper == pytest.approx(exact, abs=1e-3)
        if r.example is not None:
            ex = r.example
            assert tb.confirmed[k]  # the model itself decides the example the other way
            assert ex[2] == x[2]  # immutable age never changes
            assert ex[3:].sum() == 1 and set(ex[3:]) <= {0.0, 1.0}  # one-hot stays one-hot
            assert 0 <= ex[0] <= 120 and 0 <= ex[1] <= 19 and ex[1] == round(ex[1])
            assert set(r.changes) <= {"income", "years", *GROUP}


def test_an_immutable_only_route_is_certified_robust():
    """When only an immutable feature could flip the decision, the lower bound is infinite."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"age": rng.integers(18, 70, 400), "noise": rng.normal(size=400)})
    y = (df.age > 40).astype(int).to_numpy()
    est = DecisionTreeClassifier(max_depth=1).fit(df, y)  # one split, on age only
    sch = FeatureSchema((Feature(name="age", kind="int", min=18, max=69, step=1, immutable=True),
                         Feature(name="noise", kind="float", min=-5, max=5)))
    ens = read_ensemble(est, df.to_numpy(float))
    prob = make_problem(ens, sch, feature_scales(sch, df), df.to_numpy(float))
    tb = tree_bounds(LocalModel(est, schema=sch, budget=QueryBudget(None), where="t"), prob, df.iloc[:10])
    assert all(math.isinf(r.lower) and math.isinf(r.upper) and r.example is None for r in tb.rows)


@pytest.mark.parametrize("make", [
    lambda: RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0),
    lambda: ExtraTreesClassifier(n_estimators=20, max_depth=6, random_state=0),
    lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
    lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
    lambda: DecisionTreeClassifier(max_depth=5, random_state=0),
])
def test_reading_reproduces_every_decision(make):
    df, y = _data(800, seed=5)
    df.loc[::17, "income"] = np.nan  # missing values take the learned direction
    est = make()
    if isinstance(est, GradientBoostingClassifier):  # it does not accept missing values
        df["income"] = df["income"].fillna(50.0)
    est.fit(df, y)
    ens = read_ensemble(est, df.to_numpy(float)[:200])
    pos = ens.positive(df.to_numpy(float))
    assert np.array_equal(pos, est.predict(df) == est.classes_[1])


def test_non_tree_multiclass_and_categorical_models_are_refused():
    df, y = _data(300)
    with pytest.raises(UnsupportedModel, match="not a tree ensemble"):
        read_ensemble(LogisticRegression(max_iter=500).fit(df, y))
    with pytest.raises(UnsupportedModel, match="binary"):
        read_ensemble(RandomForestClassifier(n_estimators=3).fit(df, np.arange(len(df)) % 3))
    cat = HistGradientBoostingClassifier(max_iter=3, categorical_features=[1]).fit(df, y)
    with pytest.raises(UnsupportedModel, match="categorical"):
        read_ensemble(cat)
