"""Small helpers for the probe's tests: fast but still bounded options, and rule ids of a run."""

from __future__ import annotations

from typing import Any

from mlwarden.probe.base import ProbeOptions
from mlwarden.probe.runner import ProbeRun

INPUT_VERDICTS = {"rejected", "accepted", "server_error", "trace", "hang", "dropped", "inconclusive"}


def fast(**kw: Any) -> ProbeOptions:
    """Loopback-friendly bounds: a higher rate, short timeouts, a 1 MiB oversize case."""
    return ProbeOptions(**{"rate": 100.0, "timeout_s": 5.0, "time_limit_s": 120.0, "oversize_bytes": 1 << 20, **kw})


def rules(run: ProbeRun) -> dict[str, str]:
    """rule id → severity of every issue the run found."""
    return {i.rule: i.severity.value for fam in run.families.values() for i in fam.issues}


def assert_bounded(run: ProbeRun) -> None:
    """Every family states its requests, the budget and its time, and the total stays in the budget."""
    assert 0 < run.requests <= run.options.max_requests
    assert sum(f.metrics["requests"] for f in run.families.values()) == run.requests
    for fam in run.families.values():
        assert fam.metrics["budget"] == run.options.max_requests
        assert fam.metrics["seconds"] >= 0 and "stopped_early" in fam.metrics
