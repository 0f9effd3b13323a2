"""The ethics checklist: statuses from a report, Markdown, the CLI command and the HTML section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlwarden.checklist import build, load_report, render_markdown
from mlwarden.checklist_items import ITEMS, SECTIONS
from mlwarden.cli import main
from mlwarden.errors import MlwardenError
from mlwarden.findings import CheckResult, Finding, Location, Report, Severity, Target
from mlwarden.report.html import HtmlFormat
from mlwarden.report.json import JsonFormat


def _report() -> Report:
    def finding(check: str, sev: Severity, title: str) -> Finding:
        return Finding(id=f"{check}-{title}", check=check, severity=sev, title=title, description="d",
                       remediation="r", location=Location())

    checks = (
        CheckResult(id="fairness.proxies", title="Proxies", status="fail", metrics={"features": 58},
                    findings=(finding("fairness.proxies", Severity.HIGH, "white reveals race <b>x</b>"),
                              finding("fairness.proxies", Severity.MEDIUM, "married reveals sex"))),
        CheckResult(id="fairness.counterfactual", title="CF", status="pass", metrics={"model_features": 4}),
        CheckResult(id="fairness.representation", title="Rep", status="fail",
                    findings=(finding("fairness.representation", Severity.LOW, "x is missing more for b"),)),
        CheckResult(id="data.integrity.fingerprint", title="FP", status="pass", metrics={"subject_sha256": "ab"}),
        CheckResult(id="data.drift.columns", title="Drift", status="skipped", message="needs data.production in the spec"),
        CheckResult(id="data.privacy.pii", title="PII", status="error", message="ValueError: boom"),
        CheckResult(id="data.leakage.exact_duplicates", title="Dup", status="pass",
                    findings=(finding("data.leakage.exact_duplicates", Severity.INFO, "2 production rows"),)),
    )
    return Report(tool_version="0.1.0", target=Target(name="t", spec="/x/mlwarden.yaml"),
                  started_at="2026-01-01T00:00:00+00:00", duration_s=1.0, checks=checks,
                  stages={"data": ["fairness.proxies", "fairness.representation"]})


@pytest.fixture
def doc() -> dict:
    return json.loads(JsonFormat().render(_report()))


def test_items_cover_deons_five_sections() -> None:
    assert list(SECTIONS) == ["A", "B", "C", "D", "E"]
    ids = [i.id for i in ITEMS]
    assert ids[:4] == ["A.1", "A.2", "A.3", "A.4"] and "D.1" in ids and ids[-1] == "E.5" and len(ids) == 22


def test_status_per_item(doc: dict) -> None:
    views = {v.item.id: v for v in build(doc)}
    assert views["D.1"].status == "problem"
    assert [e.id for e in views["D.1"].evidence] == ["fairness.counterfactual", "fairness.proxies"]
    proxies = views["D.1"].evidence[1]
    assert proxies.counts == {"high": 1, "medium": 1} and proxies.top[0] == ("high", "white reveals race <b>x</b>")
    assert proxies.metrics == {"features": 58}
    assert views["C.5"].status == "checked"  # the fingerprint ran, no finding
    assert views["C.3"].status == "checked", "an info finding is not a problem"
    assert views["A.4"].status == "checked", "coverage item: group membership is recorded"
    assert views["A.2"].status == "problem"
    assert views["E.1"].status == "not_checked" and views["E.1"].needs == "data.production in the spec"
    assert views["E.1"].status_text == "not checked by this audit (needs data.production in the spec)"
    assert views["A.3"].status == "not_checked" and views["A.3"].needs == "data.privacy.pii to run without error"
    assert views["A.1"].needs == "a person: no automated check can answer this" and not views["A.1"].evidence
    assert views["D.2"].status == "checked"  # the counterfactual probe ran and found nothing


def test_markdown_has_sections_questions_and_inert_user_text(doc: dict) -> None:
    md = render_markdown(build(doc), doc)
    assert md.startswith("# Ethics checklist: t\n")
    for letter, name in SECTIONS.items():
        assert f"## {letter}. {name}\n" in md
    assert "### D.1 Proxy discrimination" in md and "- [ ] **Status:** evidence of a problem" in md
    assert "- [x] **Status:** evidence checked, nothing found" in md
    assert "**Question for a person.** Does the model rely on features" in md
    assert "<b>" not in md and "white reveals race &lt;b&gt;x&lt;/b&gt;" in md


def test_cli_checklist_from_a_report(tmp_path: Path, doc: dict, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "checklist.md"
    assert main(["checklist", "--report", str(report), "--out", str(out)]) == 0
    assert "### E.5 Unintended use" in out.read_text(encoding="utf-8")
    assert main(["checklist", "--report", str(report)]) == 0
    assert "## B. Data storage" in capsys.readouterr().out


def test_cli_checklist_bad_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "r.json"
    bad.write_text('{"checks": []}', encoding="utf-8")
    assert main(["checklist", "--report", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (f"mlwarden: error: {bad}: not an mlwarden report.json "
                                               "(no 'schema': 'mlwarden.report/1')")
    with pytest.raises(MlwardenError, match="no such report"):
        load_report(tmp_path / "missing.json")


def test_html_report_has_the_checklist_section() -> None:
    html = HtmlFormat().render(_report())
    assert '<section id="checklist"' in html and '<a href="#checklist">Checklist</a>' in html
    assert 'id="checklist-D.1"' in html and "evidence of a problem" in html
    assert '<a href="#check-fairness.proxies"><code>fairness.proxies</code></a>' in html
    assert "white reveals race &lt;b&gt;x&lt;/b&gt;" in html


def test_cli_checklist_runs_the_audit_without_a_report(demo_dir: Path, tmp_path: Path) -> None:
    import mlwarden.checks.fairness.base_rates  # noqa: F401
    import mlwarden.checks.fairness.proxies  # noqa: F401
    import mlwarden.checks.fairness.representation  # noqa: F401

    out = tmp_path / "c.md"
    assert main(["checklist", str(demo_dir / "mlwarden.yaml"), "--out", str(out)]) == 0
    md = out.read_text(encoding="utf-8")
    d1 = md.split("### D.1 Proxy discrimination")[1].split("###")[0]
    assert "evidence of a problem" in d1 and "black reveals race (a near-perfect proxy)" in d1
