"""How to run the label-issue model's five out-of-fold fits: one thread in turn, processes, threads, OpenMP.

    python bench/bench_label_fit.py [--rows 100000]

Fits ``data.poisoning.label_issues``' HistGradientBoosting model (5 stratified folds) on the
first ``--rows`` rows of the 1M bench table (``bench_audit.py --rows 1000000`` generates it)
four ways and prints the wall time of each: ``1`` one thread, folds in turn (what the check
does: the audit finalizes checks side by side, one per core); ``loky`` folds in two
processes; ``threads`` folds in two threads; ``2`` one fold at a time on two OpenMP threads.
Probabilities are printed too: all four must agree. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from joblib import parallel_backend
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict
    from threadpoolctl import threadpool_limits

    from mlwarden.checks.poisoning.label_model import CATEGORY, design, folds, usable

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    a = ap.parse_args()
    path = ROOT / "bench/out/audit-1000000/data/train.parquet"
    if not path.exists():
        sys.exit(f"{path} is missing: run `python bench/bench_audit.py --rows 1000000` first")
    t = pq.read_table(path).slice(0, a.rows)
    feats = [c for c in t.column_names if c not in ("approved", "loan_id", "application_date")
             and usable(t.schema.field(c).type)]
    x, used, _, _ = design(t, feats)
    y = (np.array(t.column("approved").to_pylist()) == "yes").astype(int)
    model = HistGradientBoostingClassifier(categorical_features=np.array([u.endswith(CATEGORY) for u in used]),
                                           random_state=0)
    cv = folds(y)
    for mode in ("1", "loky", "threads", "2"):
        t0 = time.perf_counter()
        if mode == "loky":
            p = cross_val_predict(model, x, y, cv=cv, method="predict_proba", n_jobs=2)
        elif mode == "threads":
            with threadpool_limits(1), parallel_backend("threading", n_jobs=2):
                p = cross_val_predict(model, x, y, cv=cv, method="predict_proba", n_jobs=2)
        else:
            with threadpool_limits(int(mode)):
                p = cross_val_predict(model, x, y, cv=cv, method="predict_proba")
        print(f"{mode:8s} {time.perf_counter() - t0:6.2f} s  first rows {p[:2].round(4).tolist()}")


if __name__ == "__main__":
    main()
