"""Benchmark: mlwarden's constraint-aware evasion vs ART HopSkipJump on mixed tabular data.

A generated loan-like set (4,000 rows): floats, integers with steps, an immutable age, a
relation ``open_acc <= total_acc`` and a three-column one-hot group. Logistic regression,
random forest and HistGradientBoosting are trained on it; 200 test rows each model gets
right are attacked by both, in the same process, through the same counting predict function.

An example counts only when it flips the decision *and* satisfies every constraint
(immutables, bounds, steps, the one-hot group, the relation). HopSkipJump gets a mask on the
immutable feature (ART knows no groups or relations); its invalid examples are counted.
Prints one table; run by hand:  .venv/bin/python bench/bench_evasion.py [--targets 200] [--hsj-iter 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlwarden.attacks.cost import CostModel
from mlwarden.attacks.evasion import Config, Task, attack_chunk, nearest_seeds
from mlwarden.attacks.space import Space
from mlwarden.constraints import parse_all
from mlwarden.sources.model import Feature, FeatureSchema, LocalModel, QueryBudget

QUERIES_PER_TARGET = 100


def data(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, FeatureSchema]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "income": rng.lognormal(10.8, 0.4, n).round(2),
        "debt": rng.uniform(0, 40_000, n).round(2),
        "amount": (rng.uniform(1000, 40_000, n) / 100).round() * 100,
        "term": rng.choice([12, 24, 36, 48, 60], n),
        "age": rng.integers(18, 80, n),
        "open_acc": rng.integers(0, 15, n),
    })
    df["total_acc"] = df.open_acc + rng.integers(0, 10, n)
    home = rng.choice(3, n, p=[0.3, 0.5, 0.2])
    for k, name in enumerate(("home_own", "home_rent", "home_mortgage")):
        df[name] = (home == k).astype(int)
    z = (np.log(df.income) - 10.8) * 2.5 - df.debt / 20_000 - df.amount / 25_000 + 0.02 * df.term \
        + 0.8 * df.home_own - 0.4 * df.home_rent + 0.01 * (df.age - 45) - 0.05 * df.open_acc + rng.normal(0, 0.5, n)
    y = (z > np.median(z)).astype(int).to_numpy()
    lo, hi = df.min(), df.max()
    feats = [Feature(name="income", kind="float", min=float(lo.income), max=float(hi.income), step=0.01),
             Feature(name="debt", kind="float", min=0, max=40_000, step=0.01),
             Feature(name="amount", kind="float", min=1000, max=40_000, step=100),
             Feature(name="term", kind="int", min=12, max=60, step=12),
             Feature(name="age", kind="int", min=18, max=79, step=1, immutable=True),
             Feature(name="open_acc", kind="int", min=0, max=14, step=1),
             Feature(name="total_acc", kind="int", min=0, max=23, step=1)]
    feats += [Feature(name=g, kind="int", min=0, max=1, step=1, group="home")
              for g in ("home_own", "home_rent", "home_mortgage")]
    return df, y, FeatureSchema(tuple(feats))


class Counter:
    """The one predict function both attacks call: counts rows, returns probabilities."""

    def __init__(self, est, columns) -> None:
        self.est, self.columns, self.rows = est, list(columns), 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.rows += len(x)
        return self.est.predict_proba(pd.DataFrame(np.asarray(x, float), columns=self.columns))


def run_mlwarden(est, space, costm, schema, X0, y0, pool, pool_y):
    model = LocalModel(est, schema=schema, budget=QueryBudget(QUERIES_PER_TARGET * len(X0)), where="bench")
    t0 = time.perf_counter()
    seeds = nearest_seeds(costm, X0, y0, pool, pool_y, Config().seeds)
    res = attack_chunk(model, space, costm, Config(),
                       Task(X0=X0, y=y0, seeds=seeds, queries=QUERIES_PER_TARGET * len(X0), seed=0, seconds=600))
    wall = time.perf_counter() - t0
    flipped = np.isfinite(res.cost)
    return {"adv": res.best, "flipped": flipped, "queries": res.queries_used, "wall": wall}


def run_hsj(est, space, X0, y0, iters: int):
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    counter = Counter(est, space.names)
    lo, hi = space.lo.copy(), space.hi.copy()
    clf = BlackBoxClassifier(counter, input_shape=(space.width,), nb_classes=2, clip_values=(lo, hi))
    hsj = HopSkipJump(clf, targeted=False, norm=2, max_iter=iters, max_eval=1000, init_eval=100, verbose=False)
    mask = (~space.immutable).astype(float)
    t0 = time.perf_counter()
    adv = hsj.generate(X0.astype(float), mask=np.broadcast_to(mask, X0.shape).copy())
    wall = time.perf_counter() - t0
    flipped = counter.est.predict(pd.DataFrame(adv, columns=space.names)) != y0
    return {"adv": adv, "flipped": flipped, "queries": counter.rows, "wall": wall}


def row(name, method, r, space, costm, X0):
    valid = space.valid(r["adv"], X0) if len(X0) else np.zeros(0, bool)
    ok = r["flipped"] & valid
    cost = costm.cost(X0[ok], r["adv"][ok]) if ok.any() else np.array([np.nan])
    l0 = costm.l0(X0[ok], r["adv"][ok]) if ok.any() else np.array([np.nan])
    return (f"| {name:<6} | {method:<13} | {ok.mean():>6.1%} | {int((r['flipped'] & ~valid).sum()):>7} | "
            f"{np.nanmedian(cost):>7.2f} | {np.nanmedian(l0):>4.0f} | {np.mean(cost <= 1.0) * ok.mean():>6.1%} | "
            f"{r['queries'] / max(1, ok.sum()):>9.0f} | {r['wall']:>7.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--hsj-iter", type=int, default=10)
    args = ap.parse_args()
    df, y, schema = data()
    train, test = slice(0, 2500), slice(2500, None)
    space = Space.build(schema, parse_all(["open_acc <= total_acc"], list(df.columns)))
    costm = CostModel.fit(schema, df.iloc[train])
    X = space.encode(df[space.names])
    models = {"LR": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
              "RF": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1),
              "HGB": HistGradientBoostingClassifier(random_state=0)}
    print("| model  | method        | valid✓ | invalid | cost med | L0 | ✓≤cost1 | q/success | wall s  |")
    print("|--------|---------------|--------|---------|----------|----|---------|-----------|---------|")
    for name, est in models.items():
        est.fit(df.iloc[train][space.names], y[train])
        Xt, yt = X[test], y[test]
        right = np.flatnonzero(est.predict(df.iloc[test][space.names]) == yt)[: args.targets]
        X0, y0 = Xt[right], yt[right]
        ours = run_mlwarden(est, space, costm, schema, X0, y0, X[train], y[train])
        print(row(name, "mlwarden", ours, space, costm, X0), flush=True)
        hsj = run_hsj(est, space, X0, y0, args.hsj_iter)
        print(row(name, f"ART HSJ it={args.hsj_iter}", hsj, space, costm, X0), flush=True)


if __name__ == "__main__":
    main()
