"""Fuzzing the guard's REST and gRPC inputs (hypothesis, bounded): no 5xx, no crash, no hang."""

from __future__ import annotations

import json

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwarden.sources.oip import oip_v2_pb2 as pb
from mlwarden.sources.oip import oip_v2_pb2_grpc as pb_grpc
from tests.guard.conftest import DATATYPES, FEATURES, Guard, body, row

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NAMES = st.sampled_from(FEATURES + ["", "x", "input-0", "a" * 300])
DTYPES = st.sampled_from(sorted(set(DATATYPES.values())) + ["BOOL", "FP32", "UINT8", "FP16", "BF16", "fp64", "?"])
SCALARS = (st.integers(-(2 ** 70), 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=20) | st.booleans()
           | st.none() | st.sampled_from(["north", "east", 0, 1, 1e308, -1e308, 2 ** 53 + 1]))
DATA = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=6), max_leaves=40)
SHAPES = st.lists(st.integers(-2, 2000), max_size=5) | st.just([1, 1]) | st.just([1]) | DATA
TENSOR = st.fixed_dictionaries({"name": NAMES, "datatype": DTYPES, "shape": SHAPES, "data": DATA},
                               optional={"parameters": st.dictionaries(st.text(max_size=5), SCALARS, max_size=3)})


def _mutate(doc: dict, i: int, field: str, value: object) -> dict:
    inputs = [dict(t) for t in doc["inputs"]]
    inputs[i % len(inputs)][field] = value
    return {**doc, "inputs": inputs}


BODIES = (st.fixed_dictionaries({"inputs": st.lists(TENSOR, max_size=9)},
                                optional={"id": SCALARS, "outputs": DATA, "parameters": DATA})
          | st.builds(_mutate, st.just(body([row(), row(region="west")])), st.integers(0, 6),
                      st.sampled_from(["name", "datatype", "shape", "data"]), DATA | SHAPES)
          | DATA)


@pytest.fixture(scope="module")
def client(guard: Guard):
    with httpx.Client(trust_env=False, timeout=10, headers={"x-api-key": guard.keys["fuzz"]}) as c:
        yield c


@SETTINGS
@given(doc=BODIES)
def test_rest_fuzz_never_5xx(guard: Guard, client: httpx.Client, doc: object) -> None:
    r = client.post(f"{guard.rest}/v2/models/loan/infer", content=json.dumps(doc).encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code < 500, (r.status_code, r.text)
    out = r.json()
    assert ("outputs" in out) if r.status_code == 200 else (set(out) == {"error"} and "Traceback" not in out["error"])


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_rest_fuzz_raw_bytes(guard: Guard, client: httpx.Client, raw: bytes) -> None:
    r = client.post(f"{guard.rest}/v2/models/loan/infer", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 413), (r.status_code, r.text)


@pytest.fixture(scope="module")
def channel(guard: Guard):
    ch = grpc.insecure_channel(guard.grpc, options=[("grpc.enable_http_proxy", 0)])
    yield ch
    ch.close()


OK_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.RESOURCE_EXHAUSTED}


@SETTINGS
@given(raw=st.binary(max_size=400) | st.builds(lambda r, cut: r[:cut], st.just(
    pb.ModelInferRequest(model_name="loan", inputs=[pb.ModelInferRequest.InferInputTensor(
        name="amount", datatype="INT64", shape=[1, 1])]).SerializeToString()), st.integers(0, 40)))
def test_grpc_fuzz_malformed_protobuf(guard: Guard, channel, raw: bytes) -> None:
    rpc = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        rpc(raw, metadata=(("x-api-key", guard.keys["fuzz"]),), timeout=10)
    except grpc.RpcError as e:
        assert e.code() in OK_CODES, (e.code(), e.details())


def _request(tensors: list[dict], raw: list[bytes], model: str) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model)
    for t in tensors:
        m = req.inputs.add(name=t["name"][:200], datatype=t["datatype"],
                           shape=[int(s) for s in t["shape"] if isinstance(s, int) and -2 ** 62 < s < 2 ** 62]
                           if isinstance(t["shape"], list) else [])
        vals = t["data"] if isinstance(t["data"], list) else [t["data"]]
        m.contents.int64_contents.extend([v for v in vals if isinstance(v, int) and not isinstance(v, bool)
                                          and -2 ** 63 <= v < 2 ** 63])
        m.contents.fp64_contents.extend([v for v in vals if isinstance(v, float)])
        m.contents.bytes_contents.extend([v.encode() for v in vals if isinstance(v, str)])
        m.contents.bool_contents.extend([v for v in vals if isinstance(v, bool)])
    req.raw_input_contents.extend(raw)
    return req


@SETTINGS
@given(tensors=st.lists(TENSOR, max_size=9), raw=st.lists(st.binary(max_size=64), max_size=3),
       model=st.sampled_from(["loan", "loan", "other", ""]))
def test_grpc_fuzz_structured(guard: Guard, channel, tensors: list[dict], raw: list[bytes], model: str) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    try:
        stub.ModelInfer(_request(tensors, raw, model), metadata=(("x-api-key", guard.keys["fuzz"]),), timeout=10)
    except grpc.RpcError as e:
        assert e.code() in OK_CODES, (e.code(), e.details())


def test_guard_survived_the_fuzzing(guard: Guard) -> None:
    assert guard.proc.poll() is None
    r = httpx.post(f"{guard.rest}/v2/models/loan/infer", json=body([row()]), headers={"x-api-key": guard.keys["fuzz"]})
    assert r.status_code == 200
