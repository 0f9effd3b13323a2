"""Run every probe family against one endpoint, in order, within one session's bounds.

The endpoint must accept a TCP connection (else one :class:`SourceError` line: nothing to
probe). Each family then runs until it is done or the budget or deadline stops it; a family
stopped early says so in its metrics, and every family reports the requests it sent and
its time, with the session's budget.
"""

from __future__ import annotations

import importlib
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import SourceError
from ..sources.endpoint import EndpointUrl, parse_endpoint
from .base import FAMILIES, FamilyResult, ProbeOptions
from .session import ProbeSession, Stopped
from .transport import host_port

ORDER = ("transport", "access", "inputs", "disclosure", "latency", "quotas")
"""Disclosure reads the error answers that inputs provoked; the quota burst goes last (see base.FAMILIES)."""


@dataclass
class ProbeRun:
    target: EndpointUrl
    options: ProbeOptions
    started_at: str
    families: dict[str, FamilyResult] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.requests} requests of a budget of {self.options.max_requests}, at most "
                f"{self.options.rate:g}/s, in {self.seconds:.1f} s (limit {self.options.time_limit_s:g} s)")


def run_probe(url: str, options: ProbeOptions, families: tuple[str, ...] = ORDER) -> ProbeRun:
    """Probe ``url``; SourceError (one line) when the URL is malformed or nothing listens there."""
    assert set(families) <= set(FAMILIES)
    target = parse_endpoint(url)
    s = ProbeSession(target, options)
    _reachable(s)
    run = ProbeRun(target, options, datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        for name in families:
            module = importlib.import_module(f"{__package__}.{name}")
            before, t0 = s.sent, time.monotonic()
            try:
                result = module.probe(s)
                stopped = ""
            except Stopped as e:
                result, stopped = FamilyResult(skipped=f"stopped early: {e}"), str(e)
            result.metrics.update(requests=s.sent - before, seconds=round(time.monotonic() - t0, 3),
                                  budget=options.max_requests, rate=options.rate, stopped_early=bool(stopped))
            if stopped:
                result.metrics["stop_reason"] = stopped
            run.families[name] = result
    finally:
        s.close()
    run.requests, run.seconds = s.sent, s.seconds
    return run


def _reachable(s: ProbeSession) -> None:
    host, port = host_port(s)
    try:
        with socket.create_connection((host, port), timeout=min(s.options.timeout_s, 10.0)):
            pass
    except OSError as e:
        why = "connection refused" if isinstance(e, ConnectionRefusedError) else (e.strerror or str(e))
        raise SourceError(f"{s.target.display}: cannot connect ({why}); is the server running and the URL right?") from None
