"""report.json — the machine-readable contract (schema ``mlwarden.report/1``, DESIGN.md)."""

from __future__ import annotations

import json
from typing import Any

from ..findings import Report

SCHEMA = "mlwarden.report/1"


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "tool": {"name": "mlwarden", "version": report.tool_version},
        "target": {"name": report.target.name, "spec": report.target.spec},
        "started_at": report.started_at,
        "duration_s": round(report.duration_s, 6),
        "engine": report.engine,
        "summary": {"counts": report.counts(), "worst": report.worst().value if report.worst() else None},
        "checks": [c.to_dict() for c in report.checks],
        "findings": [f.to_dict() for f in report.findings],
    }


class JsonFormat:
    filename = "report.json"

    def render(self, report: Report) -> str:
        return json.dumps(report_dict(report), indent=2, sort_keys=False, default=_default) + "\n"


def _default(o: Any) -> Any:
    """numpy scalars and other stragglers in metrics/evidence become plain JSON values."""
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)
