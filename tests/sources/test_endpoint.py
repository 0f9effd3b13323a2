"""The OIP v2 client and EndpointModel against a live MLServer, and against a hostile loopback server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from mlwarden.errors import SourceError
from mlwarden.sources.endpoint import EndpointModel, Layout, OipClient, open_endpoint_model, parse_endpoint
from mlwarden.sources.model import BudgetExceeded, QueryBudget, infer_schema

from tests.mlserver_fixture import FEATURES, free_port

PROTOCOLS = ["rest", "grpc"]


def _url(served, proto: str, name: str) -> str:
    return served.rest_url(name) if proto == "rest" else served.grpc_url(name)


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


# --- URLs -------------------------------------------------------------------------------------

def test_url_forms() -> None:
    e = parse_endpoint("https://h.example:8443/serving/v2/models/loan/versions/3")
    assert (e.protocol, e.tls, e.base, e.model, e.version) == ("rest", True, "https://h.example:8443/serving", "loan", "3")
    e = parse_endpoint("grpc://127.0.0.1:8081/loan")
    assert (e.protocol, e.tls, e.base, e.model, e.version) == ("grpc", False, "127.0.0.1:8081", "loan", None)
    assert parse_endpoint("grpcs://h/m/versions/v1").base == "h:443"
    for bad in ["http://h:1/loan", "ftp://h/v2/models/m", "grpc://h:1/", "http://u:p@h/v2/models/m",
                "http://h/v2/models/a/b"]:
        with pytest.raises(SourceError):
            parse_endpoint(bad)


def test_credentials_need_tls_unless_allowed() -> None:
    with pytest.raises(SourceError, match="without TLS") as e:
        OipClient("http://127.0.0.1:1/v2/models/m", api_key="s3cret")
    assert "s3cret" not in str(e.value)
    OipClient("https://127.0.0.1:1/v2/models/m", api_key="s3cret")
    OipClient("http://127.0.0.1:1/v2/models/m", api_key="s3cret", insecure=True)
    OipClient("http://127.0.0.1:1/v2/models/m", headers={"x-trace": "1"})  # not a secret


# --- live MLServer ----------------------------------------------------------------------------

@pytest.mark.parametrize("proto", PROTOCOLS)
def test_health_and_metadata(mlserver, proto: str) -> None:
    with OipClient(_url(mlserver, proto, "lr_matrix")) as c:
        assert c.live() and c.ready() and c.model_ready()
        meta = c.metadata()
        assert meta.name == "lr_matrix"
        assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [("features", "FP64", (-1, 4))]
    with OipClient(_url(mlserver, proto, "lr")) as c:
        assert c.metadata().inputs == ()  # MLServer declares nothing unless model-settings does


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("name", ["lr", "rf"])
def test_endpoint_predictions_equal_local(mlserver, proto: str, name: str) -> None:
    data, est = mlserver.data, mlserver.models[name]
    budget = QueryBudget(10_000)
    m = open_endpoint_model(_url(mlserver, proto, name), data=data, budget=budget, excluded={"approved"},
                            batch_rows=400)
    assert isinstance(m, EndpointModel) and m.kind == "endpoint" and m.estimator is None
    assert m.layout.mode == "columns" and m.schema.names == FEATURES
    assert m.exposes_proba and m.classes.tolist() == [0, 1]
    assert budget.used == 1  # the probe for scores
    X = data[FEATURES].iloc[:1000]
    pred = m.predict(data.iloc[:1000])  # extra columns are dropped by the facade
    assert pred.dtype == est.predict(X).dtype
    np.testing.assert_array_equal(pred, est.predict(X))
    np.testing.assert_allclose(m.predict_proba(X), est.predict_proba(X), rtol=0, atol=1e-9)
    assert budget.used == 1 + 2000


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_single_tensor_layout_from_metadata(mlserver, proto: str) -> None:
    data, est = mlserver.data, mlserver.models["lr_matrix"]
    m = open_endpoint_model(_url(mlserver, proto, "lr_matrix"), data=data, excluded={"approved"})
    assert m.layout.mode == "tensor" and m.layout.tensor_name == "features"
    X = data[FEATURES].iloc[:300]
    np.testing.assert_array_equal(m.predict(X), est.predict(X.to_numpy(np.float64)))
    np.testing.assert_allclose(m.predict_proba(X), est.predict_proba(X.to_numpy(np.float64)), rtol=0, atol=1e-9)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_labels_only_endpoint(mlserver, proto: str) -> None:
    data, est = mlserver.data, mlserver.models["reg"]
    m = open_endpoint_model(_url(mlserver, proto, "reg"), data=data, excluded={"approved"})
    assert not m.exposes_proba
    with pytest.raises(SourceError, match="does not expose scores"):
        m.predict_proba(data.iloc[:3])
    np.testing.assert_allclose(m.predict(data.iloc[:50]), est.predict(data[FEATURES].iloc[:50]), rtol=0, atol=1e-9)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_budget_is_charged_before_sending(mlserver, proto: str) -> None:
    data = mlserver.data
    m = open_endpoint_model(_url(mlserver, proto, "lr"), data=data, excluded={"approved"}, budget=QueryBudget(51))
    m.predict(data.iloc[:50])
    assert m.budget.used == 51
    with pytest.raises(BudgetExceeded):
        m.predict(data.iloc[:1])
    assert m.budget.used == 51


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_wrong_model_name_is_one_line(mlserver, proto: str) -> None:
    with pytest.raises(SourceError) as e:
        open_endpoint_model(_url(mlserver, proto, "nope"), data=mlserver.data, excluded={"approved"})
    msg = _one_line(e)
    assert "nope" in msg and "not found" in msg.lower()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_answer_over_the_size_limit(mlserver, proto: str) -> None:
    c = OipClient(_url(mlserver, proto, "lr"), max_response_bytes=2000)
    with pytest.raises(SourceError, match="limit") as e:
        c.predict(mlserver.data.iloc[:500], Layout("columns", tuple(FEATURES)), proba=True)
    _one_line(e)


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_connection_refused_is_one_line(scheme: str) -> None:
    port = free_port()  # nothing listens there
    url = f"{scheme}://127.0.0.1:{port}" + ("/v2/models/m" if scheme == "http" else "/m")
    with pytest.raises(SourceError) as e:
        open_endpoint_model(url, data=pd.DataFrame({"a": [1.0]}), timeout_s=5)
    msg = _one_line(e)
    assert "cannot connect" in msg and str(port) in msg


# --- a hostile server -------------------------------------------------------------------------

class Hostile(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[dict]
    finished: threading.Event


class _Handler(BaseHTTPRequestHandler):
    server: Hostile

    def log_message(self, *a) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {"content-type": "application/json"}).items():
            self.send_header(k, v)
        if "content-length" not in {k.lower() for k in (headers or {})}:
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        mode = self.path.split("/")[1]
        if mode == "redirect":
            return self._send(302, b"", {"location": "http://evil.example/v2/models/m/infer"})
        self._send(200, json.dumps({"name": "m", "versions": [], "platform": "", "inputs": [], "outputs": []}).encode())

    def do_POST(self) -> None:
        mode = self.path.split("/")[1]
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        rows = body["inputs"][0]["shape"][0]
        self.server.requests.append({"mode": mode, "rows": rows, "auth": self.headers.get("authorization")})
        ok = {"model_name": "m", "outputs": [{"name": "predict", "datatype": "INT64", "shape": [rows], "data": [0] * rows}]}
        try:
            if mode == "ok":
                self._send(200, json.dumps(ok).encode())
            elif mode == "malformed":
                self._send(200, b'{"model_name": "m", "outputs": [')
            elif mode == "error":
                self._send(500, json.dumps({"error": "model exploded"}).encode())
            elif mode == "shape":
                ok["outputs"][0]["data"] = [0] * (rows - 1)
                self._send(200, json.dumps(ok).encode())
            elif mode == "rows":
                ok["outputs"][0].update(shape=[rows + 1], data=[0] * (rows + 1))
                self._send(200, json.dumps(ok).encode())
            elif mode in ("huge", "stream"):  # 1 GiB declared, or no length at all (read until close)
                self.send_response(200)
                if mode == "huge":
                    self.send_header("content-length", str(1 << 30))
                self.end_headers()
                for _ in range(2000):
                    self.wfile.write(b" " * 65536)
            elif mode in ("slow", "drip"):
                if mode == "slow":
                    time.sleep(3)
                    self._send(200, json.dumps(ok).encode())
                else:
                    self._send(200, b"", {"content-type": "application/json", "content-length": "1000"})
                    for _ in range(30):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
                self.server.finished.set()
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture()
def hostile() -> Iterator[Hostile]:
    srv = Hostile(("127.0.0.1", 0), _Handler)
    srv.requests, srv.finished = [], threading.Event()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def _hurl(srv: Hostile, mode: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/{mode}/v2/models/m"


X4 = pd.DataFrame({"a": np.arange(250, dtype=float), "b": np.arange(250)})
LAY = Layout("columns", ("a", "b"))


def test_batches_and_api_key(hostile: Hostile) -> None:
    c = OipClient(_hurl(hostile, "ok"), batch_rows=100, api_key="k1", insecure=True)
    assert c.predict(X4, LAY, proba=False).tolist() == [0] * 250
    assert [r["rows"] for r in hostile.requests] == [100, 100, 50]
    assert {r["auth"] for r in hostile.requests} == {"Bearer k1"}


def test_budget_exceeded_sends_nothing(hostile: Hostile) -> None:
    c = OipClient(_hurl(hostile, "ok"))
    m = EndpointModel(c, LAY, schema=infer_schema(["a", "b"], X4),
                      classes=[0, 1], budget=QueryBudget(20), exposes_proba=False)
    with pytest.raises(BudgetExceeded):
        m.predict(X4.iloc[:21])
    assert hostile.requests == [] and m.budget.used == 0
    assert m.predict(X4.iloc[:20]).tolist() == [0] * 20 and len(hostile.requests) == 1


@pytest.mark.parametrize("mode,expect", [
    ("malformed", "not valid JSON"),
    ("error", "HTTP 500: model exploded"),
    ("shape", "declares shape [250] but carries 249 values"),
    ("rows", "expected [250] labels"),
    ("huge", "answer of 1,073,741,824 bytes exceeds the 1,048,576-byte limit"),
    ("stream", "answer exceeds the 1,048,576-byte limit"),
    ("redirect", "redirects to http://evil.example"),
])
def test_hostile_answers_are_one_clear_line(hostile: Hostile, mode: str, expect: str) -> None:
    c = OipClient(_hurl(hostile, mode), max_response_bytes=1 << 20, timeout_s=10)
    with pytest.raises(SourceError) as e:
        if mode == "redirect":
            c.metadata()
        else:
            c.predict(X4, LAY, proba=False)
    msg = _one_line(e)
    assert expect in msg and "/v2/models/m" in msg


@pytest.mark.parametrize("mode", ["slow", "drip"])
def test_slow_answers_time_out(hostile: Hostile, mode: str) -> None:
    c = OipClient(_hurl(hostile, mode), timeout_s=0.5)
    with pytest.raises(SourceError, match=r"no complete answer within 0.5 s") as e:
        c.predict(X4.iloc[:5], LAY, proba=False)
    _one_line(e)
    assert not hostile.finished.is_set()  # the client gave up while the server was still stalling


# --- the fairness Predictor on an endpoint-only spec --------------------------------------------

@pytest.mark.parametrize("proto", PROTOCOLS)
def test_fairness_predictor_queries_the_endpoint(mlserver, proto: str, tmp_path) -> None:
    from mlwarden.fairness.predict import Predictor
    from mlwarden.spec import parse_spec

    url = _url(mlserver, proto, "rf")
    spec = parse_spec(f"name: t\ndata:\n  test: t.parquet\n  label: approved\nmodel:\n  endpoint: {url}\n",
                      tmp_path / "mlwarden.yaml")
    pr = Predictor(spec)
    assert pr.source == "endpoint"
    batch = mlserver.data.iloc[:200]
    pred, score = pr.predict(batch)
    est = mlserver.models["rf"]
    np.testing.assert_array_equal(pred, est.predict(batch[FEATURES]))
    np.testing.assert_allclose(score, est.predict_proba(batch[FEATURES])[:, 1], rtol=0, atol=1e-9)
    assert pr.favorable(pred).sum() == int((pred == 1).sum())
