"""The guard's ``--upstream`` proxy in front of a real third-party server: Seldon MLServer (sklearn) on loopback.

MLServer's defaults are what the probe reports on it (tests/probe/test_probe_mlserver.py): no
auth, open repository load/unload, probability vectors to whoever asks. Behind the guard (TLS,
a label-only key): inference works with the key and answers what MLServer's model answers,
without it 401 on REST and UNAUTHENTICATED on gRPC, and ``mlwarden probe`` against the guard no
longer finds the open model-control routes or the probability vectors — nor anything else at
medium or above.
"""

from __future__ import annotations

import ssl

import grpc
import httpx
import numpy as np
import pytest

from mlwarden.guard.keys import OutputPolicy, Quota, create_key
from mlwarden.probe.runner import run_probe
from mlwarden.sources.oip import oip_v2_pb2 as pb
from tests.guard.conftest import start_guard
from tests.mlserver_fixture import FEATURES
from tests.probe import certs
from tests.probe.helpers import fast, rules

SPEC = """\
name: lr
data: {train: train.parquet, label: approved}
features:
  income: {type: float, min: 0}
  age: {type: int, min: 18, max: 100}
  debt: {type: float, min: 0}
  accounts: {type: int, min: 0, max: 50}
"""
DTYPES = {"income": "FP64", "age": "INT64", "debt": "FP64", "accounts": "INT64"}


def _body(rows: list[dict]) -> dict:
    return {"inputs": [{"name": f, "datatype": DTYPES[f], "shape": [len(rows), 1], "data": [r[f] for r in rows]}
                       for f in FEATURES]}


@pytest.fixture(scope="module")
def fronted(mlserver, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("upstream-mlserver")
    mlserver.data.iloc[:1000].to_parquet(work / "train.parquet", index=False)
    (work / "mlwarden.yaml").write_text(SPEC, encoding="utf-8")
    ca, cert, key = certs.good_chain(work)
    keys = work / "keys.json"
    made = {"label": create_key(keys, "label", output=OutputPolicy(mode="label"), quota=Quota(rate=5, burst=20)),
            "probe": create_key(keys, "probe", output=OutputPolicy(mode="label"), quota=Quota(rate=5, burst=20))}
    g = start_guard(work / "mlwarden.yaml", keys, work / "run", "--upstream", mlserver.rest_url("lr"),
                    "--tls-cert", str(cert), "--tls-key", str(key), scheme="https",
                    verify=ssl.create_default_context(cafile=str(ca)))
    g.keys = made
    try:
        yield g, ca, work
    finally:
        g.stop()


def test_inference_through_the_guard_needs_the_key_and_matches_mlserver(mlserver, fronted) -> None:
    g, ca, _ = fronted
    rows = mlserver.data[FEATURES].iloc[[3, 17, 250, 900]]
    want = mlserver.models["lr"].predict(rows)
    recs = [{k: (float(v) if DTYPES[k] == "FP64" else int(v)) for k, v in r.items()} for r in rows.to_dict("records")]
    ctx = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(verify=ctx, trust_env=False, timeout=30) as c:
        r = c.post(f"{g.rest}/v2/models/lr/infer", json=_body(recs), headers={"x-api-key": g.keys["label"]})
        assert r.status_code == 200, r.text
        outs = {o["name"]: o for o in r.json()["outputs"]}
        assert list(outs) == ["predict"]  # label only: MLServer's scores never leave the guard
        np.testing.assert_array_equal(np.asarray(outs["predict"]["data"]), want)
        r = c.post(f"{g.rest}/v2/models/lr/infer", json=_body(recs))
        assert (r.status_code, r.json()) == (401, {"error": "missing API key: send 'Authorization: Bearer <key>' "
                                                            "(or 'x-api-key')"})
        # asking for the scores by name is refused for this key, not passed upstream
        asked = {**_body(recs[:1]), "outputs": [{"name": "predict_proba"}]}
        assert c.post(f"{g.rest}/v2/models/lr/infer", json=asked,
                      headers={"x-api-key": g.keys["label"]}).status_code == 403
    creds = grpc.ssl_channel_credentials(ca.read_bytes())
    with grpc.secure_channel(g.grpc, creds) as ch:
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                              request_serializer=pb.ModelInferRequest.SerializeToString,
                              response_deserializer=pb.ModelInferResponse.FromString)
        req = pb.ModelInferRequest(model_name="lr")
        for f in FEATURES:
            t = req.inputs.add(name=f, datatype=DTYPES[f], shape=[1, 1])
            if DTYPES[f] == "FP64":
                t.contents.fp64_contents.append(recs[0][f])
            else:
                t.contents.int64_contents.append(recs[0][f])
        resp = call(req, metadata=(("x-api-key", g.keys["label"]),), timeout=30)
        assert [o.name for o in resp.outputs] == ["predict"]
        with pytest.raises(grpc.RpcError) as e:
            call(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_probe_no_longer_finds_mlserver_weaknesses_behind_the_guard(mlserver, fronted) -> None:
    g, ca, _ = fronted
    # MLServer decodes several input tensors as one DataFrame only when told so (content_type "pd")
    example = {**_body([{"income": 40000.0, "age": 40, "debt": 5000.0, "accounts": 3}]),
               "parameters": {"content_type": "pd"}}
    # a generous per-request timeout: MLServer shared by the whole suite answers slowly when the
    # machine is busy, and a timed-out inference reads as "probabilities not tested"
    plain = run_probe(mlserver.rest_url("lr"), fast(example=example, timeout_s=30.0), families=("access", "disclosure"))
    direct = rules(plain)
    # what MLServer alone shows (the contrast that makes the next assertions mean something)
    assert direct.get("endpoint.access.admin_open") == "critical"
    metrics = plain.families["disclosure"].metrics
    assert direct.get("endpoint.disclosure.probabilities") == "medium", (metrics["probabilities"],
                                                                         metrics["probability_outputs_tried"])
    run = run_probe(f"{g.rest}/v2/models/lr", fast(key=g.keys["probe"], ca_file=str(ca), example=example))
    found = rules(run)
    assert "endpoint.access.admin_open" not in found and "endpoint.disclosure.probabilities" not in found
    assert found == {}  # nothing else either, not even low: no banner, no input accepted, a rate limit met
    assert run.families["access"].metrics["admin_routes_open"] == []
    assert run.families["disclosure"].metrics["probabilities"] == "not exposed"
    assert run.families["access"].metrics["inference_without_key"] == 401
    assert run.families["transport"].metrics["verified"] is True
    assert {c["verdict"] for c in run.families["inputs"].metrics["cases"]} == {"rejected"}
