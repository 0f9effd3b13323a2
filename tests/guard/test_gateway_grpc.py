"""The guard over gRPC: the same refusals as REST with gRPC status codes, and answers equal to REST's."""

from __future__ import annotations

import grpc
import httpx
import numpy as np
import pytest

from mlwarden.sources.oip import oip_v2_pb2 as pb
from mlwarden.sources.oip import oip_v2_pb2_grpc as pb_grpc
from tests.guard.conftest import DATATYPES, FEATURES, Guard, body, row
from tests.guard.test_gateway_rest import BAD


@pytest.fixture(scope="module")
def stub(guard: Guard):
    ch = grpc.insecure_channel(guard.grpc, options=[("grpc.enable_http_proxy", 0)])
    yield pb_grpc.GRPCInferenceServiceStub(ch)
    ch.close()


def request(rows: list[dict[str, object]], *, model: str = "loan", id: str = "", outputs: tuple[str, ...] = ()) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model, id=id)
    for f in FEATURES:
        t = req.inputs.add(name=f, datatype=DATATYPES[f], shape=[len(rows), 1])
        vals = [r[f] for r in rows]
        if DATATYPES[f] == "BYTES":
            t.contents.bytes_contents.extend([str(v).encode() for v in vals])
        elif DATATYPES[f] == "FP64":
            t.contents.fp64_contents.extend([float(v) for v in vals])  # type: ignore[arg-type]
        else:
            t.contents.int64_contents.extend([int(v) for v in vals])  # type: ignore[call-overload]
    for o in outputs:
        req.outputs.add(name=o)
    return req


def call(stub, key: str | None, req: pb.ModelInferRequest, guard: Guard):
    md = (("authorization", f"Bearer {guard.keys[key]}"),) if key else ()
    return stub.ModelInfer(req, metadata=md, timeout=10)


def code_of(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


def test_health_open_and_auth_codes(guard: Guard, stub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
    assert code_of(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="loan"), timeout=5))[0] == \
        grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: call(stub, None, request([row()]), guard)) == (
        grpc.StatusCode.UNAUTHENTICATED, "missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key')")
    bad = (("x-api-key", guard.keys["full"][:-3] + "zzz"),)
    assert code_of(lambda: stub.ModelInfer(request([row()]), metadata=bad, timeout=5)) == (
        grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
    assert code_of(lambda: call(stub, "other", request([row()]), guard)) == (
        grpc.StatusCode.PERMISSION_DENIED, "API key 'other' may not query model 'loan'")
    assert code_of(lambda: call(stub, "full", request([row()], model="nope"), guard)) == (
        grpc.StatusCode.NOT_FOUND, "unknown model 'nope'")


def test_rest_and_grpc_give_the_same_answers(guard: Guard, stub) -> None:
    rng = np.random.default_rng(5)
    rows = [row(amount=int(a), income=float(i), region=r, open_acc=1, total_acc=int(t))
            for a, i, r, t in zip(rng.integers(0, 1000, 40), rng.gamma(4, 15, 40).round(2),
                                  rng.choice(["north", "south", "east", "west"], 40), rng.integers(1, 50, 40))]
    rest = httpx.post(f"{guard.rest}/v2/models/loan/infer", json=body(rows, id="p"),
                      headers={"x-api-key": guard.keys["parity"]}).json()
    g = call(stub, "parity", request(rows, id="p"), guard)
    assert g.id == rest["id"] == "p" and g.model_name == rest["model_name"]
    assert [o.name for o in g.outputs] == [o["name"] for o in rest["outputs"]] == ["predict", "predict_proba"]
    assert list(g.outputs[0].contents.int64_contents) == rest["outputs"][0]["data"]
    assert list(g.outputs[1].contents.fp64_contents) == rest["outputs"][1]["data"]
    assert list(g.outputs[1].shape) == rest["outputs"][1]["shape"] == [40, 2]
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="loan"), metadata=(("x-api-key", guard.keys["label"]),))
    assert [t.name for t in meta.inputs] == FEATURES and [t.name for t in meta.outputs] == ["predict"]


def _grpc_bad(doc: object) -> pb.ModelInferRequest | None:
    """The gRPC twin of a REST body from BAD, where protobuf can express it."""
    if not isinstance(doc, dict) or not doc.get("inputs"):
        return None
    req = pb.ModelInferRequest(model_name="loan")
    for t in doc["inputs"]:
        dt = t["datatype"]
        m = req.inputs.add(name=t["name"], datatype=dt, shape=t["shape"])
        vals = [x for v in t["data"] for x in (v if isinstance(v, list) else [v])]
        if any(isinstance(v, str) for v in vals) and dt != "BYTES":
            return None  # protobuf's typed fields cannot carry a string in a number field
        if dt == "BYTES":
            m.contents.bytes_contents.extend([str(v).encode() for v in vals])
        elif dt == "FP64":
            m.contents.fp64_contents.extend([float(v) for v in vals])
        elif dt == "INT64":
            if any(isinstance(v, float) and not v.is_integer() for v in vals):
                return None
            m.contents.int64_contents.extend([int(v) for v in vals])
    return req


@pytest.mark.parametrize("doc,message", [(d, m) for d, m in BAD if _grpc_bad(d) is not None])
def test_grpc_refuses_what_rest_refuses_with_the_same_message(guard: Guard, stub, doc: object, message: str) -> None:
    req = _grpc_bad(doc)
    code, details = code_of(lambda: call(stub, "full", req, guard))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_grpc_quota_is_resource_exhausted_with_retry_after(guard: Guard, stub) -> None:
    outcomes = []
    for _ in range(6):
        try:
            call(stub, "slow-grpc", request([row()]), guard)
            outcomes.append("ok")
        except grpc.RpcError as e:
            outcomes.append(e)
    refused = [e for e in outcomes if not isinstance(e, str)]
    assert refused, outcomes
    e = refused[0]
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "rate limit" in e.details()
    assert int(dict(e.trailing_metadata())["retry-after"]) >= 1


def test_grpc_output_policy_and_raw_contents(guard: Guard, stub) -> None:
    code, details = code_of(lambda: call(stub, "label", request([row()], outputs=("predict_proba",)), guard))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "may not read output 'predict_proba'" in details
    req = pb.ModelInferRequest(model_name="loan")
    # raw_input_contents replaces every input's typed contents (little-endian, per the protocol)
    for t in request([row(), row(amount=10)]).inputs:
        req.inputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        if t.datatype == "BYTES":
            raw = b"".join(len(b).to_bytes(4, "little") + b for b in t.contents.bytes_contents)
        elif t.datatype == "FP64":
            raw = np.asarray(t.contents.fp64_contents, "<f8").tobytes()
        else:
            raw = np.asarray(t.contents.int64_contents, "<i8").tobytes()
        req.raw_input_contents.append(raw)
    out = call(stub, "label", req, guard)
    assert [o.name for o in out.outputs] == ["predict"] and len(out.outputs[0].contents.int64_contents) == 2
