"""The ethics checklist: Deon's five sections, each item with the last audit's evidence.

An item's status comes from the checks it maps to (``checklist_items``):

- **evidence of a problem** — one of them has a finding above info;
- **evidence checked, nothing found** — one of them ran and none has such a finding (for
  items about coverage, such as whether group membership is recorded: one of them ran);
- **not checked by this audit** — none ran (skipped, errored, or no check covers it),
  with what it would take.

Every item keeps its question for a person: evidence informs the answer, it is not the
answer. The checklist reads a report as the JSON contract describes it (``report.json``,
or :func:`from_report` for a :class:`~mlwarden.findings.Report` in memory), so the CLI
and the HTML report build it the same way, without re-running anything.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .checklist_items import ITEMS, SECTIONS, Item
from .errors import MlwardenError
from .findings import Report, Severity

Status = Literal["problem", "checked", "not_checked"]
STATUS_TEXT: dict[str, str] = {
    "problem": "evidence of a problem",
    "checked": "evidence checked, nothing found",
    "not_checked": "not checked by this audit",
}
TOP_FINDINGS = 3
KEY_METRICS = 6


@dataclass(frozen=True, kw_only=True)
class CheckEvidence:
    """What one check of the audit says about an item."""

    id: str
    status: str
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    top: tuple[tuple[str, str], ...] = ()
    """(severity, title) of its worst findings."""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ItemView:
    item: Item
    section: str
    status: Status
    evidence: tuple[CheckEvidence, ...]
    needs: str = ""
    """For items not checked: what would let an audit speak to them."""

    @property
    def status_text(self) -> str:
        text = STATUS_TEXT[self.status]
        return f"{text} (needs {self.needs})" if self.status == "not_checked" and self.needs else text


def load_report(path: Path) -> dict[str, Any]:
    """A report.json as a dict; a clear error when it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlwardenError(f"{path}: no such report; run `mlwarden audit` first or leave out --report") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MlwardenError(f"{path}: cannot read the report: {e}") from e
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("mlwarden.report/"):
        raise MlwardenError(f"{path}: not an mlwarden report.json (no 'schema': 'mlwarden.report/1')")
    return doc


def from_report(report: Report) -> list[ItemView]:
    """The checklist of a report in memory (the HTML report): the same fields report.json has."""
    return build({
        "checks": [c.to_dict() for c in report.checks],
        "findings": [{"check": f.check, "severity": f.severity.value, "title": f.title}
                     for c in report.checks for f in c.findings],
    })


def build(report: dict[str, Any]) -> list[ItemView]:
    """Every checklist item with its status and evidence from ``report`` (report.json's shape)."""
    checks = {c["id"]: c for c in report.get("checks", []) if isinstance(c, dict) and "id" in c}
    by_check: dict[str, list[dict[str, Any]]] = {}
    for f in report.get("findings", []):
        by_check.setdefault(f.get("check", ""), []).append(f)
    return [_item(item, checks, by_check) for item in ITEMS]


def _item(item: Item, checks: dict[str, dict], by_check: dict[str, list[dict]]) -> ItemView:
    ids = sorted(cid for cid in checks if any(fnmatch.fnmatchcase(cid, g) for g in item.checks))
    evidence = tuple(_evidence(checks[cid], by_check.get(cid, [])) for cid in ids)
    ran = [e for e in evidence if e.status in ("pass", "fail")]
    section = item.id.split(".")[0]
    if not item.coverage and any(sum(n for s, n in e.counts.items() if s != "info") for e in ran):
        return ItemView(item=item, section=section, status="problem", evidence=evidence)
    if ran:
        return ItemView(item=item, section=section, status="checked", evidence=evidence)
    reasons = sorted({_reason(e) for e in evidence if _reason(e)})
    needs = "; ".join(reasons) if reasons else item.needs
    return ItemView(item=item, section=section, status="not_checked", evidence=evidence, needs=needs)


def _reason(e: CheckEvidence) -> str:
    if e.status == "error":
        return f"{e.id} to run without error"
    msg = e.message.strip()
    return msg[len("needs "):] if msg.startswith("needs ") else msg


def _evidence(check: dict[str, Any], findings: list[dict[str, Any]]) -> CheckEvidence:
    counts = {s.value: 0 for s in Severity}
    for f in findings:
        counts[f.get("severity", "info")] = counts.get(f.get("severity", "info"), 0) + 1
    ranked = sorted(findings, key=lambda f: (-_rank(f.get("severity")), f.get("title", "")))
    metrics = {k: v for k, v in (check.get("metrics") or {}).items()
               if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) < 120)}
    return CheckEvidence(
        id=check["id"], status=check.get("status", "?"), message=check.get("message", "") or "",
        counts={s: n for s, n in counts.items() if n},
        top=tuple((f.get("severity", "info"), f.get("title", "")) for f in ranked[:TOP_FINDINGS]),
        metrics=dict(list(metrics.items())[:KEY_METRICS]))


def _rank(sev: Any) -> int:
    try:
        return Severity(sev).rank
    except ValueError:
        return -1


def summary(views: list[ItemView]) -> dict[str, int]:
    return {s: sum(1 for v in views if v.status == s) for s in STATUS_TEXT}


def render_markdown(views: list[ItemView], report: dict[str, Any]) -> str:
    """The checklist as Markdown: a summary, then each section's items with evidence and question."""
    target = report.get("target", {}) or {}
    counts = summary(views)
    out = [f"# Ethics checklist: {_md(target.get('name') or '(unnamed)')}", "",
           f"Evidence from the mlwarden {_md(report.get('tool', {}).get('version', ''))} audit of "
           f"`{_code(target.get('spec') or '(no spec)')}` started {_md(report.get('started_at', '?'))}. The items follow "
           "the five sections of Deon (https://deon.drivendata.org); the evidence informs each answer, and the "
           "question under it remains for a person to answer.", "",
           f"- **{counts['problem']}** items with evidence of a problem",
           f"- **{counts['checked']}** items checked with nothing found",
           f"- **{counts['not_checked']}** items not checked by this audit", ""]
    for letter, name in SECTIONS.items():
        out += [f"## {letter}. {name}", ""]
        for v in (v for v in views if v.section == letter):
            mark = "x" if v.status == "checked" else " "
            out += [f"### {v.item.id} {v.item.title}", "", f"- [{mark}] **Status:** {_md(v.status_text)}"]
            for e in v.evidence:
                out.append(f"- `{e.id}` — {e.status}" + (f": {_counts(e.counts)}" if e.counts else "")
                           + (f" ({_md(e.message)})" if e.message and e.status != "fail" else ""))
                out += [f"  - {sev}: {_md(title)}" for sev, title in e.top]
                if e.metrics:
                    out.append("  - metrics: " + ", ".join(f"{_md(str(k))} = {_md(_fmt(m))}" for k, m in e.metrics.items()))
            out += ["", f"**Question for a person.** {v.item.question}", "", "Answer: _…_", ""]
    return "\n".join(out).rstrip() + "\n"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _code(text: Any) -> str:
    return str(text).replace("`", "'").replace("\n", " ")


def _md(text: Any) -> str:
    """User-derived text made inert in Markdown: no HTML, no link or emphasis syntax."""
    s = str(text).replace("\n", " ")
    for ch, rep in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        s = s.replace(ch, rep)
    for ch in "\\`*_[]":
        s = s.replace(ch, "\\" + ch)
    return s
