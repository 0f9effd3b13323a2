"""The guard over REST: authentication, output policies, input schema, quotas, metrics, health."""

from __future__ import annotations

import concurrent.futures as cf

import httpx
import pytest

from tests.guard.conftest import FEATURES, Guard, body, row


def post(g: Guard, key: str | None, doc: object, model: str = "loan", **kw: object) -> httpx.Response:
    headers = {"authorization": f"Bearer {g.keys[key]}"} if key else {}
    return httpx.post(f"{g.rest}/v2/models/{model}/infer", json=doc, headers=headers, timeout=10, trust_env=False, **kw)


def test_health_is_open_and_everything_else_needs_a_key(guard: Guard) -> None:
    assert httpx.get(f"{guard.rest}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{guard.rest}/v2/health/ready").json() == {"ready": True}
    for path in ("/v2", "/v2/models/loan", "/v2/models/loan/ready", "/metrics"):
        r = httpx.get(guard.rest + path)
        assert r.status_code == 401, path
        assert r.json() == {"error": "missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key')"}
    assert "server" not in httpx.get(f"{guard.rest}/v2/health/live").headers


def test_no_key_wrong_key_and_key_for_another_model(guard: Guard) -> None:
    assert post(guard, None, body([row()])).status_code == 401
    bad = guard.keys["full"][:-4] + "AAAA"
    r = httpx.post(f"{guard.rest}/v2/models/loan/infer", json=body([row()]), headers={"authorization": f"Bearer {bad}"})
    assert (r.status_code, r.json()) == (401, {"error": "invalid API key"})
    r = httpx.post(f"{guard.rest}/v2/models/loan/infer", json=body([row()]), headers={"x-api-key": "mlw_nothex_xx"})
    assert (r.status_code, r.json()) == (401, {"error": "invalid API key"})
    r = post(guard, "other", body([row()]))
    assert (r.status_code, r.json()) == (403, {"error": "API key 'other' may not query model 'loan'"})
    assert httpx.get(f"{guard.rest}/v2/models/loan", headers={"x-api-key": guard.keys["other"]}).status_code == 403
    r = post(guard, "full", body([row()]), model="nope")
    assert (r.status_code, r.json()) == (404, {"error": "unknown model 'nope'"})


def test_versioned_infer_route_and_wrong_method(guard: Guard) -> None:
    r = post(guard, "full", body([row()]), model="loan/versions/1")
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    r = post(guard, "full", body([row()]), model="loan/versions/7")
    assert (r.status_code, r.json()) == (404, {"error": "model 'loan' has no version '7' (it serves version 1)"})
    r = httpx.get(f"{guard.rest}/v2/models/loan/infer", headers={"x-api-key": guard.keys["full"]})
    assert (r.status_code, r.json()) == (405, {"error": "method not allowed"})


def test_answers_echo_the_id_and_carry_labels_and_rounded_scores(guard: Guard) -> None:
    r = post(guard, "full", body([row(), row(amount=390, income=5.0)], id="req-7"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == "req-7" and doc["model_name"] == "loan"
    out = {o["name"]: o for o in doc["outputs"]}
    assert set(out) == {"predict", "predict_proba"}
    assert out["predict"]["shape"] == [2] and set(out["predict"]["data"]) <= {0, 1}
    assert out["predict_proba"]["shape"] == [2, 2]
    assert all(round(p, 2) == p for p in out["predict_proba"]["data"])
    exact = {o["name"]: o for o in post(guard, "exact", body([row()])).json()["outputs"]}
    assert any(round(p, 2) != p for p in exact["predict_proba"]["data"])  # the forest's votes have more digits


def test_output_policies(guard: Guard) -> None:
    lab = post(guard, "label", body([row()])).json()["outputs"]
    assert [o["name"] for o in lab] == ["predict"]
    r = post(guard, "label", body([row()], outputs=[{"name": "predict_proba"}]))
    assert (r.status_code, r.json()) == (403, {"error": "API key 'label' may not read output 'predict_proba' "
                                                        "(its output policy is 'label')"})
    top = {o["name"]: o for o in post(guard, "topk", body([row(), row(amount=30)])).json()["outputs"]}
    assert set(top) == {"predict", "topk_labels", "topk_scores"}
    assert top["topk_labels"]["shape"] == [2, 1] and top["topk_labels"]["data"] == top["predict"]["data"]
    assert all(0.5 <= s <= 1 and round(s, 1) == s for s in top["topk_scores"]["data"])
    meta = httpx.get(f"{guard.rest}/v2/models/loan", headers={"x-api-key": guard.keys["label"]}).json()
    assert [o["name"] for o in meta["outputs"]] == ["predict"]
    assert [i["name"] for i in meta["inputs"]] == FEATURES


BAD = [
    (body([row(amount=5000)]), "input 'amount' row 0: 5000 is above the maximum 1000"),
    (body([row(), row(amount=-1)]), "input 'amount' row 1: -1 is below the minimum 0"),
    (body([row(amount=12.5)]), "input 'amount' row 0: 12.5 is not a whole number"),
    (body([row(income="lots")]), "input 'income' row 0: 'lots' is not a number"),
    (body([row(region="mars")]), ("input 'region' row 0: 'mars' is not one of the allowed values: "
                                 "east, north, south, west")),
    (body([row(home_own=1, home_rent=1)]), ("row 0: one-hot group 'home' must have exactly one of home_own, "
                                           "home_rent set to 1 (has 2)")),
    (body([row(open_acc=20, total_acc=5)]), "row 0 violates the constraint 'open_acc <= total_acc'"),
    ({"inputs": body([row()])["inputs"][:-1]}, "missing input(s): total_acc"),
    ({"inputs": body([row()])["inputs"] + [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}]},
     "unknown input 'x'; the model reads: " + ", ".join(FEATURES)),
    ({"inputs": [{**body([row()])["inputs"][0], "shape": [2, 1]}] + body([row()])["inputs"][1:]},
     "input 'amount': shape [2, 1] needs 2 values, got 1"),
    ({"inputs": [{**body([row()])["inputs"][0], "datatype": "FP128"}] + body([row()])["inputs"][1:]},
     "input 'amount': unknown datatype 'FP128' (use FP64, FP32, INT64, BOOL, BYTES…)"),
    ({"inputs": []}, "the request needs a non-empty 'inputs' list"),
    ({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 7], "data": [[120, 55.5, 0, 1, 0, 3, 10]]}]},
     "input 'region' row 0: 0 is not one of the allowed values: east, north, south, west"),
    ({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 6], "data": [1, 2, 3, 4, 5, 6]}]},
     "input 'input-0': shape [1, 6]; a single matrix input must be [n, 7] with the features in this order: "
     + ", ".join(FEATURES)),
    ([1, 2], "the request body must be a JSON object with an 'inputs' list"),
]


@pytest.mark.parametrize("doc,message", BAD)
def test_schema_rejections_say_exactly_what_is_wrong(guard: Guard, doc: object, message: str) -> None:
    r = post(guard, "full", doc)
    assert (r.status_code, r.json()) == (400, {"error": message})


def test_malformed_bodies_nan_and_size_limits(guard: Guard) -> None:
    h = {"authorization": f"Bearer {guard.keys['full']}", "content-type": "application/json"}
    url = f"{guard.rest}/v2/models/loan/infer"
    text = httpx.Request("POST", url, json=body([row()])).content.decode().replace("55.5", "NaN")
    r = httpx.post(url, content=text, headers=h)
    assert (r.status_code, r.json()) == (400, {"error": "NaN is not a valid JSON number; send finite numbers only"})
    r = httpx.post(url, content=b"{\"inputs\": [", headers=h)
    assert r.status_code == 400 and r.json()["error"].startswith("the request body is not valid JSON")
    r = httpx.post(url, content=b"[" * 100_000 + b"]" * 100_000, headers=h)
    assert r.status_code == 400
    r = httpx.post(url, content=b" " * (5 << 20), headers=h)
    assert (r.status_code, r.json()) == (413, {"error": "the request body of 5,242,880 bytes exceeds the "
                                                        "4,194,304-byte limit"})
    r = post(guard, "full", body([row()] * 1001))
    assert (r.status_code, r.json()) == (413, {"error": "the request has 1001 rows; at most 1000 are accepted "
                                                        "per request"})


def test_daily_budget_is_exact_under_concurrency(guard: Guard) -> None:
    with httpx.Client(trust_env=False, timeout=30, limits=httpx.Limits(max_connections=50)) as c:
        def one(_: int) -> httpx.Response:
            return c.post(f"{guard.rest}/v2/models/loan/infer", json=body([row()]),
                          headers={"authorization": f"Bearer {guard.keys['budget20']}"})

        with cf.ThreadPoolExecutor(50) as pool:
            codes = [r.status_code for r in pool.map(one, range(50))]
        r = one(0)
    assert codes.count(200) == 20 and codes.count(429) == 30
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"].startswith("daily budget of 20 rows for API key 'budget20' is spent (20 used, 1 asked)")


def test_rate_limit_answers_429_with_retry_after(guard: Guard) -> None:
    codes = [post(guard, "slow", body([row()])) for _ in range(6)]
    assert [r.status_code for r in codes[:3]] == [200, 200, 200]  # the burst
    refused = [r for r in codes[3:] if r.status_code == 429]
    assert refused, [r.status_code for r in codes]
    assert int(refused[0].headers["retry-after"]) in (1, 2)
    assert "rate limit of 0.5 requests/s (burst 3) exceeded for API key 'slow'" in refused[0].json()["error"]


def test_metrics_in_prometheus_text_format(guard: Guard) -> None:
    post(guard, "full", body([row()]))
    assert httpx.get(f"{guard.rest}/metrics", headers={"x-api-key": guard.keys["label"]}).status_code == 403
    r = httpx.get(f"{guard.rest}/metrics", headers={"x-api-key": guard.keys["full"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = r.text.splitlines()
    assert "# TYPE mlwarden_guard_requests_total counter" in lines
    ok = [ln for ln in lines if ln.startswith('mlwarden_guard_requests_total{protocol="rest",status="200"}')]
    assert ok and float(ok[0].split()[-1]) >= 1
    buckets = [ln for ln in lines if ln.startswith('mlwarden_guard_request_seconds_bucket{protocol="rest"')]
    counts = [float(ln.split()[-1]) for ln in buckets]
    assert counts == sorted(counts) and 'le="+Inf"' in buckets[-1]
    total = [ln for ln in lines if ln.startswith('mlwarden_guard_request_seconds_count{protocol="rest"}')]
    assert float(total[0].split()[-1]) == counts[-1]
    value = {ln.split()[0]: float(ln.split()[1]) for ln in lines if ln and not ln.startswith("#")}
    assert "# TYPE mlwarden_guard_audit_commits_total counter" in lines
    assert 1 <= value["mlwarden_guard_audit_commits_total"] <= value["mlwarden_guard_audit_entries_total"]
