"""Latency amplification: requests that cost the server far more than an ordinary one.

A server that accepts, say, a 10,000-row batch or extreme values that slow the model down lets
one client buy a large share of its capacity per request (denial of service, cost harvesting).
The probe times a few ordinary one-row requests, then a few of each costly kind, and compares
medians.

Rule ``endpoint.latency.amplification``: the median time of a costly request the server
processed (2xx, or 5xx after trying) is at least 20× the ordinary median and 50 ms longer —
**medium**; at least 100×, or no answer within the timeout — **high**. Requests the server
refuses (4xx) never count: refusing is cheap, and that is the fix.
Timings on a loaded client or network are noisy; the report gives every median so a reader can judge.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from ..findings import Severity
from .base import FamilyResult, Issue
from .payloads import Example, infer, working_example
from .session import ProbeSession, Reply

REFS = ("AML.T0029", "AML.T0034", "NIST-MEASURE")
BASELINE, REPEAT = 8, 3
MEDIUM_RATIO, HIGH_RATIO = 20.0, 100.0
MIN_EXTRA_S = 0.05
BATCH_BYTES = 1 << 20
MAX_BATCH = 20_000


def probe(s: ProbeSession) -> FamilyResult:
    out = FamilyResult()
    ex, why = working_example(s)
    if ex is None:
        out.skipped = f"no request the server accepts: {why}"
        return out
    base = _median([infer(s, ex) for _ in range(BASELINE)])
    out.metrics["baseline_ms"] = round(base * 1000, 3)
    rows = _batch_rows(ex)
    extreme = _extreme(ex)
    candidates: list[tuple[str, Any]] = [(f"batch_{rows}_rows", lambda: infer(s, ex, rows=rows))]
    if extreme is not None:
        candidates.append(("extreme_values", lambda: infer(s, extreme)))
    worst: tuple[float, str, Reply] | None = None
    found: dict[str, Any] = {}
    for name, send in candidates:
        replies = [send() for _ in range(REPEAT)]
        med = _median(replies)
        hung = any(r.outcome == "hang" for r in replies)
        ratio = med / base if base > 0 else float("inf")
        # a refusal costs the server little by design (what time it takes is mostly the upload, paid by the
        # caller too); and on a fast server a few ms of scheduling noise must not read as amplification
        counted = hung or (all(r.outcome in ("ok", "server_error") for r in replies) and med - base >= MIN_EXTRA_S)
        found[name] = {"median_ms": round(med * 1000, 3), "ratio": round(ratio, 1), "status": replies[-1].status,
                       "hang": hung, "counted": counted}
        if counted and (worst is None or ratio > worst[0]):
            worst = (ratio if not hung else float("inf"), name, replies[-1])
    out.metrics["candidates"] = found
    if worst is not None and worst[0] >= MEDIUM_RATIO:
        ratio, name, r = worst
        sev = Severity.HIGH if ratio >= HIGH_RATIO else Severity.MEDIUM
        shown = "no answer within the timeout" if ratio == float("inf") else f"{ratio:.0f}× the ordinary request"
        out.issues.append(Issue(
            rule="endpoint.latency.amplification", severity=sev,
            title=f"One request can cost the server {shown} ({name})",
            description=f"An ordinary request takes {base * 1000:.1f} ms (median of {BASELINE}); {name} takes "
                        f"{found[name]['median_ms']:.1f} ms (median of {REPEAT}, answer {r.status}). Each such "
                        "request buys a large share of the server's capacity: a cheap denial of service.",
            remediation="Cap batch size and request size, bound per-request compute time, and count costly "
                        "requests against the caller's quota by their size.",
            evidence={"baseline_ms": out.metrics["baseline_ms"], "candidate": name, **found[name]}, references=REFS))
    return out


def _median(replies: list[Reply]) -> float:
    return statistics.median(r.seconds for r in replies)


def _batch_rows(ex: Example) -> int:
    per_row = max(1, len(json.dumps(ex.rest(2))) - len(json.dumps(ex.rest(1))))
    return max(2, min(MAX_BATCH, BATCH_BYTES // per_row))


def _extreme(ex: Example) -> Example | None:
    changed = []
    for t in ex.inputs:
        if t["datatype"].startswith("FP"):
            changed.append({**t, "data": [1e300 if i % 2 == 0 else -1e300 for i in range(len(t["data"]))]})
        else:
            changed.append(t)
    return Example(tuple(changed), ex.parameters, ex.source) if changed != list(ex.inputs) else None
