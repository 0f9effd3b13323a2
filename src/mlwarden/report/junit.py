"""report.junit.xml — the audit as JUnit XML, so any CI shows checks as test cases.

There is no official JUnit schema; this follows the common shape (testmoapp/junitxml,
PROTOCOLS.md §5): ``testsuites`` › ``testsuite`` › ``testcase``, where a case passes
unless it holds a ``failure``, ``error`` or ``skipped`` element.

One suite per check family (the id without its last part: ``data.leakage``,
``artifact``), not one suite for everything: CI dashboards (Jenkins, GitLab, Azure)
group and count by suite, and a family is the unit a team owns and triages. One case
per check; its ``classname`` is the check id, so the id survives as the dotted
package.class path those dashboards already show.

A check fails when it has findings above info — the rule the audit uses for a check's
status — and info findings go to ``system-out`` of a passing case.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

from ..findings import CheckResult, Finding, Report, Severity

# XML 1.0 allows tab, newline, carriage return and most of Unicode; anything else —
# NUL, ANSI escapes from a captured traceback, lone surrogates — makes the file
# unparseable. Shown as \xNN so the information stays readable.
_INVALID_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``value`` as text that is legal in an XML 1.0 document (escaping is ElementTree's)."""
    return _INVALID_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


class JunitFormat:
    filename = "report.junit.xml"

    def render(self, report: Report) -> str:
        root = junit_tree(report)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def junit_tree(report: Report) -> ET.Element:
    families: dict[str, list[CheckResult]] = {}
    for check in report.checks:
        families.setdefault(family(check.id), []).append(check)
    root = ET.Element("testsuites", {"name": "mlwarden"} | _counts(report.checks) | {
        "time": _seconds(report.duration_s),
        "timestamp": xml_text(report.started_at),
    })
    for name, checks in families.items():
        suite = ET.SubElement(root, "testsuite", {"name": xml_text(name)} | _counts(checks) | {
            "time": _seconds(sum(c.duration_s for c in checks)),
            "timestamp": xml_text(report.started_at),
        })
        for check in checks:
            _testcase(suite, check)
    return root


def family(check_id: str) -> str:
    """``data.leakage.exact_duplicates`` → ``data.leakage``; a one-part id is its own family."""
    return check_id.rsplit(".", 1)[0] if "." in check_id else check_id


def _failing(check: CheckResult) -> list[Finding]:
    return [f for f in check.findings if f.severity is not Severity.INFO]


def _outcome(check: CheckResult) -> str:
    if check.status == "error":
        return "error"
    if check.status == "skipped":
        return "skipped"
    return "failure" if _failing(check) else "pass"


def _counts(checks: list[CheckResult] | tuple[CheckResult, ...]) -> dict[str, str]:
    seen = Counter(_outcome(c) for c in checks)
    return {"tests": str(len(checks)), "failures": str(seen["failure"]),
            "errors": str(seen["error"]), "skipped": str(seen["skipped"])}


def _testcase(suite: ET.Element, check: CheckResult) -> None:
    case = ET.SubElement(suite, "testcase", {
        "classname": xml_text(check.id),
        "name": xml_text(check.title or check.id),
        "time": _seconds(check.duration_s),
    })
    outcome = _outcome(check)
    if outcome == "error":
        el = ET.SubElement(case, "error", {"message": xml_text(_first_line(check.message) or "check errored"),
                                           "type": "error"})
        el.text = xml_text(check.message)
    elif outcome == "skipped":
        ET.SubElement(case, "skipped", {"message": xml_text(check.message or "skipped")})
    elif outcome == "failure":
        failing = _failing(check)
        worst = max(failing, key=lambda f: f.severity.rank).severity
        el = ET.SubElement(case, "failure", {"message": xml_text(_summary(failing)), "type": worst.value})
        el.text = xml_text("\n".join(_finding_line(f) for f in failing))
    info = [f for f in check.findings if f.severity is Severity.INFO]
    if info:
        out = ET.SubElement(case, "system-out")
        out.text = xml_text("\n".join(_finding_line(f) for f in info))


def _summary(findings: list[Finding]) -> str:
    """``2 findings: 1 critical, 1 low`` (worst first)."""
    counts = Counter(f.severity for f in findings)
    parts = [f"{counts[s]} {s.value}" for s in sorted(counts, key=lambda s: -s.rank)]
    noun = "finding" if len(findings) == 1 else "findings"
    return f"{len(findings)} {noun}: {', '.join(parts)}"


def _finding_line(f: Finding) -> str:
    return f"[{f.severity.value}] {f.title} — {_where(f)} (id {f.id})"


def _where(f: Finding) -> str:
    loc = f.location
    parts: list[Any] = [loc.artifact or "(no file)"]
    if loc.line is not None:
        parts[0] = f"{parts[0]}:{loc.line}"
    if loc.column is not None:
        parts.append(f"column {loc.column}")
    if loc.member is not None:
        parts.append(f"member {loc.member}")
    return ", ".join(str(p) for p in parts)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _seconds(s: float) -> str:
    return f"{max(s, 0.0):.3f}"
