"""Benchmark model extraction: fidelity vs query budget, per model and output policy.

    python bench/bench_extraction.py [--budgets 100,1000,10000] [--holdout 2000]

The generated mixed-type set of bench_tree_bounds.py (8,000 rows; 6,000 train, the rest
split into a query pool and a held-out set). Targets: LogisticRegression (standardised),
RandomForest (100 trees) and HistGradientBoosting (100 iterations). For each: equation
solving (queries, max logit error vs the model's own decision_function, decision
agreement) where it applies, path-finding on a depth-6 decision tree for reference, and
learned surrogates from in-distribution (pool rows jittered by 0.1 IQR) and uniform
queries at each budget under full scores, scores rounded to 2 decimals and labels only:
fidelity (agreement with the target on held-out rows) and surrogate accuracy. One
process, single-threaded numerics. Prints; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_tree_bounds import make_data
from threadpoolctl import threadpool_limits

from mlwarden.attacks.extraction import (
    perturbed_rows,
    solve_linear,
    surrogate_curve,
    uniform_rows,
)
from mlwarden.attacks.extraction_paths import path_find
from mlwarden.attacks.trees import as_matrix
from mlwarden.attacks.trees_grid import feature_scales
from mlwarden.sources.model import LocalModel, QueryBudget


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", default="100,1000,10000")
    ap.add_argument("--holdout", type=int, default=1000)
    a = ap.parse_args()
    budgets = [int(b) for b in a.budgets.split(",")]
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    df, y, schema = make_data()
    tr, pool, hold = df.iloc[:6000], df.iloc[6000:7000], df.iloc[7000:7000 + a.holdout]
    ytr, yhold = y[:6000], y[7000:7000 + a.holdout]
    scales = feature_scales(schema, tr)
    Xh = as_matrix(hold)
    models = {"LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
              "RandomForest": RandomForestClassifier(n_estimators=100, random_state=0),
              "HistGradientBoosting": HistGradientBoostingClassifier(max_iter=100, random_state=0),
              "DecisionTree(depth 6)": DecisionTreeClassifier(max_depth=6, random_state=0)}
    exact_rows, curve_rows = [], []
    with threadpool_limits(1):
        for name, est in models.items():
            est.fit(tr, ytr)
            target = est.predict(hold)
            acc = float(np.mean(target == yhold))
            m = LocalModel(est, schema=schema, budget=QueryBudget(None), where=name)
            b = QueryBudget(len(scales) + 1)
            rec = solve_linear(m.with_budget(b), tr.median().to_frame().T, scales)
            z = np.log(np.clip(est.predict_proba(hold)[:, 1], 1e-12, 1)) - np.log(np.clip(est.predict_proba(hold)[:, 0], 1e-12, 1))
            err = float(np.max(np.abs(rec.logit(Xh) - z)))
            fid = float(np.mean((rec.logit(Xh) > 0) == (target == est.classes_[1])))
            exact_rows.append((name, "equation solving", b.used, f"{err:.2e}", f"{fid:.4f}"))
            if name.startswith("DecisionTree"):
                pb = QueryBudget(20_000)
                t0 = time.perf_counter()
                res = path_find(m.with_budget(pb), tr.min().to_numpy(float), tr.max().to_numpy(float), tr)
                got = np.array([est.classes_[int(np.argmax(v))] for v in res.tree.predict(Xh)])
                how = f"path-finding ({res.tree.leaves} leaves vs {est.get_n_leaves()}, {time.perf_counter() - t0:.1f}s)"
                exact_rows.append((name, how, res.queries, "-", f"{np.mean(got == target):.4f}"))
                continue
            rng = np.random.default_rng(0)
            top = max(budgets)
            for src, q in (("in-distribution", perturbed_rows(schema, pool, scales, top, rng)),
                           ("uniform", uniform_rows(schema, pool, top, rng))):
                t0 = time.perf_counter()
                pts = surrogate_curve(m.with_budget(QueryBudget(top)), q, src, budgets, Xh, target, yhold, seed=0)
                secs = time.perf_counter() - t0
                for p in pts:
                    curve_rows.append((name, f"{acc:.3f}", src, p.policy, p.queries, f"{p.fidelity:.4f}",
                                       f"{p.accuracy:.4f}", f"{secs:.1f}"))
    print("| model | method | queries | max logit error | fidelity |")
    print("|---|---|---|---|---|")
    for r in exact_rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    print()
    print("| model | target acc | queries from | policy | queries | fidelity | surrogate acc | fit s (all budgets) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in curve_rows:
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
