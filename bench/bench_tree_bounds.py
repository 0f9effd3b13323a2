"""Benchmark the tree-ensemble bounds: how tight, how fast, on RF and HistGB.

    python bench/bench_tree_bounds.py [--rows 200] [--milp-seconds 1.0] [--trees 50] [--models rf,hgb]

A generated mixed-type set (8,000 rows): four numbers (two normal, one lognormal, one
uniform), two integers (one immutable: age), a bool and a one-hot group of four columns.
A RandomForest (``--trees`` trees, depth 8) and a HistGradientBoosting (``--trees``
iterations, 31 leaves) are fit on 6,000 rows; ``--rows`` rows of the rest are the targets.
For each model it prints the share of rows whose bounds are within 30 % of each other
(upper ≤ 1.3 × lower; goal ≥ 90 %), rows solved exactly, median lower/upper bound, median
relative gap, time per row (median and mean), examples confirmed by the model, and whether
any example changed the immutable feature (must be 0). One process, single-threaded
numerics. Prints; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlwarden.attacks.trees import make_problem, tree_bounds
from mlwarden.attacks.trees_grid import feature_scales
from mlwarden.attacks.trees_read import read_ensemble
from mlwarden.sources.model import Feature, FeatureSchema, LocalModel, QueryBudget

GROUP = ("own", "rent", "mortgage", "other")


def make_data(n: int = 8000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, FeatureSchema]:
    rng = np.random.default_rng(seed)
    home = rng.integers(0, 4, n)
    df = pd.DataFrame({
        "income": rng.normal(55, 15, n).clip(5, 150), "debt_ratio": rng.normal(0.35, 0.12, n).clip(0, 1),
        "loan": rng.lognormal(9.5, 0.6, n).clip(1000, 100_000), "utilisation": rng.uniform(0, 1, n),
        "years_employed": rng.integers(0, 40, n), "age": rng.integers(18, 80, n),
        "has_guarantor": rng.integers(0, 2, n),
        **{g: (home == k).astype(int) for k, g in enumerate(GROUP)}})
    z = (df.income / 20 - 4 * df.debt_ratio - df.loan / 30_000 - 1.5 * df.utilisation + df.years_employed / 15
         + 0.5 * df.has_guarantor + 0.6 * df["own"] - 0.4 * df["rent"] + (df.age - 40) / 60 + rng.normal(0, 0.8, n))
    y = (z > np.median(z)).astype(int).to_numpy()
    schema = FeatureSchema((
        Feature(name="income", kind="float", min=5, max=150), Feature(name="debt_ratio", kind="float", min=0, max=1),
        Feature(name="loan", kind="float", min=1000, max=100_000), Feature(name="utilisation", kind="float", min=0, max=1),
        Feature(name="years_employed", kind="int", min=0, max=39, step=1),
        Feature(name="age", kind="int", min=18, max=79, step=1, immutable=True),
        Feature(name="has_guarantor", kind="bool", values=(0, 1)),
        *(Feature(name=g, kind="int", min=0, max=1, step=1, group="home") for g in GROUP)))
    return df, y, schema


def bench(name: str, est, df: pd.DataFrame, y: np.ndarray, schema: FeatureSchema, rows: int, secs: float) -> dict:
    train, rest = df.iloc[:6000], df.iloc[6000:]
    est.fit(train, y[:6000])
    X = train.to_numpy(np.float64)
    ens = read_ensemble(est, X[:500])
    model = LocalModel(est, schema=schema, budget=QueryBudget(None), where=name)
    prob = make_problem(ens, schema, feature_scales(schema, train), X[:3000], milp_seconds=secs)
    t0 = time.perf_counter()
    tb = tree_bounds(model, prob, rest.iloc[:rows])
    wall = time.perf_counter() - t0
    up = np.array([r.upper if tb.confirmed[k] or r.example is None else math.inf for k, r in enumerate(tb.rows)])
    lo = np.array([min(r.lower, u) for r, u in zip(tb.rows, up)])
    within = [(math.isinf(u) and math.isinf(v)) or (math.isfinite(u) and u <= 1.3 * v + 1e-12) for v, u in zip(lo, up)]
    fin = np.isfinite(up)
    gap = (up[fin] - lo[fin]) / up[fin]
    secs_row = np.array([r.seconds for r in tb.rows])
    age = schema.names.index("age")
    moved_age = sum(1 for k, r in enumerate(tb.rows) if r.example is not None
                    and r.example[age] != rest.to_numpy(np.float64)[k, age])
    return {"model": name, "trees": ens.n_trees, "leaves": ens.n_leaves, "rows": len(tb.rows),
            "within_30pct": float(np.mean(within)), "exact": int(sum(r.exact for r in tb.rows)),
            "median_lower": float(np.median(lo[np.isfinite(lo)])), "median_upper": float(np.median(up[fin])),
            "median_rel_gap": float(np.median(gap)), "s_per_row_median": float(np.median(secs_row)),
            "s_per_row_mean": float(secs_row.mean()), "wall_s": wall, "confirmed": int(tb.confirmed.sum()),
            "unconfirmed": int(sum(1 for k, r in enumerate(tb.rows) if r.example is not None and not tb.confirmed[k])),
            "immutable_changed": moved_age, "disagreed": tb.disagreed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--milp-seconds", type=float, default=1.0)
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--models", default="rf,hgb", help="comma list of rf, hgb")
    a = ap.parse_args()
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    df, y, schema = make_data()
    out = []
    with threadpool_limits(1):
        if "rf" in a.models:
            out.append(bench("RandomForest", RandomForestClassifier(n_estimators=a.trees, max_depth=8, random_state=0),
                             df, y, schema, a.rows, a.milp_seconds))
        if "hgb" in a.models:
            out.append(bench("HistGradientBoosting", HistGradientBoostingClassifier(max_iter=a.trees, random_state=0),
                             df, y, schema, a.rows, a.milp_seconds))
    cols = list(out[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in out:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")


if __name__ == "__main__":
    main()
