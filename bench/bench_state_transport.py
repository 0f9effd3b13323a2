"""How a worker's partition state reaches the main process: the pool's pipe, or a state file.

    python bench/bench_state_transport.py [--mib 290] [--parts 6]

Builds a state shaped like one 333k-row train partition of the 1M audit bench (~290 MiB:
per-row uint64 hash arrays, an Arrow sample table with text columns, small count arrays),
then, in a process pool of two workers, hands ``--parts`` copies of it back to the main
process, which "merges" each (touches every buffer) while the next ones arrive:

- ``pipe``: the worker returns the state; ProcessPoolExecutor pickles it through its pipe.
- ``file``: the worker writes it with ``mlwarden.engine.local.write_states`` and returns the
  path; the main process reads it with ``read_states`` (what the local engine does).

Prints wall seconds and the main process's peak RSS for each, best of three rounds. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pyarrow as pa

from mlwarden.engine.local import read_states, write_states


def make_state(mib: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = mib * (1 << 20) // 900  # ~900 bytes a row in all, as in the bench's states
    return {
        "hashes": [rng.integers(0, 2**63, rows, dtype=np.uint64) for _ in range(40)],
        "sample": pa.table({f"t{i}": pa.array(rng.integers(0, 1000, rows // 3).astype(str)) for i in range(8)}
                           | {f"x{i}": rng.normal(size=rows // 3) for i in range(20)}),
        "counts": {f"c{i}": rng.integers(0, 100, 256) for i in range(200)},
    }


_BUILT: dict[int, dict] = {}


def built(mib: int) -> dict:
    """The worker's state, built once (building it is not what is measured)."""
    if mib not in _BUILT:
        _BUILT[mib] = make_state(mib, 0)
    return _BUILT[mib]


def warm(mib: int) -> None:
    built(mib)
    time.sleep(1.0)  # so that the other worker takes the other warm-up task


def by_pipe(mib: int) -> dict:
    return built(mib)


def by_file(mib: int, folder: str) -> str:
    return write_states(built(mib), folder)


def touch(state: dict) -> int:
    total = sum(int(h[:: 4096].sum() % 7) for h in state["hashes"])
    return total + state["sample"].num_rows + len(state["counts"])


def one(mode: str, mib: int, parts: int) -> tuple[float, float]:
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool, tempfile.TemporaryDirectory() as folder:
        list(pool.map(warm, [mib, mib]))  # both workers started, their states built, before the clock
        t0 = time.perf_counter()
        if mode == "pipe":
            futures = [pool.submit(by_pipe, mib) for _ in range(parts)]
            for f in futures:
                touch(f.result())
        else:
            futures = [pool.submit(by_file, mib, folder) for _ in range(parts)]
            for f in futures:
                touch(read_states(f.result()))
        wall = time.perf_counter() - t0
    return wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=290)
    ap.add_argument("--parts", type=int, default=6)
    ap.add_argument("--mode", choices=("pipe", "file"))
    args = ap.parse_args()
    if args.mode:  # one round in this process: its peak RSS is its own
        wall, peak = one(args.mode, args.mib, args.parts)
        print(f"{wall:.3f} {peak:.0f}")
        return
    print(f"{args.parts} states of ~{args.mib} MiB from 2 workers, best of 3 (each round its own process)")
    print("| transport | wall s | main-process peak MiB |\n|---|---:|---:|")
    for mode in ("pipe", "file"):
        runs = []
        for _ in range(3):
            out = subprocess.run([sys.executable, __file__, "--mode", mode, "--mib", str(args.mib),
                                  "--parts", str(args.parts)], capture_output=True, text=True, check=True)
            w, p = out.stdout.split()
            runs.append((float(w), float(p)))
        w, p = min(runs)
        print(f"| {mode} | {w:.2f} | {p:,.0f} |")


if __name__ == "__main__":
    main()
