"""Quotas: does the endpoint limit how fast, and how much, one caller may query it?

Black-box evasion and model extraction need thousands of queries; a rate limit or a query
budget is what makes them slow and visible (MITRE ATLAS mitigation "Restrict Number of AI
Model Queries"). The probe sends a short burst of ordinary requests at the configured rate
(``--rate``, at most ``burst`` requests, within the request budget) and stops at the first
429 / RESOURCE_EXHAUSTED.

Rules (``endpoint.quotas.*``):

* ``no_rate_limit`` — the whole burst was answered: no limit at or below the probe's rate. **high**.
  (A limit above ``--rate``, or a daily budget larger than the burst, cannot be excluded; the
  metrics say what was tried.) Only requests the server *served* count: a burst refused with
  401/403 (no key, a blocked key) says nothing about quotas, so the family stops at the first
  such answer and reports that it could not judge — never a finding.
* ``no_retry_after`` — the server throttles but does not say when to come back (no
  ``Retry-After``), so honest clients hammer it. **low**.
"""

from __future__ import annotations

from ..findings import Severity
from .base import FamilyResult, Issue
from .payloads import infer, metadata, working_example
from .session import ProbeSession, Stopped

REFS = ("OWASP-ML05", "AML.T0024.002", "AML.T0034", "NIST-MANAGE")
MIN_BURST = 20


def probe(s: ProbeSession) -> FamilyResult:
    out = FamilyResult()
    n = min(s.options.burst, s.left)
    if n < MIN_BURST:
        out.skipped = f"only {s.left} requests left in the budget; the burst needs {MIN_BURST}"
        return out
    ex, why = working_example(s)
    route = "inference" if ex is not None else f"metadata (no inference request the server accepts: {why})"
    statuses: dict[str, int] = {}
    throttled = refused = None
    t0 = s.seconds
    sent = served = 0
    try:
        for _ in range(n):
            if ex is not None:
                r = infer(s, ex, retry_throttled=False)
            else:
                s.cache.pop("metadata", None)
                r = metadata(s, retry_throttled=False)[0]  # a retried 429 would read as served
            sent += 1
            served += r.outcome == "ok"
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            if r.outcome == "throttled":
                throttled = r
                break
            if r.outcome == "unauthorized":  # the rest would be refused too: spend no more of the budget
                refused = r
                break
    except Stopped:
        pass
    elapsed = s.seconds - t0
    out.metrics.update(burst_sent=sent, burst_served=served, burst_seconds=round(elapsed, 3), route=route,
                       statuses=statuses, rate_limit_per_s=s.options.rate,
                       throttled_after=sent if throttled else None)
    if refused is not None:
        out.skipped = (f"the burst was refused ({refused.status} after {sent} request(s)): without access, "
                       "quotas cannot be judged; probe again with --key")
    elif throttled is None and served < MIN_BURST:
        out.skipped = (f"only {served} of {sent} burst request(s) were served ({statuses}): too few to judge "
                       "a rate limit")
    if throttled is None and served >= MIN_BURST:
        out.issues.append(Issue(
            rule="endpoint.quotas.no_rate_limit", severity=Severity.HIGH,
            title=f"No rate limit: {served} of {sent} requests in {elapsed:.1f} s served",
            description=f"A burst of {sent} {route} requests at up to {s.options.rate:g}/s met no 429 or "
                        "RESOURCE_EXHAUSTED. Without a per-caller rate limit and query budget, extraction and "
                        "black-box evasion (thousands of queries) run unhindered. A limit above the probe's rate "
                        "or a budget above the burst cannot be excluded.",
            remediation="Enforce per-key rate limits and daily query budgets at a gateway (e.g. `mlwarden guard`), "
                        "answering 429 with Retry-After.",
            evidence={"sent": sent, "served": served, "seconds": round(elapsed, 3), "rate": s.options.rate,
                      "statuses": statuses},
            references=REFS))
    if throttled is not None and s.target.protocol == "rest" and throttled.header("retry-after") is None:
        out.issues.append(Issue(
            rule="endpoint.quotas.no_retry_after", severity=Severity.LOW,
            title="The server throttles without Retry-After",
            description=f"After {sent} requests the server answered 429 without a Retry-After header.",
            remediation="Send Retry-After with every 429.", evidence={"after": sent}, references=REFS))
    return out
