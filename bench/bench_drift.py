"""Benchmark data.drift.columns: train vs production, N rows × 10 numeric + 5 categorical.

    python bench/bench_drift.py [--rows 1000000] [--engine local|dask] [--out DIR] [--no-exact]

Writes train and production (N rows each, 100k-row chunks through ParquetWriter, row
groups of 100k) with 10 numeric columns (normal, lognormal, uniform, exponential,
Poisson, integers; three of them shifted in production by known amounts) and 5
categorical ones (one shifted). Audits them with only the drift check in a child
process and prints wall time, peak RSS (audit process and its workers, sampled every
50 ms), and per numeric column the KS D the check reported, its histogram bounds, and
the exact D from ``scipy.stats.ks_2samp`` on all the values (``--no-exact`` skips it).
With ``datasketches`` installed it also builds KLL sketches (k=200) of each numeric
column twice and prints the KS D they give, their a-priori bound ε_a + ε_b, and how far
two builds from identical data disagree. Prints; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
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
CHECK = "data.drift.columns"
SHIFTED = {"n_lognormal": "×1.4", "n_normal": "+0.05 sd", "n_poisson": "λ 4→4.4", "c_plan": "mix"}
LEVELS = [f"l{i:02d}" for i in range(40)]


def chunk(rng: np.random.Generator, n: int, prod: bool) -> pa.Table:
    c: dict[str, object] = {
        "n_normal": rng.normal(0.05 if prod else 0.0, 1, n),
        "n_lognormal": rng.lognormal(10.5, 0.5, n) * (1.4 if prod else 1.0),
        "n_uniform": rng.uniform(0, 1, n),
        "n_exponential": rng.exponential(2.0, n),
        "n_poisson": rng.poisson(4.4 if prod else 4.0, n),
        "n_int_wide": rng.integers(0, 1_000_000, n),
        "n_student": rng.standard_t(3, n),
        "n_gamma": rng.gamma(2.0, 3.0, n),
        "n_beta": rng.beta(2, 5, n),
        "n_rounded": np.round(rng.normal(100, 15, n), 1),
        "c_plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.35, 0.15] if prod else [0.6, 0.3, 0.1]),
        "c_region": rng.choice(["north", "south", "east", "west"], n),
        "c_level": rng.choice(LEVELS, n),
        "c_flag": rng.random(n) < 0.2,
        "c_code": pa.array(rng.choice(LEVELS[:12], n)).dictionary_encode(),
    }
    return pa.table(c)


def generate(root: Path, rows: int) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, seed in (("train", 1), ("production", 2)):
        rng = np.random.default_rng(seed)
        writer = None
        for start in range(0, rows, CHUNK):
            t = chunk(rng, min(CHUNK, rows - start), split == "production")
            writer = writer or pq.ParquetWriter(root / "data" / f"{split}.parquet", t.schema)
            writer.write_table(t, row_group_size=CHUNK)
        assert writer is not None
        writer.close()
    (root / "mlwarden.yaml").write_text(
        "name: drift-bench\ndata:\n  train: data/train.parquet\n  production: data/production.parquet\n",
        encoding="utf-8")


def run_child(spec: str, engine: str) -> None:
    import mlwarden.checks.drift  # noqa: F401  (registers the check before checks/__init__ imports it)
    from mlwarden.audit import run_audit
    from mlwarden.spec import load_spec

    t0 = time.perf_counter()
    report = run_audit(load_spec(spec), engine=engine, only=[CHECK])
    (c,) = report.checks
    print(json.dumps({"wall": time.perf_counter() - t0, "status": c.status, "message": c.message,
                      "metrics": c.metrics, "fold_s": c.duration_s}))


def measure(spec: Path, engine: str) -> dict:
    import psutil

    child = subprocess.Popen([sys.executable, __file__, "--child", str(spec), "--engine", engine],
                             stdout=subprocess.PIPE, text=True)
    proc, peak, done = psutil.Process(child.pid), [0, 0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                main = proc.memory_info().rss
                tree = main + sum(p.memory_info().rss for p in proc.children(recursive=True))
                peak[0], peak[1] = max(peak[0], tree), max(peak[1], main)
            except psutil.Error:
                pass
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = child.communicate()
    done.set()
    t.join()
    if child.returncode:
        raise SystemExit(f"audit child failed with exit code {child.returncode}")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_tree_mib"], res["peak_main_mib"] = peak[0] / 2**20, peak[1] / 2**20
    return res


def kll_figures(train: np.ndarray, prod: np.ndarray) -> dict | None:
    try:
        import datasketches as ds
    except ImportError:
        return None

    def build(x: np.ndarray):
        s = ds.kll_doubles_sketch(200)
        for i in range(0, x.size, CHUNK):  # merge per chunk, as partitions would
            part = ds.kll_doubles_sketch(200)
            part.update(x[i:i + CHUNK])
            s.merge(part)
        return s

    def ks(a, b) -> float:
        ranks = np.linspace(0, 1, 4001)
        pts = np.unique(np.r_[a.get_quantiles(ranks), b.get_quantiles(ranks)])
        return float(np.max(np.abs(np.array(a.get_cdf(pts))[:-1] - np.array(b.get_cdf(pts))[:-1])))

    d1, d2 = ks(build(train), build(prod)), ks(build(train), build(prod))
    eps = ds.kll_doubles_sketch.get_normalized_rank_error(200, False)
    return {"d": d1, "d_rebuilt": d2, "bound": 2 * eps}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--engine", default="local", choices=("local", "dask"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--no-exact", action="store_true")
    ap.add_argument("--child")
    args = ap.parse_args(argv)
    if args.child:
        run_child(args.child, args.engine)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        t0 = time.perf_counter()
        generate(root, args.rows)
        print(f"generated 2 × {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
        r = measure(root / "mlwarden.yaml", args.engine)
        cols = r["metrics"]["columns"]["production"]
        print(f"\n| rows per split | engine | wall s | rows/s | peak RSS tree MiB | peak RSS main MiB |\n"
              f"|---:|---|---:|---:|---:|---:|\n| {args.rows:,} | {args.engine} | {r['wall']:.1f} | "
              f"{2 * args.rows / r['wall']:,.0f} | {r['peak_tree_mib']:.0f} | {r['peak_main_mib']:.0f} |")
        print(f"\nflagged: {r['metrics']['flagged']}  (planted: {SHIFTED})\n")
        print("| column | method | D reported | D bounds | exact D (scipy) | in bounds | PSI [95% CI] | "
              "KLL D | KLL D rebuilt | KLL bound ε_a+ε_b | severity |\n|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|")
        train = pq.read_table(root / "data" / "train.parquet") if not args.no_exact else None
        prod = pq.read_table(root / "data" / "production.parquet") if not args.no_exact else None
        for name, c in sorted(cols.items()):
            if c["type"] != "numeric":
                print(f"| {name} | {c['method']} | V {c['cramers_v']:.4f} | | | | {c['psi']:.4f} "
                      f"[{c['psi_ci'][0]:.4f}, {c['psi_ci'][1]:.4f}] | | | | {c['severity']} |")
                continue
            exact = inside = kll = ""
            if train is not None and prod is not None:
                from scipy.stats import ks_2samp

                x = train.column(name).to_numpy().astype(float)
                y = prod.column(name).to_numpy().astype(float)
                d = float(ks_2samp(x, y, method="asymp").statistic)
                lo, hi = c["ks_d_bounds"]
                exact, inside = f"{d:.5f}", str(lo - 1e-6 <= d <= hi + 1e-6)
                k = kll_figures(x, y)
                kll = f"{k['d']:.5f} | {k['d_rebuilt']:.5f} | {k['bound']:.4f}" if k else " | | "
            print(f"| {name} | {c['method'].split('(')[0]} | {c['ks_d']:.5f} | [{c['ks_d_bounds'][0]:.5f}, "
                  f"{c['ks_d_bounds'][1]:.5f}] | {exact} | {inside} | {c['psi']:.4f} "
                  f"[{c['psi_ci'][0]:.4f}, {c['psi_ci'][1]:.4f}] | {kll or ' | | '} | {c['severity']} |")


if __name__ == "__main__":
    main()
