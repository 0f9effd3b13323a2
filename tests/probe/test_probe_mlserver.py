"""An honest report on a real third-party OIP v2 server: Seldon MLServer 1.7 with sklearn models, on loopback."""

from __future__ import annotations

import pytest

from mlwarden.probe.runner import run_probe
from tests.probe.helpers import INPUT_VERDICTS, assert_bounded, fast, rules

MUST = {  # what MLServer's defaults are: no TLS, no auth, no quota, scores to whoever asks
    "endpoint.transport.plaintext": "high",
    "endpoint.access.inference_open": "high",
    "endpoint.access.metadata_open": "medium",
    "endpoint.access.other_models": "high",
    "endpoint.quotas.no_rate_limit": "high",
    "endpoint.disclosure.probabilities": "medium",
}


@pytest.mark.parametrize("proto", ["rest", "grpc"])
def test_mlserver_honest_report(mlserver, proto: str) -> None:
    url = mlserver.rest_url("lr_matrix") if proto == "rest" else mlserver.grpc_url("lr_matrix")
    run = run_probe(url, fast())
    found = rules(run)
    print(proto, found, run.summary())
    for fam, res in run.families.items():
        print(fam, res.skipped, res.metrics)
    for rule, sev in MUST.items():
        assert found.get(rule) == sev, f"{rule}: {found.get(rule)}"
    # the other models of the fixture are the "other tenants"
    other = next(i for fam in run.families.values() for i in fam.issues if i.rule == "endpoint.access.other_models")
    assert {"lr", "rf", "reg"} <= {m["model"] for m in other.evidence["models"]}
    # input handling: every case is reported with a verdict, whatever MLServer does with it
    cases = run.families["inputs"].metrics["cases"]
    assert len(cases) >= 13 and all(c["verdict"] in INPUT_VERDICTS for c in cases)
    for c in cases:
        if c["verdict"] != "rejected" and c["verdict"] != "inconclusive":
            assert f"endpoint.inputs.{c['case']}" in found
    assert run.families["disclosure"].metrics["probabilities"]["how"] == "when asked for output 'predict_proba'"
    assert_bounded(run)
