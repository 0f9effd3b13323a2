"""Domain objects of an audit: severities, findings, check results and the report.

Plain frozen dataclasses; the report formatters read these and nothing else. Finding ids
are fingerprints of *what* was found (check, kind, location), never of how much, so a
finding keeps its id from run to run while its numbers change.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

CheckStatus = Literal["pass", "fail", "error", "skipped"]


class Severity(str, enum.Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: info=0 … critical=4."""
        return _RANK[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r}; use one of: {names}") from None

    def __str__(self) -> str:
        return self.value


_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


@dataclass(frozen=True, kw_only=True)
class Location:
    """Where a finding lives: a file or URL, and optionally a column, rows or member."""

    artifact: str | None = None
    column: str | None = None
    rows: tuple[Any, ...] = ()
    member: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.artifact is not None:
            out["artifact"] = self.artifact
        if self.column is not None:
            out["column"] = self.column
        if self.rows:
            out["rows"] = list(self.rows)
        if self.member is not None:
            out["member"] = self.member
        if self.line is not None:
            out["line"] = self.line
        return out


def fingerprint(*parts: object) -> str:
    """A stable 16-hex-digit id from the parts that identify a finding."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class Finding:
    id: str
    check: str
    severity: Severity
    title: str
    description: str
    remediation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    location: Location = field(default_factory=Location)
    references: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity.value,
            "title": self.title,
            "description": self.description,
            "evidence": self.evidence,
            "location": self.location.to_dict(),
            "references": list(self.references),
            "remediation": self.remediation,
        }


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    id: str
    title: str
    status: CheckStatus
    duration_s: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    findings: tuple[Finding, ...] = ()
    charts: tuple[Any, ...] = ()
    """Small figures for the HTML report (registry.Chart); not part of the JSON contract."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "duration_s": round(self.duration_s, 6),
            "metrics": self.metrics,
            "message": self.message,
        }


@dataclass(frozen=True, kw_only=True)
class Target:
    name: str
    spec: str | None = None


@dataclass(frozen=True, kw_only=True)
class Report:
    """What an audit (or scan, or probe) found. Formatters read this and nothing else."""

    tool_version: str
    target: Target
    started_at: str
    duration_s: float
    checks: tuple[CheckResult, ...]
    engine: str = "local"
    stages: dict[str, list[str]] = field(default_factory=dict)
    """Attack-surface stages present in the pipeline → ids of the checks that cover them."""
    docs: dict[str, str] = field(default_factory=dict)
    """Check id → its documentation (the check's docstring), for the HTML report."""
    references: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Check id → the references it cites, so a check without findings still names them."""

    @property
    def findings(self) -> tuple[Finding, ...]:
        out = [f for c in self.checks for f in c.findings]
        out.sort(key=lambda f: (-f.severity.rank, f.check, f.id))
        return tuple(out)

    def worst(self) -> Severity | None:
        found = self.findings
        return found[0].severity if found else None

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out

    def exit_code(self, fail_on: Severity) -> int:
        """0 when nothing is at or above ``fail_on``, 1 otherwise (DESIGN.md contract)."""
        worst = self.worst()
        return 1 if worst is not None and worst.rank >= fail_on.rank else 0
