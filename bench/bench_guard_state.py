"""The guard's shared state and audit log: what one decision and one log entry cost.

Run: .venv/bin/python bench/bench_guard_state.py [--n 3000] [--dir DIR] (needs `make redis`).

- audit log: synchronous appends per second (each append commits with WAL + synchronous=FULL,
  i.e. one fsync) with SHA-256 and with HMAC-SHA-256, one writer thread; then 4 and 16 threads,
  which the log group-commits (one transaction and one fsync for whatever queued meanwhile).
  ``--dir`` picks the file system (default: a temporary directory), which dominates the figure.
- decisions: p50/p99 latency of ``take`` (token bucket), ``spend_budget``, and the detector's
  pattern ``push_history`` + ``history`` (one row pushed, up to 256 rows × 10 read back), for
  the in-process state and for Redis on loopback (a private redis-server started here).

Prints figures only; never asserts them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.guard.redis_fixture import start_redis, stop_redis  # noqa: E402

from mlwarden.guard.auditlog import AuditLog, verify_log  # noqa: E402
from mlwarden.guard.state import MemoryState, open_state  # noqa: E402

EVENT = {"kind": "infer", "key": "tenant-7", "model": "loan", "rows": 1, "decision": "allow",
         "status": 200, "latency_ms": 1.234, "detector": {"knn": 0.0312, "flag": False},
         "request_id": "0f8e2c1a-6b7d-4c55-9a9e-2d1f3b4a5c6d"}


def appends_per_s(folder: Path, n: int, key: bytes | None, threads: int) -> float:
    path = folder / f"audit-{key is not None}-{threads}.db"
    log = AuditLog(path, key=key)
    per = n // threads

    def work() -> None:
        for i in range(per):
            log.append({**EVENT, "i": i})

    ts = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    log.close()
    r = verify_log(path, key=key)
    assert r.ok and r.entries == per * threads
    return per * threads / dt


def latencies(fn, n: int) -> tuple[float, float]:
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out[i] = time.perf_counter() - t0
    return float(np.percentile(out, 50) * 1e6), float(np.percentile(out, 99) * 1e6)


def decision_table(state, n: int) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(n, 10))
    keys = [f"tenant{i}" for i in range(50)]
    now = time.time()
    res = {
        "take": latencies(lambda i: state.take(keys[i % 50], 1, 100.0, 200, now + i * 1e-3), n),
        "spend_budget": latencies(lambda i: state.spend_budget(keys[i % 50], "2025-03-01", 1, 10**9), n),
    }
    for k in keys:  # fill histories first so every read returns the full 256 rows
        state.push_history(k, rows[:256], 256)
    res["push+history(256x10)"] = latencies(
        lambda i: (state.push_history(keys[i % 50], rows[i], 256), state.history(keys[i % 50])), n)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000, help="operations per measurement")
    ap.add_argument("--dir", type=Path, default=None, help="where the audit log files go")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=args.dir))
    try:
        print(f"audit log appends/s (synchronous, {args.n} appends, in {folder}):")
        for key, threads in [(None, 1), (b"k" * 32, 1), (None, 4), (None, 16)]:
            rate = appends_per_s(folder, args.n, key, threads)
            label = ("HMAC-SHA-256" if key else "SHA-256") + f", {threads} writer thread(s)"
            print(f"  {label:<36} {rate:8.0f} appends/s")
        log = AuditLog(folder / "latency.db")
        p50, p99 = latencies(lambda i: log.append({**EVENT, "i": i}), min(args.n, 1000))
        log.close()
        print(f"  one append, one thread: p50 {p50 / 1e3:.2f} ms, p99 {p99 / 1e3:.2f} ms")
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    if shutil.which("redis-server") is None:
        sys.exit("redis-server not installed (make redis): skipping the decision table")
    rdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    proc, port = start_redis(rdir)
    try:
        red = open_state(f"redis://127.0.0.1:{port}/0")
        tables = {"memory": decision_table(MemoryState(), args.n), "redis": decision_table(red, args.n)}
        red.close()
    finally:
        stop_redis(proc)
        shutil.rmtree(rdir, ignore_errors=True)
    print(f"\ndecision latency, µs (p50 / p99 over {args.n} calls; Redis on loopback):")
    print(f"  {'operation':<24} {'memory':>18} {'redis':>18}")
    for op in tables["memory"]:
        m, r = tables["memory"][op], tables["redis"][op]
        print(f"  {op:<24} {m[0]:8.1f} / {m[1]:7.1f} {r[0]:8.1f} / {r[1]:7.1f}")


if __name__ == "__main__":
    main()
