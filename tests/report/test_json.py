"""report.json against its contract (DESIGN.md, "Report JSON")."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import numpy as np
import pytest

from mlwarden.findings import CheckResult, Finding, Location, Report, Severity
from mlwarden.report.json import SCHEMA, JsonFormat

CHECK_KEYS = {"id", "status", "duration_s", "metrics", "message"}
FINDING_KEYS = {"id", "check", "severity", "title", "description", "evidence", "location", "references",
                "remediation"}
LOCATION_KEYS = {"artifact", "column", "rows", "member", "line"}


def _audit(workdir) -> Report:
    from mlwarden.audit import run_audit
    from mlwarden.demo import build_demo
    from mlwarden.spec import load_spec

    return run_audit(load_spec(build_demo(workdir)))


def render(report: Report) -> dict:
    text = JsonFormat().render(report)
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_top_level_contract(demo_report):
    doc = render(demo_report)
    assert doc["schema"] == SCHEMA == "mlwarden.report/1"
    assert doc["tool"] == {"name": "mlwarden", "version": demo_report.tool_version}
    assert doc["target"]["name"] == "loan-approval-demo"
    assert doc["target"]["spec"].endswith("mlwarden.yaml")
    started = datetime.fromisoformat(doc["started_at"])
    assert started.tzinfo is not None  # an instant, not a wall-clock reading
    assert isinstance(doc["duration_s"], float) and doc["duration_s"] >= 0
    assert doc["summary"]["counts"] == demo_report.counts()
    assert doc["summary"]["worst"] == "critical"


def test_checks_contract(demo_report):
    doc = render(demo_report)
    assert [c["id"] for c in doc["checks"]] == [c.id for c in demo_report.checks]
    assert doc["checks"]
    for c in doc["checks"]:
        assert set(c) == CHECK_KEYS
        assert c["status"] in {"pass", "fail", "error", "skipped"}
        assert isinstance(c["duration_s"], (int, float)) and c["duration_s"] >= 0
        assert isinstance(c["metrics"], dict) and isinstance(c["message"], str)
    by_id = {c["id"]: c for c in doc["checks"]}
    assert by_id["data.leakage.exact_duplicates"]["status"] == "fail"


def test_findings_contract(demo_report):
    doc = render(demo_report)
    assert len(doc["findings"]) == len(demo_report.findings) > 0
    check_ids = {c["id"] for c in doc["checks"]}
    for f in doc["findings"]:
        assert set(f) == FINDING_KEYS
        assert f["check"] in check_ids
        assert f["severity"] in {s.value for s in Severity}
        assert len(f["id"]) == 16 and int(f["id"], 16) >= 0
        assert f["title"] and f["description"] and f["remediation"]
        assert isinstance(f["evidence"], dict) and f["evidence"]
        assert set(f["location"]) <= LOCATION_KEYS
        assert f["references"] and all(isinstance(r, str) for r in f["references"])
    ranks = [Severity(f["severity"]).rank for f in doc["findings"]]
    assert ranks == sorted(ranks, reverse=True)  # worst first
    leak = next(f for f in doc["findings"] if f["check"] == "data.leakage.exact_duplicates")
    assert leak["location"]["artifact"] == "data/test.parquet" and leak["location"]["rows"]


def test_finding_ids_stable_across_runs(demo_report, tmp_path):
    again = _audit(tmp_path / "again")
    first = sorted((f.check, f.title, f.id) for f in demo_report.findings)
    second = sorted((f.check, f.title, f.id) for f in again.findings)
    assert first == second and first
    assert len({fid for _, _, fid in first}) == len(first)  # and distinct


def test_numpy_values_serialize_as_plain_json(demo_report):
    metrics = {"share": np.float64(0.125), "rows": np.int64(7), "flag": np.bool_(True),
               "per_group": {"a": np.float32(0.5)}, "groups": ("x", "y")}
    finding = Finding(id="0" * 16, check="data.np.check", severity=Severity.MEDIUM, title="t", description="d",
                      remediation="r", evidence={"n": np.int32(3), "values": [np.float64(1.5)]},
                      location=Location(artifact="data/a.parquet", rows=(np.int64(1), np.int64(2))),
                      references=("OWASP-ML02",))
    report = dataclasses.replace(demo_report, checks=(
        CheckResult(id="data.np.check", title="np", status="fail", metrics=metrics, findings=(finding,)),))
    doc = render(report)
    m = doc["checks"][0]["metrics"]
    assert m == {"share": 0.125, "rows": 7, "flag": True, "per_group": {"a": 0.5}, "groups": ["x", "y"]}
    assert type(m["rows"]) is int and type(m["flag"]) is bool
    f = doc["findings"][0]
    assert f["evidence"] == {"n": 3, "values": [1.5]} and f["location"]["rows"] == [1, 2]


def _with_metrics(report: Report, metrics: dict) -> Report:
    return dataclasses.replace(report, checks=(
        CheckResult(id="data.np.check", title="np", status="pass", metrics=metrics),))


def test_numpy_arrays_serialize_as_lists(demo_report):
    doc = render(_with_metrics(demo_report, {"ids": np.arange(3), "matrix": np.eye(2)}))
    assert doc["checks"][0]["metrics"] == {"ids": [0, 1, 2], "matrix": [[1.0, 0.0], [0.0, 1.0]]}


def test_non_finite_floats_give_strict_json(demo_report):
    doc = render(_with_metrics(demo_report, {"ratio": float("nan"), "upper": np.float64("inf")}))
    assert doc["checks"][0]["metrics"] == {"ratio": None, "upper": None}
