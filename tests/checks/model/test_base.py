"""The base of model checks: an attack that stops early never reads as a clean pass."""

from __future__ import annotations

from mlwarden.checks.model.base import ModelCheck
from mlwarden.findings import Severity
from mlwarden.registry import Outcome
from mlwarden.spec import parse_spec


class _Attack(ModelCheck):
    """A stand-in attack (not registered) whose outcome the test chooses."""

    id = "model.test.partial"
    title = "t"
    outcome: Outcome

    def run(self, ctx):
        return self.outcome


def _run(tmp_path, outcome: Outcome) -> Outcome:
    spec = parse_spec("name: t\ndata: {train: x.parquet}\nmodel: {artifact: m.joblib}\n", tmp_path / "s.yaml")
    check = _Attack(spec, None)
    check.outcome = outcome
    return check.run(None)


def test_stopped_early_without_findings_is_medium(tmp_path) -> None:
    metrics = {"stopped_early": True, "stop_reason": "time limit", "queries_used": 5, "query_budget": 9,
               "seconds": 20.1, "time_limit_s": 20}
    out = _run(tmp_path, Outcome(metrics=dict(metrics)))
    [f] = out.findings
    assert f.severity is Severity.MEDIUM and "stopped early (time limit)" in f.title
    assert "attacks.time_limit_s" in f.remediation


def test_stopped_early_beside_real_findings_is_low_and_complete_runs_are_untouched(tmp_path) -> None:
    spec = parse_spec("name: t\ndata: {train: x.parquet}\nmodel: {artifact: m.joblib}\n", tmp_path / "s.yaml")
    real = _Attack(spec, None).finding(key=("x",), severity=Severity.HIGH, title="t", description="d", remediation="r")
    out = _run(tmp_path, Outcome(findings=[real], metrics={"stopped_early": True, "stop_reason": "query budget"}))
    assert [f.severity for f in out.findings] == [Severity.HIGH, Severity.LOW]
    assert _run(tmp_path, Outcome(metrics={"stopped_early": False})).findings == []
