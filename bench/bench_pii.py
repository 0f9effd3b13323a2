"""PII detection throughput: 1M rows × 5 string columns through the detectors.

    python bench/bench_pii.py [--rows 1000000]

Columns: a 4-value category, ISO dates, ids, free text with PII in 0.1 % of rows, and a
column of e-mail addresses (every row a hit: the slowest, validated path). Prints each
column's rate, then the whole set scanned in the audit's 65,536-row batches.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from mlwarden.checks.privacy.detectors import scan_strings

BATCH = 65_536


def columns(n: int, rng: np.random.Generator) -> dict[str, pa.Array]:
    words = np.array("the customer called about an invoice of 120.50 on 2024-03-01 ref 7781 please call back".split())
    text = [" ".join(rng.choice(words, 8)) for _ in range(n)]
    for i in rng.choice(n, max(1, n // 1000), replace=False):
        text[i] += " mail me at jane.doe@example.org or +44 20 7946 0958"
    return {
        "category": pa.array(rng.choice(["north", "south", "east", "west"], n)),
        "date": pa.array(np.datetime_as_string(rng.integers(0, 20000, n).astype("datetime64[D]"))),
        "id": pa.array([f"C{i:08d}" for i in rng.integers(0, 10**8, n)]),
        "free_text": pa.array(text),
        "email": pa.array([f"user{i}@corp.example.com" for i in range(n)]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    n = ap.parse_args().rows
    cols = columns(n, np.random.default_rng(0))
    print(f"{n:,} rows × {len(cols)} string columns ({sum(c.nbytes for c in cols.values()) / 1e6:.0f} MB)\n")
    print("| column | seconds | M rows/s | rows with PII |\n|---|---:|---:|---|")
    for name, col in cols.items():
        t0 = time.perf_counter()
        hits = scan_strings(col)
        dt = time.perf_counter() - t0
        print(f"| {name} | {dt:.2f} | {n / dt / 1e6:.2f} | {dict((k, int(h.rows.size)) for k, h in hits.items())} |")
    t0 = time.perf_counter()
    for col in cols.values():
        for off in range(0, n, BATCH):
            scan_strings(col.slice(off, BATCH))
    dt = time.perf_counter() - t0
    mb = sum(c.nbytes for c in cols.values()) / 1e6
    print(f"\nall columns in {BATCH:,}-row batches: {dt:.2f} s = {n / dt / 1e6:.2f} M rows/s ({mb / dt:.0f} MB/s)")


if __name__ == "__main__":
    main()
