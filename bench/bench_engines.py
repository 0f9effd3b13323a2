"""Benchmark the engines on a generated dataset: rows per second, wall time, peak memory.

    python bench/bench_engines.py [--rows N] [--cols 30] [--engine local|dask|both] [--out DIR]

Writes train (N rows × cols columns: int, float, string, category, plus an id and a
label) and a test split of N/4 rows with 1 % planted copies of training rows, in bounded
memory (100k-row chunks through ParquetWriter; every value is a function of its row
number, so copies can be planted without holding train). Then audits them with each
engine (the two data checks: exact duplicates and fingerprint), each in a child process,
and prints a Markdown table. Peak RSS is the largest sum of RSS over the child's process
tree (the audit process plus its workers), sampled every 50 ms. Prints; asserts nothing
about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 100_000
CHECKS = ("data.leakage.exact_duplicates", "data.integrity.fingerprint")
_STRINGS = pa.array([f"s{v:06d}-{(v * 7919) % 100_003:x}" for v in range(100_003)])
_LEVELS = pa.array(["north", "south", "east", "west", "alpha", "beta", "gamma", "delta", "omega", "zeta",
                    "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi"])


def columns_for(idx: np.ndarray, cols: int) -> dict[str, pa.Array]:
    """Deterministic values of rows ``idx`` (global row numbers): equal idx, equal row."""
    idx = idx.astype(np.int64)
    out: dict[str, pa.Array] = {"row_key": pa.array(idx)}  # makes every row of train distinct
    for j in range(1, cols - 2):
        mult = np.int64(2_654_435_761 + 40_503 * j)
        mixed = (idx * mult) % 1_000_003
        kind = j % 4
        if kind == 0:
            out[f"i{j}"] = pa.array(mixed % (10 + 97 * j))
        elif kind == 1:
            out[f"f{j}"] = pa.array(mixed.astype(np.float64) / 997.0 + j)
        elif kind == 2:
            out[f"s{j}"] = _STRINGS.take(pa.array(mixed % len(_STRINGS)))
        else:
            out[f"c{j}"] = pa.DictionaryArray.from_arrays(pa.array((mixed % len(_LEVELS)).astype(np.int32)), _LEVELS)
    return out


def write_split(path: Path, rows: int, cols: int, idx_of, *, id0: int) -> None:
    """Write ``rows`` rows chunk by chunk; ``idx_of(start, stop)`` gives their row numbers."""
    writer = None
    try:
        for start in range(0, rows, CHUNK):
            stop = min(rows, start + CHUNK)
            idx = idx_of(start, stop)
            data = {"id": pa.array(np.arange(id0 + start, id0 + stop, dtype=np.int64)),
                    "label": pa.array((idx * 31 + start) % 2), **columns_for(idx, cols)}
            table = pa.table(data)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK)
    finally:
        if writer is not None:
            writer.close()


def generate(root: Path, rows: int, cols: int) -> int:
    """Write train, test and the spec under ``root``; return the number of planted copies."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    write_split(root / "data" / "train.parquet", rows, cols, lambda a, b: np.arange(a, b), id0=0)
    n_test = rows // 4
    rng = np.random.default_rng(0)
    planted = np.zeros(n_test, dtype=bool)
    planted[rng.choice(n_test, size=n_test // 100, replace=False)] = True
    copies = rng.integers(0, rows, size=n_test)  # which train row each planted copy repeats

    def test_idx(a: int, b: int) -> np.ndarray:
        fresh = np.arange(a, b, dtype=np.int64) + rows  # beyond train's row numbers: never equal
        return np.where(planted[a:b], copies[a:b], fresh)

    write_split(root / "data" / "test.parquet", n_test, cols, test_idx, id0=10**12)
    (root / "mlwarden.yaml").write_text(
        "name: bench\ndata:\n  train: data/train.parquet\n  test: data/test.parquet\n  label: label\n  id: id\n",
        encoding="utf-8")
    return int(planted.sum())


def run_child(engine: str, spec: str, workers: int | None) -> None:
    """In the child: audit and print one JSON line of results."""
    from mlwarden.audit import run_audit
    from mlwarden.spec import load_spec

    if workers:
        import mlwarden.audit as audit_mod
        from mlwarden.engine import make_engine

        audit_mod.make_engine = lambda name, *, scheduler=None: make_engine(name, scheduler=scheduler, workers=workers)
    t0 = time.perf_counter()
    report = run_audit(load_spec(spec), engine=engine, only=CHECKS)
    wall = time.perf_counter() - t0
    leak = next(c for c in report.checks if c.id == CHECKS[0])
    rows = sum(leak.metrics.get(s, {}).get("rows", 0) for s in ("test", "production", "feedback"))
    print(json.dumps({
        "wall_s": wall, "status": leak.status, "message": leak.message,
        "duplicated": leak.metrics.get("test", {}).get("duplicated_rows"),
        "rows": rows + leak.metrics.get("train_distinct_rows", 0),
        "check_s": {c.id: round(c.duration_s, 3) for c in report.checks},
    }))


def tree_rss(proc) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(engine: str, spec: Path, workers: int | None) -> dict:
    """Run one engine in a child process; sample its process tree's RSS meanwhile."""
    import psutil

    cmd = [sys.executable, __file__, "--_child", engine, "--_spec", str(spec)]
    if workers:
        cmd += ["--workers", str(workers)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    proc, peak, done = psutil.Process(child.pid), [0, 0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], tree_rss(proc))
                peak[1] = max(peak[1], proc.memory_info().rss)
            except psutil.Error:
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{engine}: the audit exited {child.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(engine=engine, peak_tree_mb=peak[0] / 2**20, peak_main_mb=peak[1] / 2**20)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=30)
    ap.add_argument("--engine", choices=("local", "dask", "both"), default="both")
    ap.add_argument("--out", type=Path, help="where to write the data (default: a temporary folder)")
    ap.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    ap.add_argument("--_spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        return run_child(args._child, args._spec, args.workers)
    if args.cols < 6:
        ap.error("--cols must be at least 6")

    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-") as tmp:
        root = args.out or Path(tmp)
        t0 = time.perf_counter()
        planted = generate(root, args.rows, args.cols)
        size = sum(f.stat().st_size for f in (root / "data").iterdir()) / 2**20
        print(f"generated {args.rows:,} train + {args.rows // 4:,} test rows × {args.cols} columns "
              f"({size:.0f} MiB parquet, {planted:,} planted copies) in {time.perf_counter() - t0:.1f} s; "
              f"{os.cpu_count()} cores", file=sys.stderr)
        engines = ("local", "dask") if args.engine == "both" else (args.engine,)
        results = [measure(e, root / "mlwarden.yaml", args.workers) for e in engines]

    total = args.rows + args.rows // 4
    print(f"\n{total:,} rows ({args.rows:,} train + {args.rows // 4:,} test) × {args.cols} columns, "
          f"{os.cpu_count()} cores\n")
    print("| engine | wall s | rows/s | peak RSS, tree MiB | peak RSS, main MiB | duplicates found / planted |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        found = r["duplicated"] if r["status"] in ("pass", "fail") else f"{r['status']}: {r['message']}"
        print(f"| {r['engine']} | {r['wall_s']:.1f} | {total / r['wall_s']:,.0f} | {r['peak_tree_mb']:,.0f} "
              f"| {r['peak_main_mb']:,.0f} | {found} / {planted} |")
    for r in results:
        print(f"\n{r['engine']}: check seconds (summed over workers) {r['check_s']}")


if __name__ == "__main__":
    main()
