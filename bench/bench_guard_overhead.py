"""What the guard adds to every request: latency and throughput, REST and gRPC, guard vs bare server.

    python bench/bench_guard_overhead.py [--rate 500] [--seconds 5] [--threads 16] [--log-level info]

Both sides are server *processes* on loopback serving the same safe-loaded model over the
same stack (uvicorn/h11 + FastAPI, grpcio): the **bare** server (``--serve-bare``, below)
decodes OIP v2, calls the model and encodes the answer; the **guard** (``python -m
mlwarden.guard``) does that plus the API key, token bucket, input schema, daily budget,
output policy, metrics, a JSON access-log line and a synchronous, fsynced audit-log append.
One client process sends one-row requests open-loop at a fixed rate (request *i* is due at
``t0 + i/rate``; a late sender sends at once) from ``--threads`` threads with keep-alive
connections (one gRPC channel). Reported per side and protocol: requests sent, answered
200, achieved req/s, and p50/p99 of the *service* time (send → answer) and of the
*scheduled* time (due → answer, which includes queueing when the server falls behind).
Prints a Markdown table. Client and servers share the machine's cores: the figures are
upper bounds of the cost on a loaded 2-core box, not a dedicated one.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi import (
    Request,  # module level: FastAPI resolves the handler's annotations in these globals
)
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))


def serve_bare(spec: Path, port: int, gport: int) -> None:
    """An OIP v2 server with no guard: decode, model, encode (the baseline)."""
    import json
    from concurrent import futures

    import grpc
    import pandas as pd
    import uvicorn
    from fastapi import FastAPI
    from starlette.concurrency import run_in_threadpool

    from mlwarden.guard.backend import open_backend, train_sample
    from mlwarden.guard.wire import (
        InferAnswer,
        OutTensor,
        datatype,
        fill_proto,
        from_json,
        from_proto,
        to_json,
    )
    from mlwarden.sources.oip import oip_v2_pb2 as pb
    from mlwarden.sources.oip import oip_v2_pb2_grpc as pb_grpc
    from mlwarden.spec import load_spec

    s = load_spec(spec)
    backend = open_backend(s, train_sample(s))

    def answer(call) -> InferAnswer:
        frame = pd.DataFrame({t.name: t.data for t in call.inputs})
        labels, proba = backend.predict(frame, proba=True)
        labels = np.asarray(labels).astype(np.int64)
        return InferAnswer(s.name, "1", call.id, (OutTensor("predict", datatype(labels), labels),
                                                  OutTensor("predict_proba", "FP64", proba)))

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v2/models/{name}/infer")
    async def infer(request: Request, name: str) -> JSONResponse:
        doc = json.loads(await request.body())
        return JSONResponse(to_json(await run_in_threadpool(answer, from_json(doc, name, ""))))

    class Servicer(pb_grpc.GRPCInferenceServiceServicer):
        def ModelInfer(self, request, context):
            return fill_proto(pb.ModelInferResponse(), answer(from_proto(request)))

    server = grpc.server(futures.ThreadPoolExecutor(16))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), server)
    server.add_insecure_port(f"127.0.0.1:{gport}")
    server.start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off",
                loop="asyncio", http="h11")
    server.stop(1)


def _free() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.post(url, json={}, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError("server did not start")


def drive(protocol: str, rest: str, grpc_addr: str, key: str | None, rate: float, seconds: float,
          threads: int, seed: int = 2) -> dict[str, float]:
    import grpc
    import httpx

    from mlwarden.sources.oip import oip_v2_pb2_grpc as pb_grpc
    from tests.guard.conftest import FEATURES, body, loans
    from tests.guard.test_gateway_grpc import request

    n = int(rate * seconds)
    # varied real-looking rows (a held-out sample), so a detector sees benign traffic, not a walk
    sample = loans(n, seed)[FEATURES].to_dict(orient="records")  # fresh rows each run: no replays across runs
    docs = [body([r]) for r in sample]
    reqs = [request([r]) for r in sample]
    due = [i / rate for i in range(n)]
    service, sched, ok = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool)
    hdrs = {"x-api-key": key} if key else {}
    md = (("x-api-key", key),) if key else ()
    channel = grpc.insecure_channel(grpc_addr, options=[("grpc.enable_http_proxy", 0)])
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    t0 = time.perf_counter() + 0.2

    def worker(k: int) -> None:
        with httpx.Client(trust_env=False, timeout=10, headers=hdrs) as c:
            for i in range(k, n, threads):
                wait = t0 + due[i] - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sent = time.perf_counter()
                try:
                    if protocol == "rest":
                        good = c.post(f"{rest}/v2/models/loan/infer", json=docs[i % len(docs)]).status_code == 200
                    else:
                        stub.ModelInfer(reqs[i % len(reqs)], metadata=md, timeout=10)
                        good = True
                except (httpx.HTTPError, grpc.RpcError):
                    good = False
                end = time.perf_counter()
                service[i], sched[i], ok[i] = end - sent, end - (t0 + due[i]), good

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    wall = time.perf_counter() - start
    channel.close()
    good = ok.sum()
    return {"sent": n, "ok": int(good), "rps": good / wall,
            "p50": float(np.nanpercentile(service[ok], 50)) * 1e3, "p99": float(np.nanpercentile(service[ok], 99)) * 1e3,
            "s50": float(np.nanpercentile(sched[ok], 50)) * 1e3, "s99": float(np.nanpercentile(sched[ok], 99)) * 1e3}


def breakdown(spec: Path, keys: Path, key: str, work: Path, n: int) -> None:
    """Per-request cost of each stage, in one thread of this process: CPU time (immune to other
    processes on the box) and wall time (which includes waiting for the audit log's fsync)."""
    import logging

    from mlwarden.guard.server import GuardOptions, build
    from mlwarden.guard.wire import from_json
    from tests.guard.conftest import body, row

    logging.disable(logging.INFO)  # the access line is measured apart, below
    b = build(GuardOptions(spec=spec, keys=keys, audit_log=work / "bd-audit.db", feedback_db=work / "bd-fb.db",
                           detect=False))
    gw = b.gateway
    doc = body([row()])
    v = gw.schema.validate(from_json(doc, "loan", ""))
    gw.key(key)  # the one scrypt: every later request is a cache hit
    from mlwarden.guard.server import _detector

    det = _detector(gw.backend.schema, None, __import__("pandas").read_parquet(spec.parent / "data/train.parquet"))

    def stage(fn) -> tuple[float, float, float]:
        cpu, wall = [], []
        for _ in range(n):
            c0, w0 = time.thread_time(), time.perf_counter()
            fn()
            cpu.append(time.thread_time() - c0)
            wall.append(time.perf_counter() - w0)
        return (float(np.median(cpu)) * 1e6, float(np.percentile(wall, 50)) * 1e6, float(np.percentile(wall, 99)) * 1e6)

    stages = {
        "model (predict + predict_proba)": lambda: gw.backend.predict(v.frame, proba=True),
        "decode + schema": lambda: gw.schema.validate(from_json(doc, "loan", "")),
        "key (cached) + token bucket + budget": lambda: (gw.key(key), gw.state.take("r", 1, 1e9, 10**9, time.time()),
                                                         gw.state.spend_budget("b", "d", 1, 10**12)),
        "audit-log append (fsync)": lambda: gw.audit.append({"kind": "bench", "status": 200, "rows": 1}),
        "detector (one key's stream of one repeated row)": lambda: det.observe("bench", v.matrix, gw.state),
        "whole guarded request": lambda: gw.call("rest", key, "loan", "", "bench", lambda: from_json(doc, "loan", "")),
    }
    print(f"\nin-process breakdown over {n} one-row requests ({os.cpu_count()} cores, loaded machine)\n")
    print("| stage | CPU µs (median) | wall µs p50 | wall µs p99 |")
    print("|---|---|---|---|")
    for name, fn in stages.items():
        cpu, w50, w99 = stage(fn)
        print(f"| {name} | {cpu:.0f} | {w50:.0f} | {w99:.0f} |")
    for c in b.closers:
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--detect", action="store_true", help="run the guard with its attack detector on")
    ap.add_argument("--serve-bare", nargs=3, metavar=("SPEC", "PORT", "GPORT"))
    ap.add_argument("--breakdown", type=int, metavar="N", help="in-process cost of each stage over N requests")
    a = ap.parse_args()
    if a.serve_bare:
        serve_bare(Path(a.serve_bare[0]), int(a.serve_bare[1]), int(a.serve_bare[2]))
        return
    from mlwarden.guard.keys import Quota, create_key
    from tests.guard import conftest as c

    work = Path(tempfile.mkdtemp(prefix="bench-guard-"))

    class Tmp:
        def mktemp(self, name: str) -> Path:
            p = work / name
            p.mkdir()
            return p

    spec = c.guard_pipeline.__wrapped__(Tmp())  # the tests' generated pipeline (model, spec, data)
    keys = work / "keys.json"
    key = create_key(keys, "bench", quota=Quota(rate=1e9, burst=10**9, daily=10**12),
                     output=__import__("mlwarden.guard.keys", fromlist=["OutputPolicy"]).OutputPolicy(mode="proba"))
    if a.breakdown:
        breakdown(spec, keys, key, work, a.breakdown)
        return
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    rows = []
    for side in ("bare", "guard"):
        port, gport = _free(), _free()
        if side == "bare":
            cmd = [sys.executable, __file__, "--serve-bare", str(spec), str(port), str(gport)]
        else:
            cmd = [sys.executable, "-m", "mlwarden.guard", "--spec", str(spec), "--keys", str(keys), "--port", str(port),
                   "--grpc-port", str(gport), "--audit-log", str(work / "audit.db"), "--feedback-db",
                   str(work / "fb.db"), "--log-level", a.log_level, *([] if a.detect else ["--no-detect"])]
        with open(work / f"{side}.log", "ab") as log:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            rest = f"http://127.0.0.1:{port}"
            _wait(f"{rest}/v2/models/loan/infer", proc)
            for protocol in ("rest", "grpc"):
                drive(protocol, rest, f"127.0.0.1:{gport}", key if side == "guard" else None, 100, 1, a.threads,
                      seed=1000 + len(rows))  # warm-up
                r = drive(protocol, rest, f"127.0.0.1:{gport}", key if side == "guard" else None, a.rate, a.seconds,
                          a.threads, seed=2000 + len(rows))
                rows.append((side, protocol, r))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    print(f"\nrate {a.rate:g} req/s for {a.seconds:g} s, {a.threads} client threads, 1 row/request, "
          f"{os.cpu_count()} cores shared by client and server (loaded machine); guard log level {a.log_level}, detector {'on' if a.detect else 'off'}\n")
    print("| side | protocol | sent | ok | req/s | p50 ms | p99 ms | p50 sched ms | p99 sched ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for side, protocol, r in rows:
        print(f"| {side} | {protocol} | {r['sent']} | {r['ok']} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['s50']:.2f} | {r['s99']:.2f} |")
    base = {p: r for s, p, r in rows if s == "bare"}
    for side, protocol, r in rows:
        if side == "guard":
            print(f"\nadded by the guard, {protocol}: p50 {r['p50'] - base[protocol]['p50']:+.2f} ms, "
                  f"p99 {r['p99'] - base[protocol]['p99']:+.2f} ms")


if __name__ == "__main__":
    main()
