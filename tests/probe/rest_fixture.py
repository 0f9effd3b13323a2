"""OIP v2 REST servers on loopback for the probe's tests: a naive one with every weakness, and a hardened one.

Both serve a small logistic model over four features (``loan``) with the stdlib
``ThreadingHTTPServer``. The naive server plants each weakness the probe looks for: no auth,
open repository/model-control routes, other tenants' models, version banners, CORS wildcard with
credentials, training details in metadata, full probability vectors, stack traces on any error,
no validation, no size or rate limit, and a per-row cost that makes big batches expensive. The
hardened one (TLS is added by the fixture) requires a key, rate-limits it, validates strictly
and answers labels only. The probe's tests assert on both; `mlwarden guard` will replace the
hardened one.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np

W, B = np.array([0.8, -0.5, 0.3, 0.1]), -0.2
KEY = "hardened-test-key-0123456789"


def predict(x: np.ndarray) -> tuple[list[int], list[list[float]]]:
    with np.errstate(all="ignore"):  # NaN and 1e308 are test inputs here
        p = 1 / (1 + np.exp(-(x @ W + B)))
    proba = np.stack([1 - p, p], axis=1)
    return proba.argmax(axis=1).tolist(), proba.tolist()


class Naive(BaseHTTPRequestHandler):
    server_version = "naive-oip/0.3"
    sys_version = "Python/3.11 scikit-learn/1.4.2"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall
    models: ClassVar[set[str]] = {"loan", "tenant-b-fraud", "loan-staging"}
    listed: ClassVar[list[str]] = ["loan", "tenant-b-fraud"]
    meta_extra: ClassVar[dict[str, Any]] = {"parameters": {"training_data": "s3://corp-ml/loans/train-2024-03.parquet",
                                                 "train_accuracy": 0.912, "n_estimators": 300}}

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def answer(self, status: int, doc: Any = None, headers: dict[str, str] | None = None) -> None:
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for k, v in self.base_headers().items():
            self.send_header(k, v)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def base_headers(self) -> dict[str, str]:
        origin = self.headers.get("origin") or "*"
        return {"x-powered-by": "scikit-learn/1.4.2", "access-control-allow-origin": origin,
                "access-control-allow-credentials": "true"}

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_OPTIONS(self) -> None:
        self.answer(204, headers={"access-control-allow-methods": "GET, POST", "access-control-allow-headers": "*"})

    def do_GET(self) -> None:
        self.route("GET", b"")

    def do_POST(self) -> None:
        self.route("POST", self.body())

    def route(self, method: str, raw: bytes) -> None:
        try:
            self.dispatch(method, self.path.split("?")[0], raw)
        except Exception:  # noqa: BLE001 — the planted weakness: every error answers 500 with the full trace
            self.answer(500, {"error": traceback.format_exc()})

    def dispatch(self, method: str, path: str, raw: bytes) -> None:
        if path in ("/v2/health/live", "/v2/health/ready"):
            return self.answer(200, {"live": True})
        if path == "/v2":
            return self.answer(200, {"name": "naive-oip", "version": "0.3", "extensions": []})
        if path in ("/v2/repository/index", "/v1/models"):
            return self.answer(200, [{"name": n, "state": "READY"} for n in self.listed])
        m = re.fullmatch(r"/v2/repository/models/([^/]+)/(load|unload)", path)
        if m:
            return self.answer(404, {"error": f"model {m.group(1)} not found in the repository"})
        m = re.fullmatch(r"/v2/models/([^/]+)(/ready|/infer)?", path)
        if not m or m.group(1) not in self.models:
            return self.answer(404, {"error": "not found"})
        if m.group(2) == "/ready":
            return self.answer(200, {"ready": True})
        if m.group(2) is None:
            return self.answer(200, {"name": m.group(1), "versions": ["1"], "platform": "sklearn",
                                     "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}],
                                     "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                                 {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
                                     **self.meta_extra})
        if method != "POST":
            return self.answer(405, {"error": "use POST"})
        return self.infer(m.group(1), raw)

    def infer(self, name: str, raw: bytes) -> None:
        doc = json.loads(raw)  # NaN, Infinity and any depth accepted; RecursionError → 500 + trace
        t = doc["inputs"][0]
        x = np.asarray(t["data"], dtype=float).reshape(t["shape"])
        time.sleep(min(1.5, 5e-5 * x.shape[0]))  # the planted cost: big batches are expensive
        labels, proba = predict(x.reshape(-1, 4) if x.size % 4 == 0 else np.zeros((1, 4)))
        n = len(labels)
        self.answer(200, {"model_name": name, "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [n], "data": labels},
            {"name": "predict_proba", "datatype": "FP64", "shape": [n, 2], "data": proba}]})


class Hardened(Naive):
    """Key required (Bearer), 10 requests/s per key (burst 20), strict validation, labels only."""

    models: ClassVar[set[str]] = {"loan"}
    listed: ClassVar[list[str]] = ["loan"]
    meta_extra: ClassVar[dict[str, Any]] = {}
    rate, capacity, max_body = 10.0, 20.0, 64 << 10
    _lock = threading.Lock()
    _bucket: ClassVar[dict[str, float]] = {"tokens": 20.0, "at": 0.0}

    def version_string(self) -> str:
        return "gateway"

    def do_POST(self) -> None:
        self.route("POST", b"")  # route reads the body once it knows its size is acceptable

    def base_headers(self) -> dict[str, str]:
        return {}

    def do_OPTIONS(self) -> None:
        self.answer(405, {"error": "method not allowed"})

    def route(self, method: str, raw: bytes) -> None:
        path = self.path.split("?")[0]
        if path in ("/v2/health/live", "/v2/health/ready"):
            return self.answer(200, {"live": True})
        if int(self.headers.get("content-length") or 0) > self.max_body:
            self.close_connection = True  # the body stays unread, so this connection cannot carry another request
            return self.answer(413, {"error": "request too large"})
        raw = self.body()
        given = (self.headers.get("authorization") or "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, KEY.encode()):
            return self.answer(401, {"error": "unauthorized"}, {"www-authenticate": "Bearer"})
        if not self.take():
            return self.answer(429, {"error": "rate limit exceeded"}, {"retry-after": "1"})
        try:
            self.dispatch(method, path, raw)
        except Exception:  # noqa: BLE001 — a bug in the fixture must not look like a probe finding: short message only
            self.answer(400, {"error": "invalid request"})

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            b = self._bucket
            b["tokens"] = min(self.capacity, b["tokens"] + (now - b["at"]) * self.rate if b["at"] else b["tokens"])
            b["at"] = now
            if b["tokens"] < 1:
                return False
            b["tokens"] -= 1
            return True

    def infer(self, name: str, raw: bytes) -> None:
        error = validate(raw)
        if error:
            return self.answer(400, {"error": error})
        t = json.loads(raw)["inputs"][0]
        labels, _ = predict(np.asarray(t["data"], dtype=float).reshape(-1, 4))
        self.answer(200, {"model_name": name, "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [len(labels)], "data": labels}]})


class Throttling(Naive):
    """Naive, but with a bare CORS wildcard and a limit of 10 requests a second answered 429 without Retry-After."""

    _lock = threading.Lock()
    _times: ClassVar[list[float]] = []

    def base_headers(self) -> dict[str, str]:
        return {"access-control-allow-origin": "*"}

    def route(self, method: str, raw: bytes) -> None:
        with self._lock:
            now = time.monotonic()
            self._times[:] = [t for t in self._times if now - t < 1.0] + [now]
            over = len(self._times) > 10
        if over:
            return self.answer(429, {"error": "slow down"})
        return super().route(method, raw)


def _no_constant(c: str) -> Any:
    raise ValueError(f"{c} is not allowed")


def validate(raw: bytes) -> str | None:
    """The first reason the body is not a valid request for `loan`, or None."""
    try:
        doc = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        return f"body is not valid JSON: {str(e)[:60]}"
    if not isinstance(doc, dict) or set(doc) - {"id", "inputs", "outputs", "parameters"}:
        return "unknown top-level field"
    ins = doc.get("inputs")
    if not isinstance(ins, list) or len(ins) != 1 or not isinstance(ins[0], dict):
        return "exactly one input tensor 'features' is required"
    t = ins[0]
    if set(t) - {"name", "datatype", "shape", "data", "parameters"} or t.get("name") != "features":
        return "exactly one input tensor 'features' is required"
    if t.get("datatype") != "FP64":
        return "datatype must be FP64"
    shape, data = t.get("shape"), t.get("data")
    if not (isinstance(shape, list) and len(shape) == 2 and shape[1] == 4 and isinstance(shape[0], int)
            and 1 <= shape[0] <= 64):
        return "shape must be [n, 4] with 1 <= n <= 64"
    if not isinstance(data, list):
        return "data must be a list"
    flat = [v for row in data for v in (row if isinstance(row, list) else [row])]
    if len(flat) != shape[0] * 4:
        return "data does not match shape"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= 1e6
               for v in flat):
        return "values must be finite numbers within ±1e6"
    outs = doc.get("outputs") or []
    if any(not isinstance(o, dict) or o.get("name") != "predict" for o in outs):
        return "only output 'predict' is available"
    return None


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed legacy handshakes and dropped connections are expected under the probe


def serve(handler: type, ssl_context: Any = None) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start ``handler`` on a free loopback port in a daemon thread (TLS when a context is given)."""
    httpd = _Quiet(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    if ssl_context is not None:
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return httpd, thread
