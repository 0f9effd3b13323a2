"""report.json — the machine-readable contract (schema ``mlwarden.report/1``, DESIGN.md)."""

from __future__ import annotations

import json
import math
from typing import Any

from ..findings import Report

SCHEMA = "mlwarden.report/1"


def report_dict(report: Report) -> dict[str, Any]:
    worst = report.worst()
    return {
        "schema": SCHEMA,
        "tool": {"name": "mlwarden", "version": report.tool_version},
        "target": {"name": report.target.name, "spec": report.target.spec},
        "started_at": report.started_at,
        "duration_s": round(report.duration_s, 6),
        "engine": report.engine,
        "summary": {"counts": report.counts(), "worst": worst.value if worst else None},
        "checks": [c.to_dict() for c in report.checks],
        "findings": [f.to_dict() for f in report.findings],
    }


class JsonFormat:
    filename = "report.json"

    def render(self, report: Report) -> str:
        # strict JSON: NaN/Infinity become null (allow_nan=False proves none slipped through)
        doc = _finite(json.loads(json.dumps(report_dict(report), default=_default)))
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


def _default(o: Any) -> Any:
    """numpy values and other stragglers in metrics/evidence become plain JSON values."""
    if getattr(o, "ndim", 0):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)
