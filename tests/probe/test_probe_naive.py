"""Every planted weakness of the naive OIP v2 server (REST plain and TLS, gRPC) is found, by rule id."""

from __future__ import annotations

import pytest

from mlwarden.probe.runner import run_probe
from tests.probe.helpers import assert_bounded, fast, rules

REST_CASES = ["nan", "inf", "huge_float", "int_overflow", "wrong_dtype", "bad_datatype", "wrong_shape",
              "missing_inputs", "missing_data", "extra_field", "extra_input", "oversize", "deep_json", "invalid_json"]
GRPC_CASES = ["nan", "inf", "huge_float", "int_overflow", "wrong_dtype", "bad_datatype", "wrong_shape",
              "missing_inputs", "missing_data", "extra_input", "raw_mismatch", "oversize", "malformed_protobuf"]
COMMON = {
    "endpoint.transport.plaintext": "high",
    "endpoint.access.inference_open": "high",
    "endpoint.access.metadata_open": "medium",
    "endpoint.access.admin_open": "critical",
    "endpoint.access.other_models": "high",
    "endpoint.disclosure.stack_trace": "high",
    "endpoint.disclosure.banner": "low",
    "endpoint.disclosure.probabilities": "medium",
    "endpoint.disclosure.training_metadata": "medium",
    "endpoint.latency.amplification": "high",
    "endpoint.quotas.no_rate_limit": "high",
}


@pytest.fixture(scope="module")
def rest_run(naive):
    return run_probe(naive.http, fast(key="a-key-sent-in-clear"))


@pytest.fixture(scope="module")
def grpc_run(naive):
    return run_probe(naive.grpc, fast())


def test_rest_every_planted_weakness(rest_run) -> None:
    found = rules(rest_run)
    expected = {**COMMON, "endpoint.access.plaintext_credentials": "high",
                "endpoint.disclosure.cors_credentials": "high"}
    for rule, sev in expected.items():
        assert found.get(rule) == sev, f"{rule}: {found.get(rule)}"
    for case in REST_CASES:
        assert f"endpoint.inputs.{case}" in found, case
    assert_bounded(rest_run)


def test_rest_evidence_is_specific(rest_run) -> None:
    access = rest_run.families["access"]
    other = next(i for i in access.issues if i.rule == "endpoint.access.other_models")
    assert {m["model"]: m["found_by"] for m in other.evidence["models"]} == {
        "tenant-b-fraud": "repository index", "loan-staging": "name guess"}
    admin = next(i for i in access.issues if i.rule == "endpoint.access.admin_open")
    assert any(r.endswith("/unload") for r in admin.evidence["routes"]) and admin.evidence["model_control"]
    assert admin.title == "Model-control routes answer without credentials"
    verdicts = {c["case"]: c["verdict"] for c in rest_run.families["inputs"].metrics["cases"]}
    assert verdicts["nan"] == "accepted" and verdicts["deep_json"] == "server_error"
    probs = rest_run.families["disclosure"].metrics["probabilities"]
    assert probs["output"] == "predict_proba" and probs["classes"] == 2 and probs["decimals"] > 2


def test_grpc_every_planted_weakness(grpc_run) -> None:
    found = rules(grpc_run)
    for rule, sev in {**COMMON, "endpoint.transport.grpc_reflection": "medium"}.items():
        assert found.get(rule) == sev, f"{rule}: {found.get(rule)}"
    for case in GRPC_CASES:
        assert f"endpoint.inputs.{case}" in found, case
    services = grpc_run.families["transport"].metrics["reflection_services"]
    assert "inference.GRPCInferenceService" in services
    assert_bounded(grpc_run)


def test_tls_weaknesses(naive) -> None:
    run = run_probe(naive.https, fast(), families=("transport",))
    found = rules(run)
    for rule in ("cert_untrusted", "cert_expired", "hostname_mismatch", "tls_legacy"):
        assert found.get(f"endpoint.transport.{rule}") == "high", rule
    assert "endpoint.transport.plaintext" not in found
    assert set(run.families["transport"].metrics["legacy_versions_accepted"]) == {"TLSv1", "TLSv1.1"}


def test_cors_wildcard_and_throttling_without_retry_after(naive) -> None:
    run = run_probe(naive.throttling, fast(), families=("disclosure", "quotas"))
    found = rules(run)
    assert found.get("endpoint.disclosure.cors_wildcard") == "low"
    assert "endpoint.disclosure.cors_credentials" not in found
    assert found.get("endpoint.quotas.no_retry_after") == "low"
    assert "endpoint.quotas.no_rate_limit" not in found
    assert run.families["quotas"].metrics["throttled_after"] is not None


def test_budget_is_a_hard_stop(naive) -> None:
    run = run_probe(naive.http, fast(max_requests=30))
    assert run.requests <= 30
    stopped = [n for n, f in run.families.items() if f.metrics["stopped_early"]]
    assert stopped, "a 30-request budget cannot cover every family"
    assert all("budget" in run.families[n].metrics["stop_reason"] for n in stopped)
