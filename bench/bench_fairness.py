"""Benchmark the fairness checks against fairlearn's MetricFrame on generated data.

    python bench/bench_fairness.py [--rows 1000000] [--resamples 1000]
                                   [--fairlearn-resamples 20] [--fairlearn-timeout 900] [--no-fairlearn]

Generates N rows with three sensitive attributes (5, 2 and 4 groups, some values
missing), a label, a prediction and a score, as a parquet test split with a spec that
reads predictions from columns. Then, each in its own child process (so peak RSS is
that run's own):

- **mlwarden fold + bootstrap** — both fairness checks (``fairness.model_disparity``:
  3 attributes; ``fairness.intersectional``: the 4 combinations of two or more) folded
  in-process over 65,536-row batches, merged, then finalized: 6 metrics + calibration
  per group, ``--resamples`` bootstrap resamples, tests, BH, findings;
- **mlwarden audit** — the same two checks through ``run_audit`` (reading parquet, the
  local engine's worker pool);
- **fairlearn** — ``MetricFrame`` with 5 metrics on one attribute, without resampling,
  and with ``n_boot=--fairlearn-resamples`` (its own bootstrap), under a timeout.

Prints a Markdown table (wall seconds, peak RSS of the child). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SPEC = """\
name: fairness-bench
data:
  test: test.parquet
  label: y
  prediction: p
  score: s
  sensitive: [a, b, c]
fairness:
  resamples: {resamples}
"""


def generate(root: Path, rows: int, resamples: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    a = rng.choice(np.array(["a0", "a1", "a2", "a3", "a4"], dtype=object), rows, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    b = rng.choice(np.array(["f", "m"], dtype=object), rows)
    c = rng.choice(np.array(["c0", "c1", "c2", "c3"], dtype=object), rows)
    b[rng.random(rows) < 0.01] = None  # missing values: their own group
    base = 0.3 + 0.1 * (a == "a0") + 0.05 * (c == "c1")
    y = (rng.random(rows) < base).astype(np.int8)
    s = np.clip(0.6 * y + 0.4 * rng.random(rows) - 0.08 * (a == "a4"), 0, 1)
    p = (s >= 0.5).astype(np.int8)
    df = pd.DataFrame({"a": a, "b": b, "c": c, "y": y, "p": p, "s": s})
    df.to_parquet(root / "test.parquet", index=False, row_group_size=262_144)
    (root / "mlwarden.yaml").write_text(SPEC.format(resamples=resamples), encoding="utf-8")
    return root / "mlwarden.yaml"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_fold(spec_path: str) -> dict:
    import pyarrow.parquet as pq

    from mlwarden.audit import open_sources
    from mlwarden.checks.fairness.disparity import Intersectional, ModelDisparity
    from mlwarden.registry import AuditContext
    from mlwarden.sources.datasets import Batch
    from mlwarden.spec import load_spec

    spec = load_spec(spec_path)
    sources = open_sources(spec)
    checks = [ModelDisparity(spec, sources), Intersectional(spec, sources)]
    table = pq.read_table(Path(spec_path).parent / "test.parquet")
    batches = table.to_batches(max_chunksize=65_536)
    t0 = time.perf_counter()
    states = [c.init() for c in checks]
    offset = 0
    for rb in batches:
        batch = Batch(split="test", offset=offset, data=rb)
        states = [c.update(st, batch) for c, st in zip(checks, states)]
        offset += rb.num_rows
    t_fold = time.perf_counter() - t0
    ctx = AuditContext(spec=spec, sources=sources, engine=None)  # type: ignore[arg-type]
    outs = [c.finalize(st, ctx) for c, st in zip(checks, states)]
    total = time.perf_counter() - t0
    groups = sum(len(s["groups"]) for o in outs for s in o.metrics["groups"].values())
    return {"wall_s": total, "fold_s": t_fold, "peak_mib": _peak_mib(), "groups": groups,
            "findings": sum(len(o.findings) for o in outs)}


def run_audit_child(spec_path: str) -> dict:
    import mlwarden.checks.fairness.disparity  # noqa: F401  (registers the checks)
    from mlwarden.audit import run_audit
    from mlwarden.spec import load_spec

    t0 = time.perf_counter()
    report = run_audit(load_spec(spec_path), only=["fairness.model_disparity", "fairness.intersectional"])
    wall = time.perf_counter() - t0
    status = "/".join(c.status for c in report.checks)
    return {"wall_s": wall, "peak_mib": _peak_mib(), "status": status}


def run_fairlearn(spec_path: str, n_boot: int) -> dict:
    from fairlearn import metrics as flm
    from sklearn.metrics import accuracy_score, precision_score

    df = pd.read_parquet(Path(spec_path).parent / "test.parquet")
    metrics = {"selection_rate": flm.selection_rate, "true_positive_rate": flm.true_positive_rate,
               "false_positive_rate": flm.false_positive_rate, "precision": precision_score,
               "accuracy": accuracy_score}
    t0 = time.perf_counter()
    kw = {"n_boot": n_boot, "ci_quantiles": [0.025, 0.975], "random_state": 0} if n_boot else {}
    mf = flm.MetricFrame(metrics=metrics, y_true=df["y"], y_pred=df["p"], sensitive_features=df["a"], **kw)
    mf.difference()
    return {"wall_s": time.perf_counter() - t0, "peak_mib": _peak_mib()}


def child(kind: str, spec: Path, timeout: float, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--spec", str(spec), *extra]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    except subprocess.CalledProcessError as e:
        return {"error": (e.stderr or "").strip().splitlines()[-1:] or "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--fairlearn-resamples", type=int, default=20)
    ap.add_argument("--fairlearn-timeout", type=float, default=900.0)
    ap.add_argument("--no-fairlearn", action="store_true")
    ap.add_argument("--child", choices=["fold", "audit", "fairlearn"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--boot", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"fold": lambda: run_fold(args.spec), "audit": lambda: run_audit_child(args.spec),
              "fairlearn": lambda: run_fairlearn(args.spec, args.boot)}[args.child]
        print(json.dumps(fn()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        spec = generate(Path(tmp), args.rows, args.resamples)
        rows = [(f"mlwarden fold + bootstrap ({args.resamples} resamples), 3 attributes + 4 intersections, "
                 "6 metrics + calibration", child("fold", spec, 1800)),
                (f"mlwarden run_audit, same two checks ({args.resamples} resamples)", child("audit", spec, 1800))]
        if not args.no_fairlearn:
            rows.append(("fairlearn MetricFrame, 5 metrics, 1 attribute, no resampling",
                         child("fairlearn", spec, args.fairlearn_timeout, "--boot", "0")))
            if args.fairlearn_resamples:
                rows.append((f"fairlearn MetricFrame, 5 metrics, 1 attribute, n_boot={args.fairlearn_resamples}",
                             child("fairlearn", spec, args.fairlearn_timeout, "--boot",
                                   str(args.fairlearn_resamples))))
    print(f"\n{args.rows:,} rows\n")
    print("| run | wall s | peak RSS MiB | notes |")
    print("|---|---:|---:|---|")
    for name, r in rows:
        if "error" in r:
            print(f"| {name} | — | — | {r['error']} |")
            continue
        notes = ", ".join(f"{k}={v if not isinstance(v, float) else round(v, 2)}" for k, v in r.items()
                          if k not in ("wall_s", "peak_mib") and not k.startswith("_"))
        print(f"| {name} | {r['wall_s']:.2f} | {r['peak_mib']:.0f} | {notes} |")


if __name__ == "__main__":
    main()
