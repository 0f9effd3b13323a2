"""What the guard adds to every request: latency and throughput, REST and gRPC, guard vs bare server.

    python bench/bench_guard_overhead.py --model lr --paired 2000 [--audit-dir /dev/shm]
    python bench/bench_guard_overhead.py --model lr --rate 2000 --seconds 3 [--threads 16] [--client stdlib|httpx]
    python bench/bench_guard_overhead.py --model lr --breakdown 1000 [--audit-dir /dev/shm]

Both sides are server *processes* on loopback serving the same safe-loaded model over the
same stack (uvicorn/h11 + FastAPI, grpcio): the **bare** server (``--serve-bare``, below)
decodes OIP v2, calls the model and encodes the answer; the **guard** (``python -m
mlwarden.guard``) does that plus the API key, token bucket, input schema, daily budget,
output policy, metrics, a JSON access-log line and a synchronous, fsynced audit-log append.

Three measurements (the load driver is ``guard_load.py``):

- ``--paired N``: both servers up, one client sending one request at a time, alternating
  guard and bare; prints each side's p50/p99 and the per-pair difference. On a machine shared
  with other work this is the figure to read: both sides of a pair see the same load.
- ``--rate R --seconds S``: one server at a time, open loop at R req/s from ``--threads``
  threads; prints sent, answered, achieved req/s, p50/p99 of the *service* time (send →
  answer) and of the *scheduled* time (due → answer, which includes queueing once the
  server falls behind).
- ``--breakdown N``: in one process, the CPU cost of each stage of a guarded request, the
  bare server's work, and their difference (the guard's own cost).

After a load run the guard's ``/metrics`` tell how many audit entries shared a commit (entries
per fsync: the group commit at work). ``--model lr`` serves a logistic regression on the
numeric features instead of the tests' random forest (~10 ms a request, which hides the guard's
own cost). ``--audit-dir /dev/shm`` puts the audit log on tmpfs, separating what the disk's
fsync costs from what the guard costs. Client and servers share the machine's cores: figures
are upper bounds of the cost on a loaded 2-core box, not a dedicated one.
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
from fastapi import (
    Request,  # module level: FastAPI resolves the handler's annotations in these globals
)
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from guard_load import (
    drive,
    free_port,
    guard_metrics,
    lr_model,
    paired,
    rest_body,
    wait_ready,
)


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


def breakdown(spec: Path, keys: Path, key: str, work: Path, n: int, features: list[str], audit_dir: Path) -> None:
    """Per-request cost of each stage, in one thread of this process: CPU time (immune to other
    processes on the box) and wall time (which includes waiting for the audit log's fsync)."""
    import logging

    from mlwarden.guard.server import GuardOptions, build
    from mlwarden.guard.wire import from_json
    from tests.guard.conftest import row

    logging.disable(logging.INFO)  # the access line is measured apart, below
    b = build(GuardOptions(spec=spec, keys=keys, audit_log=audit_dir / "bd-audit.db", feedback_db=work / "bd-fb.db",
                           detect=False))
    gw = b.gateway
    doc = rest_body(row(), features)
    v = gw.schema.validate(from_json(doc, "loan", ""))
    gw.key(key)  # the one scrypt: every later request is a cache hit
    from mlwarden.guard.server import _detector

    det = _detector(gw.backend.schema, None, __import__("pandas").read_parquet(spec.parent / "data/train.parquet"))

    import pandas as pd

    from mlwarden.guard.gateway import JsonFormatter
    from mlwarden.guard.wire import InferAnswer, OutTensor, datatype, to_json

    def bare() -> None:  # what the bare server does per request (serve_bare's answer): decode, frame, model, encode
        call = from_json(doc, "loan", "")
        labels, proba = gw.backend.predict(pd.DataFrame({t.name: t.data for t in call.inputs}), proba=True)
        labels = np.asarray(labels).astype(np.int64)
        to_json(InferAnswer("loan", "1", call.id, (OutTensor("predict", datatype(labels), labels),
                                                   OutTensor("predict_proba", "FP64", proba))))

    sink = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 — closed with the process
    sink.setFormatter(JsonFormatter())
    event = {"kind": "infer", "protocol": "rest", "peer": "127.0.0.1:50000", "model": "loan", "version": "",
             "key": "bench", "request_id": "", "rows": 1, "input_sha256": "0" * 64, "status": 200, "code": "OK",
             "ms": 1.234}

    fd = os.open(audit_dir / "fsync-probe", os.O_RDWR | os.O_CREAT, 0o600)
    page = b"\0" * 4096

    def access_line() -> None:
        r = logging.LogRecord("mlwarden.guard.access", logging.INFO, __file__, 0, "request", None, None)
        r.fields = event
        sink.handle(r)

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
        "model input frame (the bare server builds one too)": lambda: gw.schema.validate(from_json(doc, "loan", "")).frame,
        "key (cached) + token bucket + budget": lambda: (gw.key(key), gw.state.take("r", 1, 1e9, 10**9, time.time()),
                                                         gw.state.spend_budget("b", "d", 1, 10**12)),
        "raw fdatasync of a 4 KiB overwrite (the disk alone)": lambda: (os.pwrite(fd, page, 0), os.fdatasync(fd)),
        "audit-log append (fsync)": lambda: gw.audit.append({"kind": "bench", "status": 200, "rows": 1}),
        "detector (one key's stream of one repeated row)": lambda: det.observe("bench", v.matrix, gw.state),
        "access-log line (JSON, to /dev/null)": access_line,
        "bare request (decode, frame, model, encode)": bare,
        "whole guarded request (no access line)": lambda: gw.call("rest", key, "loan", "", "bench",
                                                                  lambda: from_json(doc, "loan", "")),
    }
    print(f"\nin-process breakdown over {n} one-row requests ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}), audit log in {audit_dir}\n")
    print("| stage | CPU µs (median) | wall µs p50 | wall µs p99 |")
    print("|---|---|---|---|")
    got = {}
    for name, fn in stages.items():
        got[name] = cpu, w50, w99 = stage(fn)
        print(f"| {name} | {cpu:.0f} | {w50:.0f} | {w99:.0f} |")
    g, b_ = got["whole guarded request (no access line)"], got["bare request (decode, frame, model, encode)"]
    line = got["access-log line (JSON, to /dev/null)"]
    print(f"\nthe guard's own cost per request (guarded + access line - bare): CPU {g[0] + line[0] - b_[0]:.0f} µs, "
          f"wall p50 {g[1] + line[1] - b_[1]:.0f} µs")
    os.close(fd)
    for c in b.closers:
        c.close()


def _start(side: str, spec: Path, keys: Path, work: Path, audit_dir: Path, a: argparse.Namespace) -> tuple:
    """One server process (bare or guard) on free loopback ports, ready; returns (proc, rest URL, gRPC address)."""
    port, gport = free_port(), free_port()
    if side == "bare":
        cmd = [sys.executable, __file__, "--serve-bare", str(spec), str(port), str(gport)]
    else:
        cmd = [sys.executable, "-m", "mlwarden.guard", "--spec", str(spec), "--keys", str(keys), "--port", str(port),
               "--grpc-port", str(gport), "--audit-log", str(audit_dir / "audit.db"), "--feedback-db",
               str(work / "fb.db"), "--log-level", a.log_level, *([] if a.detect else ["--no-detect"])]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    with open(work / f"{side}.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=log, start_new_session=True)
    rest = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{rest}/v2/models/loan/infer", proc)
    except BaseException:
        _stop(proc)
        raise
    return proc, rest, f"127.0.0.1:{gport}"


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def _batching(m: dict[str, float]) -> str:
    entries, commits = m.get("mlwarden_guard_audit_entries_total", 0), m.get("mlwarden_guard_audit_commits_total", 0)
    return f"audit log: {entries:.0f} entries in {commits:.0f} commits ({entries / max(commits, 1):.2f} entries per fsync)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--detect", action="store_true", help="run the guard with its attack detector on")
    ap.add_argument("--serve-bare", nargs=3, metavar=("SPEC", "PORT", "GPORT"))
    ap.add_argument("--breakdown", type=int, metavar="N", help="in-process cost of each stage over N requests")
    ap.add_argument("--paired", type=int, metavar="N", help="closed loop, N requests to each side, alternating")
    ap.add_argument("--model", choices=("rf", "lr"), default="rf", help="the tests' random forest, or a cheap LR")
    ap.add_argument("--audit-dir", type=Path, default=None, help="directory of the guard's audit log (e.g. /dev/shm)")
    ap.add_argument("--client", choices=("stdlib", "httpx"), default="stdlib", help="REST client of the load driver")
    a = ap.parse_args()
    if a.serve_bare:
        serve_bare(Path(a.serve_bare[0]), int(a.serve_bare[1]), int(a.serve_bare[2]))
        return
    from mlwarden.guard.keys import OutputPolicy, Quota, create_key
    from tests.guard import conftest as c

    work = Path(tempfile.mkdtemp(prefix="bench-guard-"))

    class Tmp:
        def mktemp(self, name: str) -> Path:
            p = work / name
            p.mkdir()
            return p

    spec = c.guard_pipeline.__wrapped__(Tmp())  # the tests' generated pipeline (model, spec, data)
    features = lr_model(spec) if a.model == "lr" else c.FEATURES
    audit_dir = Path(tempfile.mkdtemp(prefix="bench-guard-audit-", dir=a.audit_dir)) if a.audit_dir else work
    keys = work / "keys.json"
    key = create_key(keys, "bench", quota=Quota(rate=1e9, burst=10**9, daily=10**12), output=OutputPolicy(mode="proba"),
                     metrics=True)
    if a.breakdown:
        breakdown(spec, keys, key, work, a.breakdown, features, audit_dir)
        return
    setting = (f"model {a.model}, 1 row/request, {os.cpu_count()} cores shared by client, servers and other work; "
               f"guard log level {a.log_level}, detector {'on' if a.detect else 'off'}, audit log in {audit_dir}")
    if a.paired:
        procs = {side: _start(side, spec, keys, work, audit_dir, a) for side in ("bare", "guard")}
        try:
            got = paired({s: p[1] for s, p in procs.items()}, {s: p[2] for s, p in procs.items()}, key, a.paired,
                         features)
            batching = _batching(guard_metrics(procs["guard"][1], key))
        finally:
            for p in procs.values():
                _stop(p[0])
        print(f"\npaired closed loop, {a.paired} requests to each side alternating; {setting}\n")
        print("| protocol | load avg | bare p50 ms | bare p99 ms | guard p50 ms | guard p99 ms | added p50 ms | "
              "added p99 ms | p50 / p99 of per-pair difference ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for protocol, r in got.items():
            print(f"| {protocol} | {r['load']:.1f} | {r['b50']:.2f} | {r['b99']:.2f} | {r['g50']:.2f} | {r['g99']:.2f} | "
                  f"{r['g50'] - r['b50']:+.2f} | {r['g99'] - r['b99']:+.2f} | {r['d50']:+.2f} / {r['d99']:+.2f} |")
        print(f"\n{batching}")
        return
    rows = []
    batching = ""
    for side in ("bare", "guard"):
        proc, rest, gaddr = _start(side, spec, keys, work, audit_dir, a)
        try:
            for protocol in ("rest", "grpc"):
                drive(protocol, rest, gaddr, key if side == "guard" else None, 100, 1, a.threads,
                      seed=1000 + len(rows), features=features, client=a.client)  # warm-up
                load = os.getloadavg()[0]
                r = drive(protocol, rest, gaddr, key if side == "guard" else None, a.rate, a.seconds,
                          a.threads, seed=2000 + len(rows), features=features, client=a.client)
                r["load"] = load
                rows.append((side, protocol, r))
            if side == "guard":
                batching = _batching(guard_metrics(rest, key))
        finally:
            _stop(proc)
    print(f"\nopen loop at {a.rate:g} req/s for {a.seconds:g} s, {a.threads} client threads ({a.client}); {setting}\n")
    print("| side | protocol | load avg | sent | ok | req/s | p50 ms | p99 ms | p50 sched ms | p99 sched ms | "
          "client CPU µs/req |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for side, protocol, r in rows:
        print(f"| {side} | {protocol} | {r['load']:.1f} | {r['sent']} | {r['ok']} | {r['rps']:.0f} | {r['p50']:.2f} | "
              f"{r['p99']:.2f} | {r['s50']:.2f} | {r['s99']:.2f} | {r['client_us']:.0f} |")
    base = {p: r for s, p, r in rows if s == "bare"}
    for side, protocol, r in rows:
        if side == "guard":
            print(f"\nadded by the guard, {protocol}: p50 {r['p50'] - base[protocol]['p50']:+.2f} ms, "
                  f"p99 {r['p99'] - base[protocol]['p99']:+.2f} ms")
    print(f"\n{batching}")


if __name__ == "__main__":
    main()
