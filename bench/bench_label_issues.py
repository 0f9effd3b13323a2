"""Precision and recall of data.poisoning.label_issues on synthetic data with known flips.

Run by hand: ``.venv/bin/python bench/bench_label_issues.py [ROWS...]``. Each case runs in
its own process so peak RSS is its own. Two noise models, 5 % of rows each: random flips
anywhere, and flips concentrated in one region (40 % of the rows with region "r0" and
x0 > 0). Reports cleanlab's confident learning next to the plain baseline "out-of-fold
prediction disagrees with the label" on the same out-of-fold probabilities.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import numpy as np


def make(n: int, noise: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    region = rng.integers(0, 4, n).astype(float)
    grade = rng.integers(0, 8, n).astype(float)
    score = x[:, 0] + 0.8 * x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + 0.3 * (region - 1.5) + 0.2 * grade - 0.7
    y = (score + rng.normal(0, 0.3, n) > 0).astype(np.int64)
    k = n // 20
    if noise == "random":
        flip = rng.choice(n, k, replace=False)
    else:
        pool = np.flatnonzero((region == 0) & (x[:, 0] > 0))
        flip = rng.choice(pool, min(k, pool.size), replace=False)
    noisy = y.copy()
    noisy[flip] = 1 - noisy[flip]
    truth = np.zeros(n, bool)
    truth[flip] = True
    cols = np.column_stack([x, region, grade])
    return cols, noisy, truth, [f"x{i}" for i in range(6)] + ["region (category)", "grade (category)"]


def one(n: int, noise: str) -> dict:
    from cleanlab.filter import find_label_issues

    from mlwarden.checks.poisoning.label_issues import _oof_probabilities

    x, y, truth, used = make(n, noise)
    t0 = time.perf_counter()
    pred = _oof_probabilities(x, y, used)
    t1 = time.perf_counter()
    found = np.zeros(n, bool)
    found[find_label_issues(labels=y, pred_probs=pred)] = True
    t2 = time.perf_counter()
    base = pred.argmax(axis=1) != y

    def pr(mask: np.ndarray) -> tuple[float, float]:
        tp = int((mask & truth).sum())
        return tp / max(1, int(mask.sum())), tp / max(1, int(truth.sum()))

    p, r = pr(found)
    bp, br = pr(base)
    # children: the fold workers (loky); self: this process
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {"rows": n, "noise": noise, "precision": round(p, 3), "recall": round(r, 3),
            "flagged": int(found.sum()), "baseline_precision": round(bp, 3), "baseline_recall": round(br, 3),
            "fit_s": round(t1 - t0, 1), "cleanlab_s": round(t2 - t1, 2), "peak_rss_mb": round(rss / 1024)}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]), sys.argv[3])))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [50_000, 200_000]
    print(f"{'rows':>8} {'noise':>8} {'prec':>6} {'recall':>6} {'flagged':>8} {'base P':>7} {'base R':>7} "
          f"{'fit s':>7} {'CL s':>6} {'RSS MB':>7}")
    for n in sizes:
        for noise in ("random", "region"):
            out = subprocess.run([sys.executable, __file__, "--one", str(n), noise], capture_output=True,
                                 text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['rows']:>8} {r['noise']:>8} {r['precision']:>6} {r['recall']:>6} {r['flagged']:>8} "
                  f"{r['baseline_precision']:>7} {r['baseline_recall']:>7} {r['fit_s']:>7} {r['cleanlab_s']:>6} "
                  f"{r['peak_rss_mb']:>7}", flush=True)


if __name__ == "__main__":
    main()
