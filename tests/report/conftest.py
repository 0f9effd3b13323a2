"""Fixtures for the report tests: a hostile report whose every text field carries markup."""

from __future__ import annotations

import pytest

from mlwarden.findings import CheckResult, Finding, Location, Report, Severity, Target
from mlwarden.registry import Chart

XSS = "<script>alert(1)</script>"
ATTR = '"><img src=x onerror=alert(2)>'


@pytest.fixture
def hostile_report() -> Report:
    """User-derived text everywhere the HTML shows it: titles, evidence, metric keys, paths."""
    finding = Finding(
        id="badc0ffee0000001", check="data.hostile", severity=Severity.CRITICAL,
        title=f"column {XSS} leaks", description=f"the column {ATTR} is **bold** and `{XSS}`",
        remediation=f"drop {XSS}", evidence={XSS: ATTR, "values": [XSS, ATTR], "nested": {ATTR: XSS}},
        location=Location(artifact=f"data/{ATTR}.parquet", column=XSS, rows=(XSS, 1)),
        references=("OWASP-ML02", XSS),
    )
    checks = (
        CheckResult(id="data.hostile", title=f"Hostile {XSS}", status="fail", duration_s=0.5,
                    metrics={XSS: 1, "cols": {ATTR: [XSS]}}, findings=(finding,),
                    charts=(Chart(title=XSS, labels=(XSS, ATTR), values=(1.0, 2.0), unit=XSS),)),
        CheckResult(id="model.broken", title="Broken check", status="error", message=f"ValueError: {XSS}"),
        CheckResult(id="endpoint.skip", title="Skipped check", status="skipped", message=f"needs {XSS}"),
    )
    return Report(
        tool_version="0.0.0-test", target=Target(name=f"target {XSS}", spec=f"/tmp/{ATTR}/mlwarden.yaml"),
        started_at="2026-01-01T00:00:00+00:00", duration_s=1.25, checks=checks, engine="local",
        stages={"data": ["data.hostile"], "splits": [], "training": ["model.broken"], "serving": [], "feedback": []},
        docs={"data.hostile": f"Finds {XSS}.\n\n**Why** it matters: `{ATTR}`."},
    )
