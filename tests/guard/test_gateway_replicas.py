"""Two guard replicas sharing one real Redis (``--state redis://…``), as behind a load balancer.

Both are real ``python -m mlwarden.guard`` processes on loopback. One key has a daily budget of
``N`` rows: requests sent concurrently to both replicas, over REST and gRPC, are answered exactly
``N`` times in all, every other one refused 429/RESOURCE_EXHAUSTED with Retry-After; a key's
token bucket (burst 5) lets 5 requests through the pair, not 5 each. And an
attack detected on replica A (an evasion walk, blocked) is blocked on replica B for the same key,
because the detector's history and its verdicts live in the shared state.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest

from mlwarden.guard.keys import OutputPolicy, Quota, create_key
from mlwarden.sources.oip import oip_v2_pb2 as pb
from tests.guard.conftest import (
    DATATYPES,
    FEATURES,
    Guard,
    body,
    loans,
    row,
    start_guard,
)
from tests.guard.redis_fixture import redis_server  # noqa: F401 — fixture

N = 23
REQUESTS = 60


@pytest.fixture(scope="module")
def replicas(guard_pipeline: Path, redis_server: str, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    import redis

    redis_url = f"{redis_server}/1"  # a database of its own, emptied first; each test below uses its own key
    with redis.Redis.from_url(redis_url, socket_timeout=5) as r:
        r.flushdb()
    tmp_path = tmp_path_factory.mktemp("replicas")
    keys = tmp_path / "keys.json"
    made = {"burst5": create_key(keys, "burst5", output=OutputPolicy(mode="label"),
                                 quota=Quota(rate=0.001, burst=5, daily=100_000)),
            "budget": create_key(keys, "budget", output=OutputPolicy(mode="label"),
                                 quota=Quota(rate=1e6, burst=1_000_000, daily=N)),
            "bystander": create_key(keys, "bystander", output=OutputPolicy(mode="label"),
                                    quota=Quota(rate=1e6, burst=1_000_000, daily=100_000)),
            "walker": create_key(keys, "walker", output=OutputPolicy(mode="label"),
                                 quota=Quota(rate=1e6, burst=1_000_000, daily=100_000))}
    a = start_guard(guard_pipeline, keys, tmp_path / "a", "--state", redis_url)
    try:
        b = start_guard(guard_pipeline, keys, tmp_path / "b", "--state", redis_url)
    except BaseException:
        a.stop()
        raise
    a.keys = b.keys = made
    yield a, b
    for g in (a, b):
        assert g.stop() == 0


def _grpc_infer(g: Guard, key: str, r: dict) -> tuple[str, str | None]:
    req = pb.ModelInferRequest(model_name="loan")
    for f in FEATURES:
        t = req.inputs.add(name=f, datatype=DATATYPES[f], shape=[1, 1])
        if DATATYPES[f] == "BYTES":
            t.contents.bytes_contents.append(str(r[f]).encode())
        elif DATATYPES[f] == "FP64":
            t.contents.fp64_contents.append(float(r[f]))  # type: ignore[arg-type]
        else:
            t.contents.int64_contents.append(int(r[f]))  # type: ignore[call-overload]
    with grpc.insecure_channel(g.grpc) as ch:
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                              request_serializer=pb.ModelInferRequest.SerializeToString,
                              response_deserializer=pb.ModelInferResponse.FromString)
        try:
            call(req, metadata=(("x-api-key", key),), timeout=20)
            return "OK", None
        except grpc.RpcError as e:
            return e.code().name, dict(e.trailing_metadata() or ()).get("retry-after")


def test_daily_budget_is_exact_across_two_replicas(replicas: tuple[Guard, Guard]) -> None:
    a, b = replicas
    key = a.keys["budget"]
    # rows drawn like real applications: this test is about quotas, and the detector rightly blocks a walk
    traffic = loans(REQUESTS, 11)[FEATURES].to_dict("records")

    def send(i: int) -> tuple[str, str, str | None, str]:
        g = (a, b)[i % 2]
        r = traffic[i]
        if i % 3 == 2:
            code, retry = _grpc_infer(g, key, r)
            return ("grpc", code, retry, "")
        resp = httpx.post(f"{g.rest}/v2/models/loan/infer", json=body([r]), headers={"x-api-key": key},
                          timeout=20, trust_env=False)
        return ("rest", str(resp.status_code), resp.headers.get("retry-after"), resp.text)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(REQUESTS)))
    outcome = Counter(code for _, code, _, _ in results)
    assert outcome["200"] + outcome["OK"] == N, outcome
    assert outcome["429"] + outcome["RESOURCE_EXHAUSTED"] == REQUESTS - N, outcome
    for proto, code, retry, text in results:
        if code in ("429", "RESOURCE_EXHAUSTED"):
            assert retry is not None and int(retry) >= 1
            if proto == "rest":
                assert f"daily budget of {N} rows for API key 'budget' is spent" in text
    # both replicas served part of it (the load really was shared)
    served = Counter((a, b)[i % 2].rest for i, (_, code, _, _) in enumerate(results) if code in ("200", "OK"))
    assert len(served) == 2


def test_rate_limit_bucket_is_shared(replicas: tuple[Guard, Guard]) -> None:
    a, b = replicas
    traffic = loans(12, 12)[FEATURES].to_dict("records")
    codes = []
    for i, r in enumerate(traffic):  # alternately: each replica alone would let 5 through, together only 5 pass
        resp = httpx.post(f"{(a, b)[i % 2].rest}/v2/models/loan/infer", json=body([r]),
                          headers={"x-api-key": a.keys["burst5"]}, timeout=20, trust_env=False)
        codes.append(resp.status_code)
        if resp.status_code == 429:
            assert int(resp.headers["retry-after"]) >= 1
    assert codes == [200] * 5 + [429] * 7


def test_a_detection_on_one_replica_blocks_on_the_other(replicas: tuple[Guard, Guard]) -> None:
    a, b = replicas
    key = a.keys["walker"]
    with httpx.Client(trust_env=False, timeout=20, headers={"x-api-key": key}) as c:
        # an evasion walk on replica A: many near-identical queries, one feature nudged each time
        statuses = []
        for i in range(60):
            r = c.post(f"{a.rest}/v2/models/loan/infer", json=body([row(amount=200 + i % 3, income=55.5)]))
            statuses.append(r.status_code)
            if r.status_code == 403:
                assert "is blocked: its queries look like an attack" in r.json()["error"]
                break
        assert statuses[-1] == 403 and statuses[0] == 200, statuses
        # replica B has never seen this key's queries itself; it blocks an ordinary one all the same
        r = c.post(f"{b.rest}/v2/models/loan/infer", json=body([row(amount=600, income=80.0, region="west")]))
        assert r.status_code == 403 and "is blocked" in r.json()["error"]
        code, _ = _grpc_infer(b, key, row(amount=700, income=90.0, region="east"))
        assert code == "PERMISSION_DENIED"
    # another key is untouched on either replica
    other = httpx.post(f"{b.rest}/v2/models/loan/infer", json=body([row(amount=50)]),
                       headers={"x-api-key": a.keys["bystander"]}, timeout=20, trust_env=False)
    assert other.status_code == 200
