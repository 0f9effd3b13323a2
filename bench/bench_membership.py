"""Benchmark membership inference: RMIA (1, 2, 4 reference models) vs the threshold baseline.

    python bench/bench_membership.py [--members 10000] [--nonmembers 10000] [--seed 0]

Generated tabular data (``make_classification``: 20 features, 8 informative, 10 % label
noise); the target is trained on the members. Two targets: an overfit random forest
(100 trees, full depth) and a regularised logistic regression (C = 0.01). The threshold
attack scores Pr(true label); RMIA (offline, a = 0.3, gamma = 1) refits the target's
recipe on random halves of members ∪ non-members and judges each row only by the
reference models that did not train on it (the bookkeeping of
:mod:`mlwarden.attacks.membership`), with the non-members it can judge as population z.
With one reference model only the rows outside its half are judged (half the non-members),
so the default of 10,000 non-members keeps ≥ 5,000 for TPR at 0.1 % FPR.

Prints, per target and attack: members and non-members judged, AUC, TPR at 0.1 % and 1 %
FPR with bootstrap 95 % intervals (200 resamples), and wall time (reference fits included).
Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mlwarden.attacks import membership as mia
from mlwarden.attacks.refit import fit_score_task, recipe, true_label_proba


def _row(name: str, attack: str, ev: dict, seconds: float) -> str:
    t0, t1 = ev["tpr_at_fpr"]["0.1%"], ev["tpr_at_fpr"]["1%"]
    return (f"| {name} | {attack} | {ev['members']:,} / {ev['nonmembers']:,} | {ev['auc']:.3f} {ev['auc_ci']} | "
            f"{t0['tpr']:.2%} [{t0['ci'][0]:.2%}, {t0['ci'][1]:.2%}] | {t1['tpr']:.2%} [{t1['ci'][0]:.2%}, "
            f"{t1['ci'][1]:.2%}] | {seconds:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=10_000)
    ap.add_argument("--nonmembers", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = args.members + args.nonmembers
    X, y = make_classification(n_samples=n, n_features=20, n_informative=8, flip_y=0.1, random_state=args.seed)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    member = np.arange(n) < args.members
    targets = {"random forest (full depth)": RandomForestClassifier(n_estimators=100, random_state=args.seed, n_jobs=1),
               "logistic regression (C=0.01)": LogisticRegression(C=0.01, max_iter=1000)}
    print("| target | attack | members / non-members judged | AUC [95 % CI] | TPR @ 0.1 % FPR [CI] | "
          "TPR @ 1 % FPR [CI] | wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, est in targets.items():
        t = time.perf_counter()
        est.fit(X[member], y[member])
        p = true_label_proba(est.predict_proba(X), est.classes_, y)
        ev = mia.evaluate(p[member], p[~member], np.random.default_rng(args.seed))
        print(_row(name, "threshold (confidence)", ev, time.perf_counter() - t), flush=True)
        for refs in (1, 2, 4):
            t = time.perf_counter()
            plan = mia.reference_plan(n, refs, np.random.default_rng(args.seed + 1))
            ref = np.stack([fit_score_task((recipe(est, args.seed), X[plan[:, k]], y[plan[:, k]], X, y, float("inf")))
                            for k in range(refs)], axis=1)
            out = mia.out_mean(ref, plan)
            ok = ~np.isnan(out)
            z = ok & ~member
            s = mia.rmia_scores(p[ok], out[ok], p[z], out[z])
            ev = mia.evaluate(s[member[ok]], s[~member[ok]], np.random.default_rng(args.seed))
            print(_row(name, f"RMIA, {refs} reference model{'s' if refs > 1 else ''}", ev, time.perf_counter() - t),
                  flush=True)


if __name__ == "__main__":
    main()
