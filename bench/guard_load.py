"""The load driver of bench_guard_overhead.py: request bodies, clients, open-loop and paired runs.

Two ways to measure what the guard adds:

- :func:`drive` — open loop at a fixed rate (request *i* is due at ``t0 + i/rate``; a late
  sender sends at once) from several threads: throughput and service/scheduled latency of
  one server at a time.
- :func:`paired` — closed loop, one request at a time, alternating between the bare server
  and the guard (both running): each pair of requests sees the same machine, so on a box
  shared with other work the *difference* stays readable when absolute figures wander.

The REST client is ``http.client`` over keep-alive connections with pre-encoded bodies
(:class:`StdlibClient`): httpx costs several hundred microseconds of CPU a request, more than
the guard itself, and cannot send 2,000 requests a second on two shared cores. ``httpx``
stays available for comparison.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import http.client
import json
import os
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np

from mlwarden.sources.oip import oip_v2_pb2 as pb
from mlwarden.sources.oip import oip_v2_pb2_grpc as pb_grpc
from tests.guard.conftest import DATATYPES, FEATURES, loans


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
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


LR_FEATURES = ["amount", "income", "home_own", "home_rent", "open_acc", "total_acc"]


def lr_model(spec: Path) -> list[str]:
    """Replace the pipeline's model by a logistic regression on its numeric features (cheap to call)."""
    import pickle

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    train = pd.read_parquet(spec.parent / "data/train.parquet")
    model = LogisticRegression(max_iter=1000).fit(train[LR_FEATURES], train["approve"])
    (spec.parent / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    return LR_FEATURES


def rest_body(row: dict, features: list[str]) -> dict:
    return {"inputs": [{"name": f, "datatype": DATATYPES[f], "shape": [1, 1], "data": [row[f]]} for f in features]}


def grpc_request(row: dict, features: list[str]) -> Any:
    req = pb.ModelInferRequest(model_name="loan")
    for f in features:
        t = req.inputs.add(name=f, datatype=DATATYPES[f], shape=[1, 1])
        if DATATYPES[f] == "BYTES":
            t.contents.bytes_contents.append(str(row[f]).encode())
        elif DATATYPES[f] == "FP64":
            t.contents.fp64_contents.append(float(row[f]))
        else:
            t.contents.int64_contents.append(int(row[f]))
    return req


class StdlibClient:
    """A keep-alive ``http.client`` connection posting pre-encoded bodies (the cheap client)."""

    def __init__(self, rest: str, headers: dict[str, str]) -> None:
        u = urllib.parse.urlsplit(rest)
        self._new = lambda: http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        self.conn = self._new()
        self.headers = {"content-type": "application/json", **headers}

    def post(self, path: str, raw: bytes) -> int:
        try:
            self.conn.request("POST", path, body=raw, headers=self.headers)
            r = self.conn.getresponse()
            r.read()
            return r.status
        except OSError:
            self.conn.close()
            self.conn = self._new()  # a broken connection counts as a failed request, then reconnect
            return 0

    def close(self) -> None:
        self.conn.close()


def drive(protocol: str, rest: str, grpc_addr: str, key: str | None, rate: float, seconds: float,
          threads: int, seed: int = 2, features: list[str] | None = None, client: str = "stdlib") -> dict[str, float]:
    features = features or FEATURES
    n = int(rate * seconds)
    # varied real-looking rows (a held-out sample), so a detector sees benign traffic, not a walk
    sample = loans(n, seed)[FEATURES].to_dict(orient="records")  # fresh rows each run: no replays across runs
    docs = [rest_body(r, features) for r in sample]
    raws = [json.dumps(d).encode() for d in docs]
    reqs = [grpc_request(r, features) for r in sample]
    due = [i / rate for i in range(n)]
    service, sched, ok = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool)
    hdrs = {"x-api-key": key} if key else {}
    md = (("x-api-key", key),) if key else ()
    channel = grpc.insecure_channel(grpc_addr, options=[("grpc.enable_http_proxy", 0)])
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    t0 = time.perf_counter() + 0.2

    def worker(k: int) -> None:
        c = httpx.Client(trust_env=False, timeout=10, headers=hdrs) if client == "httpx" else StdlibClient(rest, hdrs)
        with contextlib.closing(c):
            for i in range(k, n, threads):
                wait = t0 + due[i] - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sent = time.perf_counter()
                try:
                    if protocol == "rest" and client == "httpx":
                        good = c.post(f"{rest}/v2/models/loan/infer", json=docs[i]).status_code == 200
                    elif protocol == "rest":
                        good = c.post("/v2/models/loan/infer", raws[i]) == 200
                    else:
                        stub.ModelInfer(reqs[i], metadata=md, timeout=10)
                        good = True
                except (httpx.HTTPError, grpc.RpcError):
                    good = False
                end = time.perf_counter()
                service[i], sched[i], ok[i] = end - sent, end - (t0 + due[i]), good

    start, cpu0 = time.perf_counter(), time.process_time()
    with cf.ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    channel.close()
    good = ok.sum()
    return {"sent": n, "ok": int(good), "rps": good / wall, "client_us": cpu / n * 1e6,
            "p50": float(np.nanpercentile(service[ok], 50)) * 1e3, "p99": float(np.nanpercentile(service[ok], 99)) * 1e3,
            "s50": float(np.nanpercentile(sched[ok], 50)) * 1e3, "s99": float(np.nanpercentile(sched[ok], 99)) * 1e3}


def paired(rest: dict[str, str], grpc_addr: dict[str, str], key: str, n: int, features: list[str],
           seed: int = 3) -> dict[str, dict[str, float]]:
    """Closed loop, alternating bare and guard request by request (the order flips every pair).

    ``rest``/``grpc_addr`` map ``"bare"`` and ``"guard"`` to their addresses. Returns, per
    protocol, p50/p99 of each side and of the per-pair difference (guard − bare), in ms.
    """
    # fresh rows for each protocol: one key's stream of repeats would be an evasion walk to the detector
    sample = loans(2 * n, seed)[FEATURES].to_dict(orient="records")
    raws = [json.dumps(rest_body(r, features)).encode() for r in sample[:n]]
    reqs = [grpc_request(r, features) for r in sample[n:]]
    hdrs = {"x-api-key": key}
    md = (("x-api-key", key),)
    clients = {s: StdlibClient(rest[s], hdrs) for s in rest}
    channels = {s: grpc.insecure_channel(grpc_addr[s], options=[("grpc.enable_http_proxy", 0)]) for s in grpc_addr}
    stubs = {s: pb_grpc.GRPCInferenceServiceStub(c) for s, c in channels.items()}
    out: dict[str, dict[str, float]] = {}
    try:
        for protocol in ("rest", "grpc"):
            lat: dict[str, list[float]] = {"bare": [], "guard": []}
            load = os.getloadavg()[0]
            for i in range(n):
                for side in (("bare", "guard") if i % 2 else ("guard", "bare")):
                    t = time.perf_counter()
                    if protocol == "rest":
                        if clients[side].post("/v2/models/loan/infer", raws[i]) != 200:
                            raise RuntimeError(f"{side} refused a valid request")
                    else:
                        stubs[side].ModelInfer(reqs[i], metadata=md, timeout=10)
                    lat[side].append(time.perf_counter() - t)
            b, g = np.array(lat["bare"]) * 1e3, np.array(lat["guard"]) * 1e3
            out[protocol] = {"load": load, "n": n, "b50": float(np.percentile(b, 50)), "b99": float(np.percentile(b, 99)),
                             "g50": float(np.percentile(g, 50)), "g99": float(np.percentile(g, 99)),
                             "d50": float(np.percentile(g - b, 50)), "d99": float(np.percentile(g - b, 99))}
    finally:
        for c in clients.values():
            c.close()
        for ch in channels.values():
            ch.close()
    return out


def guard_metrics(rest: str, key: str) -> dict[str, float]:
    """The guard's unlabelled Prometheus counters (audit entries and commits among them)."""
    r = httpx.get(f"{rest}/metrics", headers={"x-api-key": key}, timeout=10, trust_env=False)
    return {ln.split()[0]: float(ln.split()[1]) for ln in r.text.splitlines()
            if ln and not ln.startswith("#") and "{" not in ln}
