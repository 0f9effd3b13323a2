"""The whole data audit at scale, side by side with Deepchecks and Evidently.

    python bench/bench_audit.py --rows N [--engines local,dask] [--peers] [--keep]

1. Generates the 31-column loan table of ``loan_table.py`` (train N rows, test N/4 split
   by time, feedback N/20) with planted flaws at known rows, as parquet under
   ``bench/out/audit-N/`` (kept and reused by later runs of the same N).
2. Runs ``mlwarden audit`` on it as a whole process — every check that applies, local
   engine (both cores) and, with ``--engines local,dask``, on a Dask LocalCluster with
   2 workers — sampling the peak RSS of its whole process tree (the audit and its
   workers) every 50 ms with psutil.
3. With ``--peers``: creates ``bench/out/compare-venv`` (deepchecks 0.19.1,
   evidently 0.7.23 and the numpy/pandas/scikit-learn/scipy/pyarrow versions they need)
   unless it is there, and runs Deepchecks' ``data_integrity`` and
   ``train_test_validation`` suites and Evidently's drift preset on the same files,
   each as its own process, measured the same way (``peers_audit.py``).
4. Prints one table: tool, rows, wall s, peak RSS and the planted flaws found.

A run that stops finding a planted flaw shows it in the table (``missed: …``): a fast
audit that finds less is not a faster audit. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import loan_table

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PEERS_VENV = OUT / "compare-venv"
PEERS_PINS = ["deepchecks==0.19.1", "evidently==0.7.23", "numpy==1.26.*", "pandas==2.2.*", "scikit-learn==1.5.*",
              "scipy==1.14.*", "pyarrow<19", "psutil"]
FLAWS = ("exact_duplicates", "near_duplicates", "entity_leakage", "temporal_leakage", "target_leakage", "pii",
         "label_flip_region", "conflicting_labels", "poisoned_feedback", "out_of_range", "drift",
         "unseen_category", "proxy")


def measure(cmd: list[str], env: dict | None = None) -> tuple[int, float, float, str, str]:
    """Run ``cmd``; return (exit code, wall s, peak RSS of its process tree in MiB, stdout, stderr)."""
    import psutil

    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    proc, peak, done = psutil.Process(child.pid), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            total = 0
            try:
                for p in [proc, *proc.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak[0] = max(peak[0], total)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    return child.returncode, wall, peak[0] / 2**20, out, err


def found_by_mlwarden(report: dict, truth: dict) -> list[str]:
    """Which planted flaws the report finds: each by its check, and by count where counts are known."""
    by_check: dict[str, list[dict]] = {}
    for f in report["findings"]:
        by_check.setdefault(f["check"], []).append(f)

    def ev(check: str, split: str, key: str) -> int:
        return sum(int(f["evidence"].get(key, 0) or 0) for f in by_check.get(check, ())
                   if f["evidence"].get("split") == split)

    text = {c: " ".join(f["title"] for f in fs) for c, fs in by_check.items()}
    got = {
        "exact_duplicates": ev("data.leakage.exact_duplicates", "test", "duplicated_rows")
        >= truth["exact_duplicate_ids"],
        "near_duplicates": ev("data.leakage.near_duplicates", "test", "near_duplicate_rows")
        >= 0.998 * truth["near_duplicate_ids"],
        "entity_leakage": "data.leakage.entity" in by_check,
        "temporal_leakage": "training rows" in text.get("data.leakage.temporal", ""),
        "target_leakage": "decision_code" in text.get("data.leakage.target", ""),
        "pii": "email" in text.get("data.privacy.pii", ""),
        # a low "within label noise" finding is not finding the flipped cell: a slice of it must be named
        "label_flip_region": any(
            f["severity"] in ("medium", "high", "critical")
            and any(s["slice"] in ("region = west", "purpose = medical")
                    for s in (f["evidence"].get("concentrated") or []) + (f["evidence"].get("noisy") or []))
            for f in by_check.get("data.poisoning.label_issues", ())),
        "conflicting_labels": "data.poisoning.conflicting_labels" in by_check,
        "poisoned_feedback": "promo_code_len" in text.get("data.poisoning.feedback", ""),
        "out_of_range": "age" in text.get("data.quality.out_of_range", ""),
        "drift": "interest_rate" in text.get("data.drift.columns", ""),
        "unseen_category": "purpose" in text.get("data.leakage.category_mismatch", ""),
        "proxy": "branch" in text.get("fairness.proxies", ""),
    }
    return [k for k in FLAWS if got[k]]


def run_mlwarden(root: Path, engine: str, truth: dict) -> dict:
    out = root / f"report-{engine}"
    cmd = [sys.executable, "-m", "mlwarden", "audit", str(root / "mlwarden.yaml"), "--out", str(out),
           "--format", "json", "--engine", engine, "--fail-on", "none"]
    rc, wall, peak, _, err = measure(cmd)  # both engines: one worker per core (2 here)
    if rc != 0:
        return {"tool": f"mlwarden ({engine})", "wall_s": wall, "peak_mb": peak, "found": [],
                "note": f"exit {rc}: {err.strip().splitlines()[-1:] }"}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    slow = sorted(((c["duration_s"], c["id"]) for c in report["checks"] if c["status"] != "skipped"), reverse=True)
    errors = [c["id"] for c in report["checks"] if c["status"] == "error"]
    return {"tool": f"mlwarden ({engine})", "wall_s": wall, "peak_mb": peak, "found": found_by_mlwarden(report, truth),
            "slowest": [(cid, round(s, 1)) for s, cid in slow[:8]], "errors": errors}


def peers_python() -> Path | None:
    py = PEERS_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {PEERS_VENV} (deepchecks, evidently) …", file=sys.stderr)
        log = OUT / "compare-venv-install.log"
        with open(log, "w", encoding="utf-8") as f:
            ok = subprocess.run(["python3.11", "-m", "venv", str(PEERS_VENV)], stdout=f, stderr=f, check=False).returncode == 0
            ok = ok and subprocess.run([str(py), "-m", "pip", "install", *PEERS_PINS], stdout=f, stderr=f, check=False).returncode == 0
        if not ok:
            print(f"could not create the peers' venv; see {log}", file=sys.stderr)
            return None
    return py


def run_peer(py: Path, kind: str, root: Path) -> dict:
    rc, wall, peak, out, err = measure([str(py), str(HERE / "peers_audit.py"), kind, str(root / "data")])
    if rc != 0:
        return {"tool": kind, "wall_s": wall, "peak_mb": peak, "found": [],
                "note": f"exit {rc}: {err.strip().splitlines()[-1:]}"}
    res = json.loads(out.strip().splitlines()[-1])
    return {"tool": kind, "wall_s": wall, "peak_mb": peak, "found": res["found"],
            "note": "; ".join(res.get("failed_checks", [])) or ", ".join(res.get("drifted_columns", []))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="training rows (test: N/4, feedback: N/20)")
    ap.add_argument("--engines", default="local", help="comma-separated: local,dask")
    ap.add_argument("--peers", action="store_true", help="also run Deepchecks and Evidently")
    args = ap.parse_args(argv)
    root = OUT / f"audit-{args.rows}"
    if not (root / "truth.json").exists():
        t0 = time.perf_counter()
        loan_table.generate(root, args.rows)
        print(f"generated {root} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    truth = json.loads((root / "truth.json").read_text(encoding="utf-8"))
    n = sum(truth["rows"].values())
    results = [run_mlwarden(root, e.strip(), truth) for e in args.engines.split(",") if e.strip()]
    if args.peers:
        py = peers_python()
        if py is not None:
            for kind in ("deepchecks_integrity", "deepchecks_train_test", "evidently_drift"):
                results.append(run_peer(py, kind, root))
    load = os.getloadavg()
    print(f"\n{args.rows:,} train + {truth['rows']['test']:,} test + {truth['rows']['feedback']:,} feedback rows "
          f"× 31 columns; {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| tool | rows | wall s | peak RSS MiB | planted flaws found |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        peer = not r["tool"].startswith("mlwarden")
        missed = [] if peer else [f for f in FLAWS if f not in r["found"]]
        rows = truth["rows"]["train"] + truth["rows"]["test"] if peer else n
        found = f"{len(r['found'])}/{len(FLAWS)}" + (f" (missed: {', '.join(missed)})" if missed else "")
        if peer:
            found += f" ({', '.join(r['found']) or 'none'})"
        print(f"| {r['tool']} | {rows:,} | {r['wall_s']:.1f} | {r['peak_mb']:,.0f} | {found} |")
    for r in results:
        extra = r.get("slowest") or r.get("note")
        if extra:
            print(f"\n{r['tool']}: {extra}" + (f"; errors: {r['errors']}" if r.get("errors") else ""))


if __name__ == "__main__":
    main()
