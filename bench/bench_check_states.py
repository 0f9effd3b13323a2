"""Time one fold check in-process on the bench table and size its merged state; prints figures, asserts nothing.

    python bench/bench_check_states.py --rows 1000000 data.privacy.k_anonymity [--profile]

Runs ``run_audit(only=[CHECK])`` on bench/out/audit-ROWS/mlwarden.yaml (made by bench_audit.py)
with every partition folded in this process, so the process's CPU time and peak RSS are the
check's own. Prints wall and CPU seconds, the check's fold seconds, peak RSS and the pickled
size of the merged state (pickling it adds that much to the peak). To compare with another
version of the package, put its ``src`` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pickle
import pstats
import resource
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("check")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    from mlwarden import audit
    from mlwarden.engine import local
    from mlwarden.spec import load_spec

    local.INPROCESS_BYTES = 1 << 40  # fold every partition here: this process's figures are the check's
    sizes: dict[str, int] = {}
    finish = audit._finish_folds

    def spy(folds, ctx, folded):  # type: ignore[no-untyped-def]
        sizes.update({cid: len(pickle.dumps(f.state, protocol=5)) for cid, f in folded.items()})
        return finish(folds, ctx, folded)

    audit._finish_folds = spy
    spec = load_spec(BENCH / "out" / f"audit-{args.rows}" / "mlwarden.yaml")
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    report = audit.run_audit(spec, only=[args.check])
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    [res] = [c for c in report.checks if c.id == args.check]
    print(json.dumps({"check": args.check, "rows": args.rows, "package": audit.__file__,
                      "wall_s": round(wall, 2), "cpu_s": round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 2),
                      "fold_s": round(res.duration_s, 2), "peak_rss_mb": r1.ru_maxrss // 1024,
                      "state_mb": round(sizes.get(args.check, 0) / 1e6, 1), "status": res.status,
                      "findings": sorted((f.severity.value, f.title) for f in res.findings)}))
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
        print(out.getvalue())


if __name__ == "__main__":
    main()
