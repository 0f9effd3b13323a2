"""Input handling: every hostile or malformed request must get a clean refusal.

Each case is one request built from the working example (or a one-value tensor when there
is none) and bent one way. The answer is judged:

* ``rejected`` — a 4xx (not 401/403/429) or a gRPC INVALID_ARGUMENT-like status, without a stack trace: **pass**;
* ``accepted`` — 2xx/OK: the server computed on garbage; **medium** (NaN/Inf, wrong dtypes and
  shapes, missing fields, overflowing integers, malformed protobuf, oversize payloads), **low**
  for values that are merely extreme or fields that are merely extra;
* ``server_error`` — 5xx / INTERNAL / UNKNOWN: the server failed instead of validating; **medium**;
* ``trace`` — a refusal that carries a stack trace; **medium** (see also ``endpoint.disclosure.stack_trace``);
* ``hang`` / ``dropped`` — no answer within the timeout, or the connection died: **high** (a DoS lever);
* ``inconclusive`` — 401/403/429: the case could not be judged, reported, never a finding.

Each failing case is one finding, ``endpoint.inputs.<case>``; every case's verdict is in the metrics.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

from ..findings import Severity
from ..sources.oip import oip_v2_pb2 as pb
from .base import FamilyResult, Issue
from .disclosure import TRACE
from .payloads import INFER, Example, model_path, working_example
from .session import ProbeSession, Reply

REFS = ("OWASP-ML01", "AML.T0029", "AML.T0049", "NIST-MEASURE")
FALLBACK = Example(({"name": "input-0", "datatype": "FP64", "shape": [1, 1], "data": [0.5]},), source="fallback")
_LOW_IF_ACCEPTED = {"huge_float", "extra_field", "extra_input"}
_WHAT = {
    "nan": "NaN in a float tensor", "inf": "Infinity in a float tensor", "huge_float": "±1.79e308 in a float tensor",
    "int_overflow": "an integer that overflows its datatype", "wrong_dtype": "text where floats are declared",
    "bad_datatype": "an unknown datatype (FP99)", "wrong_shape": "a shape that does not match the data",
    "missing_inputs": "a request without inputs", "missing_data": "an input tensor without data",
    "extra_field": "an unknown top-level field", "extra_input": "an undeclared extra input tensor",
    "oversize": "an oversize payload", "deep_json": "JSON nested 100,000 levels deep",
    "invalid_json": "truncated JSON", "malformed_protobuf": "a malformed protobuf message",
    "raw_mismatch": "raw_input_contents of the wrong length",
}


def _issue(case: str, sev: Severity, verdict: str, r: Reply) -> Issue:
    said = {"accepted": "accepted it", "server_error": f"failed with {r.status}", "hang": "did not answer in time",
            "dropped": "dropped the connection", "trace": f"refused it ({r.status}) with a stack trace"}[verdict]
    return Issue(
        rule=f"endpoint.inputs.{case}", severity=sev, title=f"Input handling: {_WHAT[case]} → {verdict.replace('_', ' ')}",
        description=f"Sent {_WHAT[case]} ({r.what}); the server {said} instead of a clean 4xx/INVALID_ARGUMENT. "
                    + ("Unvalidated input reaches the model: garbage predictions, and a path for crafted inputs."
                       if verdict == "accepted" else "Hostile input can crash or stall the server."),
        remediation="Validate requests against the model's schema before inference (datatype, shape, finite "
                    "values in range, size limits) and answer 400/INVALID_ARGUMENT with a short message.",
        evidence={"case": case, "verdict": verdict, "status": r.status, "seconds": round(r.seconds, 3),
                  "answer": r.text(200)}, references=REFS)


def probe(s: ProbeSession) -> FamilyResult:
    out = FamilyResult()
    ex, why = working_example(s)
    base = ex or FALLBACK
    out.metrics["built_from"] = base.source if ex else f"fallback tensor ({why})"
    cases = _rest_cases(s, base) if s.target.protocol == "rest" else _grpc_cases(s, base)
    results = []
    for case, send in cases:
        r = send()
        verdict = judge(r, case)
        results.append({"case": case, "status": r.status, "verdict": verdict, "seconds": round(r.seconds, 3)})
        sev = _severity(case, verdict)
        if sev is not None:
            out.issues.append(_issue(case, sev, verdict, r))
    out.metrics["cases"] = results
    out.metrics["clean_rejections"] = sum(x["verdict"] == "rejected" for x in results)
    return out


def judge(r: Reply, case: str) -> str:
    if case == "oversize" and r.status in (413, "RESOURCE_EXHAUSTED"):
        return "rejected"
    if r.outcome in ("unauthorized", "throttled"):
        return "inconclusive"
    if r.outcome == "ok":
        return "accepted"
    if r.outcome == "rejected":
        return "trace" if TRACE.search(r.body[:16384].decode("utf-8", "replace")) else "rejected"
    return r.outcome  # server_error, hang, dropped


def _severity(case: str, verdict: str) -> Severity | None:
    if verdict in ("rejected", "inconclusive"):
        return None
    if verdict in ("hang", "dropped"):
        return Severity.HIGH
    if verdict == "accepted" and case in _LOW_IF_ACCEPTED:
        return Severity.LOW
    return Severity.MEDIUM


def _float_input(body: dict[str, Any]) -> dict[str, Any]:
    """The first float tensor of a body (made FP64 when the example has none), to bend."""
    t = next((t for t in body["inputs"] if t["datatype"].startswith("FP")), body["inputs"][0])
    if not t["datatype"].startswith("FP"):
        t["datatype"], t["data"] = "FP64", [0.5] * len(t["data"])
    return t


def _rest_cases(s: ProbeSession, ex: Example) -> list[tuple[str, Callable[[], Reply]]]:
    path = model_path(s) + "/infer"

    def bent(change: Callable[[dict[str, Any]], None]) -> Callable[[], Reply]:
        def send() -> Reply:
            body = copy.deepcopy(ex.rest())
            change(body)
            return s.http("POST", path, body=body)
        return send

    def raw(content: bytes) -> Callable[[], Reply]:
        return lambda: s.http("POST", path, content=content)

    def setv(v: Any) -> Callable[[dict[str, Any]], None]:
        return lambda b: _float_input(b)["data"].__setitem__(0, v)

    def int_overflow(b: dict[str, Any]) -> None:
        t = b["inputs"][0]
        t["datatype"], t["data"] = "INT64", [10 ** 30] * len(t["data"])

    def wrong_shape(b: dict[str, Any]) -> None:
        t = b["inputs"][0]
        t["shape"] = [1, max(1, len(t["data"])) + 3]

    per_row = len(json.dumps(ex.rest(2))) - len(json.dumps(ex.rest(1)))
    rows = math.ceil(s.options.oversize_bytes / max(1, per_row)) + 1
    deep = 100_000
    return [
        ("nan", bent(setv(float("nan")))),
        ("inf", bent(setv(float("inf")))),
        ("huge_float", bent(setv(1.7976931348623157e308))),
        ("int_overflow", bent(int_overflow)),
        ("wrong_dtype", bent(setv("not-a-number"))),
        ("bad_datatype", bent(lambda b: b["inputs"][0].__setitem__("datatype", "FP99"))),
        ("wrong_shape", bent(wrong_shape)),
        ("missing_inputs", bent(lambda b: b.pop("inputs"))),
        ("missing_data", bent(lambda b: b["inputs"][0].pop("data"))),
        ("extra_field", bent(lambda b: b.__setitem__("mlwarden_probe_extra", {"x": 1}))),
        ("extra_input", bent(lambda b: b["inputs"].append({"name": "mlwarden_probe_extra", "datatype": "FP64",
                                                             "shape": [1], "data": [1.0]}))),
        ("oversize", lambda: s.http("POST", path, content=json.dumps(ex.rest(rows)).encode())),
        ("deep_json", raw(b'{"inputs": ' + b"[" * deep + b"]" * deep + b"}")),
        ("invalid_json", raw(b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [0.5')),
    ]


def _grpc_cases(s: ProbeSession, ex: Example) -> list[tuple[str, Callable[[], Reply]]]:
    def bent(change: Callable[[Any], None]) -> Callable[[], Reply]:
        def send() -> Reply:
            req = ex.proto(s)
            change(req)
            return s.grpc(INFER, req.SerializeToString())
        return send

    def as_fp64(req: Any, values: list[float]) -> None:
        t = req.inputs[0]
        t.datatype = "FP64"
        t.ClearField("contents")
        n = math.prod(t.shape) or 1
        t.contents.fp64_contents.extend((values * n)[:n])

    def wrong_dtype(req: Any) -> None:
        t = req.inputs[0]
        t.datatype = "FP64"
        t.ClearField("contents")
        t.contents.bytes_contents.extend([b"not-a-number"] * (math.prod(t.shape) or 1))

    def int_overflow(req: Any) -> None:
        t = req.inputs[0]
        t.datatype = "INT32"  # the wire type is int32 inside int_contents; 2^40 cannot be one
        t.ClearField("contents")
        t.contents.int64_contents.extend([2 ** 40] * (math.prod(t.shape) or 1))

    def wrong_shape(req: Any) -> None:
        t = req.inputs[0]
        t.ClearField("shape")
        t.shape.extend([1, max(1, len(ex.inputs[0]["data"])) + 3])

    def extra_input(req: Any) -> None:
        e = req.inputs.add(name="mlwarden_probe_extra", datatype="FP64", shape=[1])
        e.contents.fp64_contents.append(1.0)

    def raw_mismatch(req: Any) -> None:
        for t in req.inputs:
            t.ClearField("contents")
        req.raw_input_contents.extend([b"\x00\x01\x02"] * len(req.inputs))

    n_big = max(2, s.options.oversize_bytes // 8 + 1)

    def oversize() -> Reply:
        req = pb.ModelInferRequest(model_name=s.target.model, model_version=s.target.version or "")
        t = req.inputs.add(name=ex.inputs[0]["name"], datatype="FP64", shape=[n_big, 1])
        t.contents.fp64_contents.extend([0.5] * n_big)
        return s.grpc(INFER, req.SerializeToString())

    return [
        ("nan", bent(lambda r: as_fp64(r, [float("nan")]))),
        ("inf", bent(lambda r: as_fp64(r, [float("inf")]))),
        ("huge_float", bent(lambda r: as_fp64(r, [1.7976931348623157e308]))),
        ("int_overflow", bent(int_overflow)),
        ("wrong_dtype", bent(wrong_dtype)),
        ("bad_datatype", bent(lambda r: setattr(r.inputs[0], "datatype", "FP99"))),
        ("wrong_shape", bent(wrong_shape)),
        ("missing_inputs", bent(lambda r: r.ClearField("inputs"))),
        ("missing_data", bent(lambda r: r.inputs[0].ClearField("contents"))),
        ("extra_input", bent(extra_input)),
        ("raw_mismatch", bent(raw_mismatch)),
        ("oversize", oversize),
        ("malformed_protobuf", lambda: s.grpc(INFER, b"\x0a\xff\xff\xff\x0f" + b"\x00" * 8)),
    ]
