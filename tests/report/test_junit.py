"""JUnit XML output: parses, counts match the report, hostile text cannot break the XML."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from mlwarden.findings import CheckResult, Finding, Location, Report, Severity
from mlwarden.report.junit import JunitFormat, family, xml_text


def parse(report: Report) -> ET.Element:
    return ET.fromstring(JunitFormat().render(report).encode("utf-8"))


def _finding(check: str, n: int, severity: Severity, title: str = "t", **loc) -> Finding:
    return Finding(id=f"{n:016x}", check=check, severity=severity, title=title, description="d",
                   remediation="r", location=Location(**loc))


def _mixed(report: Report) -> Report:
    """The demo plus one check of every outcome: error, skipped, pass with info, failure."""
    extra = (
        CheckResult(id="model.evasion.boundary", title="Resists perturbations", status="error",
                    message="ValueError: bad shape\nTraceback line"),
        CheckResult(id="endpoint.auth", title="Endpoint needs a key", status="skipped",
                    message="needs model.endpoint in the spec"),
        CheckResult(id="data.quality.nulls", title="Few nulls", status="pass",
                    findings=(_finding("data.quality.nulls", 1, Severity.INFO, "3 nulls in age"),)),
        CheckResult(id="data.quality.ranges", title="Values in range", status="fail", findings=(
            _finding("data.quality.ranges", 2, Severity.HIGH, "age above 150", artifact="data/train.parquet",
                     column="age"),
            _finding("data.quality.ranges", 3, Severity.MEDIUM, "negative income", artifact="data/test.parquet",
                     line=4),
            _finding("data.quality.ranges", 4, Severity.MEDIUM, "negative loan"),
        )),
    )
    return dataclasses.replace(report, checks=report.checks + extra)


def test_counts_match_the_report(demo_report):
    report = _mixed(demo_report)
    root = parse(report)
    assert root.tag == "testsuites" and root.get("name") == "mlwarden"
    cases = root.findall("./testsuite/testcase")
    assert sorted(c.get("classname") for c in cases) == sorted(c.id for c in report.checks)
    failing = [c for c in report.checks if any(f.severity is not Severity.INFO for f in c.findings)
               and c.status not in ("error", "skipped")]
    expected = {"tests": len(report.checks), "failures": len(failing),
                "errors": sum(c.status == "error" for c in report.checks),
                "skipped": sum(c.status == "skipped" for c in report.checks)}
    assert {k: int(root.get(k)) for k in expected} == expected
    assert expected["failures"] >= 3 and expected["errors"] >= 1 and expected["skipped"] >= 1
    for suite in root.findall("testsuite"):
        own = suite.findall("testcase")
        assert int(suite.get("tests")) == len(own)
        assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in own)
        assert int(suite.get("errors")) == sum(c.find("error") is not None for c in own)
        assert int(suite.get("skipped")) == sum(c.find("skipped") is not None for c in own)
        assert all(family(c.get("classname")) == suite.get("name") for c in own)
    assert sum(int(s.get("tests")) for s in root.findall("testsuite")) == len(report.checks)
    assert float(root.get("time")) >= 0 and root.get("timestamp") == report.started_at


def test_each_outcome_has_its_element(demo_report):
    root = parse(_mixed(demo_report))
    case = {c.get("classname"): c for c in root.iter("testcase")}

    failure = case["data.quality.ranges"].find("failure")
    assert failure.get("message") == "3 findings: 1 high, 2 medium"
    assert failure.get("type") == "high"
    lines = failure.text.splitlines()
    assert len(lines) == 3
    assert "[high] age above 150" in lines[0] and "data/train.parquet" in lines[0] and "column age" in lines[0]
    assert "data/test.parquet:4" in failure.text

    error = case["model.evasion.boundary"].find("error")
    assert error.get("message") == "ValueError: bad shape" and "Traceback line" in error.text
    skipped = case["endpoint.auth"].find("skipped")
    assert skipped.get("message") == "needs model.endpoint in the spec"

    nulls = case["data.quality.nulls"]
    assert [child.tag for child in nulls] == ["system-out"]  # info only: passes, but says so
    assert "3 nulls in age" in nulls.find("system-out").text

    leak = case["data.leakage.exact_duplicates"]  # the demo's planted leak
    n = sum(f.check == "data.leakage.exact_duplicates" for f in demo_report.findings)
    message = leak.find("failure").get("message")
    assert message.startswith(f"{n} finding") and "critical" in message
    assert leak.get("name") == "No evaluation rows duplicated from training data"


def test_one_suite_per_family(demo_report):
    root = parse(_mixed(demo_report))
    names = [s.get("name") for s in root.findall("testsuite")]
    assert len(names) == len(set(names))
    assert {"data.leakage", "data.quality", "model.evasion", "endpoint"} <= set(names)
    assert family("artifact") == "artifact" and family("data.leakage.exact_duplicates") == "data.leakage"


def test_control_characters_do_not_break_the_xml(demo_report):
    nasty = "bad \x00 nul \x1b[31mred\x1b[0m \x07 bell \ud800 surrogate & <tag> \"quoted\" \ufffe end"
    report = dataclasses.replace(demo_report, checks=demo_report.checks + (
        CheckResult(id="code.scan.x", title=nasty, status="error", message=nasty),
        CheckResult(id="code.scan.y", title="y", status="fail", findings=(
            _finding("code.scan.y", 9, Severity.CRITICAL, nasty, artifact="src/\x1bodd<&>.py", column=nasty),)),
    ))
    text = JunitFormat().render(report)
    assert "\x00" not in text and "\x1b" not in text and "\ud800" not in text
    text.encode("utf-8")  # no lone surrogates left to fail the write
    root = ET.fromstring(text.encode("utf-8"))
    case = {c.get("classname"): c for c in root.iter("testcase")}
    error = case["code.scan.x"].find("error")
    assert "\\x1b[31mred" in error.text and "& <tag> \"quoted\"" in error.text
    assert case["code.scan.x"].get("name").startswith("bad \\x00 nul")
    failure = case["code.scan.y"].find("failure")
    assert "src/\\x1bodd<&>.py" in failure.text


@pytest.mark.parametrize(("raw", "clean"), [
    ("tab\tnl\ncr\r", "tab\tnl\ncr\r"),
    ("a\x00b", "a\\x00b"),
    ("\x1b[0m", "\\x1b[0m"),
    ("\x7f ok é 名 \U0001f600", "\x7f ok é 名 \U0001f600"),
    ("\ufffe\uffff", "\\xfffe\\xffff"),
])
def test_xml_text(raw, clean):
    assert xml_text(raw) == clean
