"""`mlwarden probe` (probe_command) and the endpoint.* audit checks, end to end on loopback servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sarif_kit.validate import validation_errors

from mlwarden.cli_probe import probe_command
from mlwarden.errors import MlwardenError, SourceError
from tests.probe.conftest import free_port


def test_json_report_states_budget_and_fails_on_high(naive, tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    code = probe_command(naive.http, max_requests=120, rate=100, format="json", out=out, fail_on="high",
                         timeout_s=5)
    assert code == 1
    doc = json.loads(out.read_text())
    assert doc["schema"] == "mlwarden.report/1"
    assert doc["probe"]["budget"] == 120 and 0 < doc["probe"]["requests"] <= 120 and doc["probe"]["seconds"] > 0
    assert {c["id"] for c in doc["checks"]} == {"endpoint.transport", "endpoint.access", "endpoint.quotas",
                                                "endpoint.inputs", "endpoint.disclosure", "endpoint.latency"}
    for c in doc["checks"]:
        assert {"requests", "budget", "seconds"} <= set(c["metrics"])
    rules = {f["evidence"]["rule"] for f in doc["findings"]}
    assert {"endpoint.transport.plaintext", "endpoint.access.admin_open"} <= rules
    assert all(f["location"]["artifact"] == naive.http for f in doc["findings"])


def test_sarif_is_schema_valid(naive, tmp_path: Path) -> None:
    out = tmp_path / "probe.sarif"
    assert probe_command(naive.grpc, max_requests=120, rate=100, format="sarif", out=out, fail_on="none",
                         timeout_s=5) == 0
    log = json.loads(out.read_text())
    assert validation_errors(log) == []
    assert any(r["ruleId"] == "endpoint.transport" for r in log["runs"][0]["results"])


def test_text_output_and_hardened_passes(hardened, capsys: pytest.CaptureFixture[str]) -> None:
    code = probe_command(hardened.https, key=hardened.key, ca=hardened.ca, rate=100, fail_on="medium", timeout_s=5)
    text = capsys.readouterr()
    assert code == 0
    assert "requests of a budget of 200" in text.out and "endpoint.quotas" in text.out
    assert "mlwarden probe:" in text.err


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"url": "http://127.0.0.1:1/loan"}, "must be /v2/models/NAME"),
    ({"url": "http://127.0.0.1:{port}/v2/models/m"}, "cannot connect (connection refused)"),
    ({"url": "http://127.0.0.1:1/v2/models/m", "max_requests": 5}, "--max-requests must be at least 20"),
    ({"url": "http://127.0.0.1:1/v2/models/m", "rate": 0}, "--rate must be between"),
    ({"url": "http://127.0.0.1:1/v2/models/m", "format": "html"}, "unknown format 'html'"),
    ({"url": "http://127.0.0.1:1/v2/models/m", "fail_on": "severe"}, "--fail-on: unknown severity"),
    ({"url": "http://127.0.0.1:1/v2/models/m", "example": Path("/nonexistent/example.json")},
     "cannot read the example request"),
])
def test_bad_input_is_one_clear_line(kwargs: dict, message: str) -> None:
    kwargs = {**kwargs, "url": kwargs["url"].format(port=free_port())}
    with pytest.raises((MlwardenError, SourceError)) as e:
        probe_command(**kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_audit_runs_the_endpoint_checks(naive, make_spec) -> None:
    import pandas as pd

    import mlwarden.checks.endpoint.probes  # noqa: F401 — registers the checks (the catalog entry is the lead's)
    from mlwarden.audit import run_audit
    from mlwarden.spec import load_spec

    spec_path = make_spec(f"name: probe-audit\ndata:\n  train: train.csv\nmodel:\n  endpoint: {naive.http}\n")
    pd.DataFrame({"a": [1, 2, 3]}).to_csv(spec_path.parent / "train.csv", index=False)
    report = run_audit(load_spec(spec_path), only=["endpoint.*"])
    by_id = {c.id: c for c in report.checks}
    for cid in ("endpoint.transport", "endpoint.access", "endpoint.quotas", "endpoint.inputs",
                "endpoint.disclosure", "endpoint.latency"):
        assert by_id[cid].status == "fail", (cid, by_id[cid].message)
        assert by_id[cid].metrics["budget"] == 200
    assert sum(c.metrics["requests"] for c in by_id.values()) <= 200
