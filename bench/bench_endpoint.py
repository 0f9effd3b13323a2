"""Latency of the OIP v2 client against MLServer 1.7 on loopback: REST vs gRPC, 1,000-row requests.

Run: .venv/bin/python bench/bench_endpoint.py [--reps 15] (needs `make mlserver`). Starts MLServer
with the same models the tests use, times ``predict`` and ``predict_proba`` of 1,000 rows in one
request each (median and best of ``--reps``), prints a table, and stops the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.mlserver_fixture import FEATURES, MLSERVER, _ready, _train, free_port, make_data  # noqa: E402

from mlwarden.sources.endpoint import open_endpoint_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rows", type=int, default=1000)
    args = ap.parse_args()
    if not MLSERVER.exists():
        sys.exit("run `make mlserver` first")
    folder = Path(tempfile.mkdtemp(prefix="bench-mlserver-"))
    data = make_data(max(args.rows, 1500))
    models = _train(folder, data)
    http, grpc_port = free_port(), free_port()
    (folder / "settings.json").write_text(
        f'{{"host": "127.0.0.1", "http_port": {http}, "grpc_port": {grpc_port}, "metrics_port": {free_port()}, '
        '"parallel_workers": 0}')
    log = open(folder / "mlserver.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(MLSERVER), "start", str(folder)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    rest = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 120
        while not _ready(rest, list(models)):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("MLServer did not start; see " + str(folder / "mlserver.log"))
            time.sleep(0.25)
        print(f"MLServer ready in {time.perf_counter() - t0:.1f} s")
        X = data[FEATURES].iloc[:args.rows]
        print(f"{'model':6} {'proto':5} {'output':14} {'median ms':>9} {'best ms':>8} {'rows/s':>9}")
        for name in ("lr", "rf"):
            local = models[name]
            t = []
            for _ in range(args.reps):
                s = time.perf_counter()
                local.predict_proba(X)
                t.append(time.perf_counter() - s)
            print(f"{name:6} {'local':5} {'predict_proba':14} {np.median(t) * 1e3:9.1f} {min(t) * 1e3:8.1f} "
                  f"{args.rows / np.median(t):9.0f}")
            for proto, url in (("rest", f"{rest}/v2/models/{name}"), ("grpc", f"grpc://127.0.0.1:{grpc_port}/{name}")):
                m = open_endpoint_model(url, data=data, excluded={"approved"}, batch_rows=args.rows)
                for fn in ("predict", "predict_proba"):
                    getattr(m, fn)(X)  # warm-up
                    t = []
                    for _ in range(args.reps):
                        s = time.perf_counter()
                        getattr(m, fn)(X)
                        t.append(time.perf_counter() - s)
                    print(f"{name:6} {proto:5} {fn:14} {np.median(t) * 1e3:9.1f} {min(t) * 1e3:8.1f} "
                          f"{args.rows / np.median(t):9.0f}")
                m.client.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


if __name__ == "__main__":
    main()
