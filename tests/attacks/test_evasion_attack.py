"""The constraint-aware search as a library: no example it returns ever breaks a constraint."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mlwarden.attacks.cost import CostModel
from mlwarden.attacks.evasion import Config, Task, attack_chunk, nearest_seeds
from mlwarden.attacks.space import Space
from mlwarden.constraints import evaluate, parse_all
from mlwarden.sources.model import Feature, FeatureSchema, LocalModel, QueryBudget

NUMERIC = ["a", "b", "c", "d"]


@st.composite
def scenarios(draw):
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    n = 300
    feats, cols = [], {}
    for name in NUMERIC:
        step = draw(st.sampled_from([None, 1.0, 0.5, 0.01]))
        lo = float(draw(st.integers(-5, 0)))
        hi = lo + float(draw(st.integers(4, 20)))
        vals = rng.uniform(lo, hi, n)
        if step:
            vals = np.clip(np.round(vals / step) * step, np.ceil(lo / step) * step, np.floor(hi / step) * step)
        cols[name] = vals
        feats.append(Feature(name=name, kind="float", min=lo, max=hi, step=step,
                             immutable=draw(st.booleans()) and name != "a"))
    g = rng.integers(0, 3, n)
    for k in range(3):
        cols[f"g{k}"] = (g == k).astype(float)
        feats.append(Feature(name=f"g{k}", kind="int", min=0, max=1, step=1.0, group="grp",
                             immutable=False))
    frame = pd.DataFrame(cols)
    relations = draw(st.lists(st.sampled_from(["a <= b + 3", "a + b <= c + 10", "c - d >= -8",
                                               "a * b <= 40", "abs(a - d) <= 12", "b in {0, 1, 2, 3, 4, 5}"]),
                              max_size=3, unique=True))
    cons = parse_all(relations, list(frame.columns))
    y = (frame.a * draw(st.floats(0.2, 2)) + frame.g1 - frame.b * draw(st.floats(-1, 1)) +
         rng.normal(0, 0.5, n) > frame.a.median()).astype(int).to_numpy().copy()  # writable under copy-on-write
    kind = draw(st.sampled_from(["lr", "tree", "forest"]))
    est = {"lr": LogisticRegression(max_iter=500), "tree": DecisionTreeClassifier(max_depth=4, random_state=0),
           "forest": RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0)}[kind]
    if len(set(y)) < 2:
        y[:10] = 1 - y[:10]
    est.fit(frame, y)
    return FeatureSchema(tuple(feats)), cons, frame, y, est, seed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_returned_example_breaks_a_constraint(sc) -> None:
    schema, cons, frame, y, est, seed = sc
    space = Space.build(schema, cons)
    costm = CostModel.fit(schema, frame)
    model = LocalModel(est, schema=schema, budget=QueryBudget(5000), where="t")
    X = space.encode(frame)
    tg = np.arange(20)
    seeds = nearest_seeds(costm, X[tg], y[tg], X[100:], y[100:], 4)
    res = attack_chunk(model, space, costm, Config(generations=3),
                       Task(X0=X[tg], y=y[tg], seeds=seeds, queries=3000, seed=seed, seconds=60))
    assert res.queries_used <= 3000
    found = np.flatnonzero(np.isfinite(res.cost))
    for t in found:
        x0, x = X[tg][t], res.best[t]
        f = schema.features
        for j, feat in enumerate(f):
            if feat.immutable:
                assert x[j] == x0[j], feat.name
            if x[j] != x0[j] and feat.group is None:
                assert feat.min - 1e-9 <= x[j] <= feat.max + 1e-9, feat.name
                if feat.step:
                    k = x[j] / feat.step
                    assert abs(k - round(k)) < 1e-6, (feat.name, x[j])
        grp = x[-3:]
        assert sorted(grp.tolist()) == [0.0, 0.0, 1.0]
    if len(found):
        env = space.env(res.best[found])
        for c in cons:
            assert evaluate(c, env).all(), c.text
        pred = est.predict(space.frame(res.best[found]))
        assert (pred != y[tg][found]).all()  # every returned example really flips the decision
        assert np.allclose(res.cost[found], costm.cost(X[tg][found], res.best[found]))
