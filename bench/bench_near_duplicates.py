"""Benchmark of data.leakage.near_duplicates: recall, precision, time and peak memory.

200,000 training rows and 50,000 test rows of a mixed table (numbers, text, categories,
a timestamp); 1 % of the test rows (500) are near copies of training rows, 100 of each
kind: numeric noise, rounding, text re-formatting, one column replaced, two columns
replaced; another 250 are exact copies (excluded by the check). Prints figures; asserts
nothing. Run: .venv/bin/python bench/bench_near_duplicates.py [--train N] [--test N]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlwarden.audit import run_audit
from mlwarden.checks.data import near_duplicates
from mlwarden.spec import load_spec

KINDS = ("noise", "rounding", "format", "one_column", "two_columns")


def frame(rng: np.random.Generator, n: int, id0: int) -> pd.DataFrame:
    return pd.DataFrame({
        "id": np.arange(id0, id0 + n),
        "amount": np.round(rng.lognormal(7, 1.5, n), 2),
        "rate": rng.uniform(0, 0.3, n),
        "age": rng.integers(18, 90, n),
        "count": rng.poisson(3, n),
        "city": rng.choice([f"City {i}" for i in range(500)], n),
        "name": [f"Customer {i} Ltd." for i in rng.integers(0, 10**8, n)],
        "segment": rng.choice(["retail", "sme", "corporate"], n),
        "score": rng.normal(600, 80, n),
        "opened": pd.to_datetime(rng.integers(1.4e9, 1.7e9, n), unit="s"),
        "flag": rng.integers(0, 2, n).astype(bool),
        "label": rng.integers(0, 2, n),
    })


def plant(rng: np.random.Generator, train: pd.DataFrame, test: pd.DataFrame, per_kind: int, exact: int):
    src = rng.choice(len(train), per_kind * len(KINDS) + exact, replace=False)
    dst = rng.choice(len(test), src.size, replace=False)
    truth: dict[str, set[int]] = {}
    cols = [c for c in train.columns if c not in ("id", "label")]
    for k, kind in enumerate((*KINDS, "exact")):
        n = exact if kind == "exact" else per_kind
        s, d = src[k * per_kind: k * per_kind + n], dst[k * per_kind: k * per_kind + n]
        rows = train.iloc[s][cols].reset_index(drop=True)
        if kind == "noise":
            rows["score"] = rows["score"] * (1 + rng.uniform(-1e-4, 1e-4, n))
            rows["rate"] = rows["rate"] * (1 + rng.uniform(-1e-4, 1e-4, n))
        elif kind == "rounding":
            rows["amount"] = rows["amount"].round(0)
            rows["score"] = rows["score"].round(1)
        elif kind == "format":
            rows["name"] = rows["name"].str.upper().str.replace(" ", "  ") + " "
            rows["city"] = rows["city"].str.lower()
        elif kind == "one_column":
            rows["age"] = rng.integers(18, 90, n)
        elif kind == "two_columns":
            rows["segment"] = rng.choice(["retail", "sme", "corporate"], n)
            rows["count"] = rng.poisson(3, n) + 10
        for c in cols:
            test.loc[test.index[d], c] = rows[c].to_numpy()
        truth[kind] = set(test["id"].iloc[d])
    return truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=200_000)
    ap.add_argument("--test", type=int, default=50_000)
    args = ap.parse_args()
    near_duplicates.SAMPLE_IDS = 10**9  # keep every flagged id in the evidence, to measure precision
    rng = np.random.default_rng(11)
    train, test = frame(rng, args.train, 0), frame(rng, args.test, 10**9)
    per_kind = args.test // 100 // len(KINDS)
    truth = plant(rng, train, test, per_kind, exact=per_kind // 2 * len(KINDS) // 2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train.to_parquet(root / "train.parquet", index=False)
        test.to_parquet(root / "test.parquet", index=False)
        (root / "mlwarden.yaml").write_text("name: bench\ndata:\n  train: train.parquet\n  test: test.parquet\n"
                                            "  label: label\n  id: id\n", encoding="utf-8")
        t0 = time.perf_counter()
        report = run_audit(load_spec(root / "mlwarden.yaml"), only=("data.leakage.near_duplicates",))
        seconds = time.perf_counter() - t0
    [result] = report.checks
    m = result.metrics
    found = {p[0] for f in result.findings for p in f.evidence["sample_pairs"]}
    planted = set().union(*(truth[k] for k in KINDS))
    tp = len(found & planted)
    print(f"train {args.train:,} rows, test {args.test:,} rows, {len(planted)} planted near copies, "
          f"{len(truth['exact'])} exact copies")
    print(f"time {seconds:.1f} s, peak RSS {_peak_mb():.0f} MB (largest of this process and its workers), "
          f"state {m['bytes_per_row']} bytes/row")
    print(f"found {len(found)} near duplicate rows, exact excluded {m['test']['exact_duplicates_excluded']}, "
          f"by kind {m['test']['by_kind']}")
    index = m.get("index", {})
    print(f"index: {index.get('blocks')} blocks, {index.get('joins')} joins, "
          f"{index.get('test_candidates')} candidate pairs, capped {index.get('capped')}")
    print(f"recall {tp / len(planted):.3f}  precision {tp / max(len(found), 1):.3f}")
    for kind in KINDS:
        print(f"  {kind:12s} recall {len(found & truth[kind]) / len(truth[kind]):.3f}")


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


if __name__ == "__main__":
    main()
