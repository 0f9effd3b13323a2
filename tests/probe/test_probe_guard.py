"""`mlwarden probe` against the real `mlwarden guard`: what the guard is built to stop, the probe must not find.

The guard runs as a user runs it (``python -m mlwarden.guard`` in its own process, TLS from a test
CA, a key made with ``mlwarden guard keys create``: labels only, 5 requests/s, a small daily
budget, the attack detector on) and the probe runs as a user runs it (``python -m mlwarden probe``
with ``--format json``, the key, the CA and a valid example body, since the guard's schema refuses
the probe's neutral values). Over REST and gRPC: nothing at medium or above, and every low/info
finding is one we can name and justify. Without a key every route is 401 and no access rule fires.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.guard.conftest import ROOT, Guard, body, guard_pipeline, row, start_guard  # noqa: F401 — fixture
from tests.probe import certs

SEVERE = {"critical", "high", "medium"}
RATE, DAILY = 5, 2000
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@dataclass
class Guarded:
    guard: Guard
    ca: Path
    keys: dict[str, str]
    example: Path

    @property
    def rest_url(self) -> str:
        return f"{self.guard.rest}/v2/models/loan"

    @property
    def grpc_url(self) -> str:
        return f"grpcs://{self.guard.grpc}/loan"


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def guarded(guard_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:  # noqa: F811
    work = tmp_path_factory.mktemp("probe-guard")
    ca, cert, key = certs.good_chain(work)
    keys = work / "keys.json"
    api_keys = {}
    for proto in ("rest", "grpc", "blocked"):  # one key each: the detector keeps a history per key
        made = _cli("guard", "keys", "create", "--keys", str(keys), "--name", f"prober-{proto}", "--output", "label",
                    "--rate", str(RATE), "--daily", str(DAILY))
        assert made.returncode == 0, made.stderr
        api_keys[proto] = made.stdout.strip()
        assert api_keys[proto].startswith("mlw_") and api_keys[proto] not in keys.read_text()  # stored hashed
    example = work / "example.json"
    example.write_text(json.dumps(body([row()])), encoding="utf-8")
    g = start_guard(guard_pipeline, keys, work / "run", "--tls-cert", str(cert), "--tls-key", str(key),
                    scheme="https", verify=ssl.create_default_context(cafile=str(ca)))
    try:
        yield Guarded(g, ca, api_keys, example)
    finally:
        g.stop()


def _probe(url: str, *args: str) -> tuple[int, dict]:
    r = _cli("probe", url, "--format", "json", "--rate", "20", "--fail-on", "medium", *args)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def _checks(doc: dict) -> dict[str, dict]:
    return {c["id"]: c for c in doc["checks"]}


@pytest.mark.parametrize("proto", ["rest", "grpc"])
def test_probe_finds_nothing_on_the_guard(guarded: Guarded, proto: str) -> None:
    url = guarded.rest_url if proto == "rest" else guarded.grpc_url
    code, doc = _probe(url, "--key", guarded.keys[proto], "--ca", str(guarded.ca), "--example", str(guarded.example))
    # not even low or info: the guard fixed what the probe once found (unknown top-level fields are refused)
    checks = _checks(doc)
    assert [(f["evidence"].get("rule"), f["severity"]) for f in doc["findings"]] == [], checks
    assert code == 0
    # and it found nothing because it looked: every family ran, with the key, and saw the model answer
    assert {c["status"] for c in checks.values()} == {"pass"}, {k: c["message"] for k, c in checks.items()}
    transport = checks["endpoint.transport"]["metrics"]
    assert transport["verified"] is True and transport["legacy_versions_accepted"] == []
    access = checks["endpoint.access"]["metrics"]
    assert access["inference_without_key"] in (401, "UNAUTHENTICATED") and access["admin_routes_open"] == []
    assert access["other_models_reachable"] == 0
    cases = checks["endpoint.inputs"]["metrics"]["cases"]
    assert len(cases) >= 13 and {c["verdict"] for c in cases} == {"rejected"}, cases
    disclosure = checks["endpoint.disclosure"]["metrics"]
    assert disclosure["probabilities"] == "not exposed" and disclosure["banners"] == {}
    assert disclosure["answers_with_stack_trace"] == 0
    assert checks["endpoint.latency"]["metrics"]["baseline_ms"] > 0
    quotas = checks["endpoint.quotas"]["metrics"]
    assert quotas["throttled_after"] is not None and quotas["route"] == "inference"
    assert doc["probe"]["requests"] <= doc["probe"]["budget"]


@pytest.mark.parametrize("proto", ["rest", "grpc"])
def test_probe_without_a_key_meets_only_401(guarded: Guarded, proto: str) -> None:
    url = guarded.rest_url if proto == "rest" else guarded.grpc_url
    code, doc = _probe(url, "--ca", str(guarded.ca), "--example", str(guarded.example))
    assert doc["findings"] == [] and code == 0
    checks = _checks(doc)
    denied = 401 if proto == "rest" else "UNAUTHENTICATED"
    access = checks["endpoint.access"]["metrics"]
    assert (access["inference_without_key"], access["metadata_without_key"]) == (denied, denied)
    assert access["admin_routes_open"] == [] and access["other_models_reachable"] == 0
    # every input case met the key check first; over gRPC only what grpcio refuses before any handler
    # (a message over the size cap, bytes that are not protobuf) is refused otherwise
    before_auth = {"oversize", "malformed_protobuf"} if proto == "grpc" else set()
    cases = checks["endpoint.inputs"]["metrics"]["cases"]
    assert {c["case"]: c["status"] for c in cases if c["case"] not in before_auth} == \
        {c["case"]: denied for c in cases if c["case"] not in before_auth}
    assert all(c["verdict"] == "rejected" for c in cases if c["case"] in before_auth)
    # the quota burst stops at the first refusal and says it could not judge (it once read 40 × 401 as "no limit")
    quotas = checks["endpoint.quotas"]
    assert quotas["status"] == "skipped" and "refused" in quotas["message"]
    assert quotas["metrics"]["statuses"] == {str(denied): 1}
    assert checks["endpoint.latency"]["status"] == "skipped"


def test_quota_rule_does_not_read_refusals_as_answers(hardened) -> None:
    """Pins the probe fix: a burst met by 401 is not 'no rate limit' (the hardened stand-in, probed keyless)."""
    from mlwarden.probe.runner import run_probe
    from tests.probe.helpers import fast, rules

    run = run_probe(hardened.https, fast(ca_file=str(hardened.ca)), families=("quotas",))
    assert rules(run) == {}
    q = run.families["quotas"]
    assert q.metrics["burst_sent"] == 1 and q.metrics["burst_served"] == 0 and "refused (401" in q.skipped


def test_guard_refuses_unknown_top_level_fields() -> None:
    """Pins the guard fix the probe's ``extra_field`` case asked for (feedback bodies may carry labels)."""
    from mlwarden.guard.errors import Invalid
    from mlwarden.guard.wire import from_json

    doc = {**body([row()]), "mlwarden_probe_extra": {"x": 1}}
    with pytest.raises(Invalid, match="unknown field 'mlwarden_probe_extra' in the request; OIP v2 allows id, "):
        from_json(doc, "loan", "")
    ok = {**body([row()]), "id": "q", "parameters": {}, "outputs": [{"name": "predict"}]}
    assert from_json(ok, "loan", "").id == "q"
    assert len(from_json({**body([row()]), "labels": [1]}, "", "", allow=frozenset({"labels"})).inputs) == 7


def test_probe_with_a_blocked_key_reports_nothing_false(guarded: Guarded) -> None:
    """A key the detector blocked (the probe's own repeated queries do that on a second run) still gets an honest report.

    This case found a real gap: only inference was rate-limited, so the quota burst, falling back to
    metadata, was served 40 times out of 40 — metadata and readiness (which reach the upstream in
    proxy mode) now cost a token of the key's rate limit like any other route.
    """
    import httpx

    ctx = ssl.create_default_context(cafile=str(guarded.ca))
    with httpx.Client(verify=ctx, trust_env=False, timeout=20, headers={"x-api-key": guarded.keys["blocked"]}) as c:
        for i in range(60):  # an evasion walk: near-identical rows until the detector blocks the key
            r = c.post(f"{guarded.rest_url}/infer", json=body([row(amount=300 + i % 2)]))
            if r.status_code == 403:
                break
            time.sleep(0.1)  # under the key's rate limit: the detector, not the quota, must stop it
        blocked = "API key 'prober-blocked' is blocked: its queries look like an attack"
        assert (r.status_code, r.json()["error"]) == (403, blocked)
    code, doc = _probe(guarded.rest_url, "--key", guarded.keys["blocked"], "--ca", str(guarded.ca),
                       "--example", str(guarded.example))
    checks = _checks(doc)
    assert doc["findings"] == [] and code == 0, checks
    assert "is blocked" in checks["endpoint.disclosure"]["metrics"]["probabilities"]
    assert checks["endpoint.latency"]["status"] == "skipped"
    quotas = checks["endpoint.quotas"]["metrics"]
    assert quotas["route"].startswith("metadata") and quotas["throttled_after"] is not None
    # input validation comes before the detector: every malformed case is still judged, and refused
    assert {c["verdict"] for c in checks["endpoint.inputs"]["metrics"]["cases"]} == {"rejected"}
