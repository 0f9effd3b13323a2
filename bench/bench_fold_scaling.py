"""How the data audit's fold scales with workers: local process pool and Dask LocalCluster.

    python bench/bench_fold_scaling.py [--rows 1000000] [--workers 1,2] [--repeat 2]

Uses the loan table of ``bench_audit.py`` (``bench/out/audit-N/``, generated there first)
and times the fold phase alone — every fold check of the audit over every partition, the
part that runs on the workers — with 1, 2, … workers on each engine, plus the states'
merge in the calling process. The finalizers (model fits, per-row joins) run in the calling
process whatever the engine and are left out: they do not scale with workers. Dask's
cluster start-up is left out too (it is timed apart). Each figure is the best of
``--repeat`` runs; the speed-up is against one worker of the same engine. Only as many
workers as cores say anything: on a 2-core machine this shows 1 → 2. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mlwarden.audit import open_sources
from mlwarden.engine.dask import DaskEngine
from mlwarden.engine.local import LocalEngine
from mlwarden.registry import FoldCheck, plan
from mlwarden.spec import load_spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    spec_path = Path(__file__).parent / "out" / f"audit-{args.rows}" / "mlwarden.yaml"
    if not spec_path.exists():
        sys.exit(f"{spec_path} is missing: run bench/bench_audit.py --rows {args.rows} first")
    spec = load_spec(spec_path)
    sources = open_sources(spec)
    checks = [c for c in plan(spec, sources).checks if isinstance(c, FoldCheck)]
    parts = [p for ds in sources.datasets.values() for p in ds.partitions]
    rows = sum(f.rows or 0 for ds in sources.datasets.values() for f in ds.files)
    print(f"{len(checks)} fold checks, {len(parts)} partitions, {rows:,} rows, {os.cpu_count()} cores")
    print("| engine | workers | start s | fold + merge s (best) | speed-up | rows/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("local", "dask"):
        one = None
        for w in (int(x) for x in args.workers.split(",")):
            t0 = time.perf_counter()
            eng = LocalEngine(workers=w) if name == "local" else DaskEngine(workers=w)
            start = time.perf_counter() - t0
            with eng:
                best = float("inf")
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    eng.fold(checks, parts)
                    best = min(best, time.perf_counter() - t)
            one = one if one is not None else best
            print(f"| {name} | {w} | {start:.1f} | {best:.1f} | {one / best:.2f}x | {rows / best:,.0f} |")


if __name__ == "__main__":
    main()
