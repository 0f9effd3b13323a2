"""The guard's counters and latency histogram, rendered in the Prometheus text format (0.0.4).

A handful of series, kept in plain dicts under one lock (prometheus_client is not needed
for this few): requests by protocol and status, rows served, detector actions, audit-log
appends and commits (appends / commits is the group-commit batch: entries per fsync) and a
cumulative latency histogram per protocol. Counters owned elsewhere (the audit log's commits)
are read when rendered, so the request path pays nothing for them.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    esc = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in pairs)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(pairs, esc)) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
            "mlwarden_guard_requests_total": {}, "mlwarden_guard_rows_total": {},
            "mlwarden_guard_detections_total": {}, "mlwarden_guard_audit_entries_total": {}}
        self._help = {
            "mlwarden_guard_requests_total": "Requests answered, by protocol and status.",
            "mlwarden_guard_rows_total": "Rows (queries) sent to the model.",
            "mlwarden_guard_detections_total": "Attack-detector decisions other than allow, by action.",
            "mlwarden_guard_audit_entries_total": "Entries appended to the audit log."}
        self._hist: dict[str, list[float]] = {}  # protocol → per-bucket counts + [sum, count]
        self.external: dict[str, tuple[str, Callable[[], float]]] = {}
        """Counter name → (help, reader), read at render time."""

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self.counters[name]
            series[key] = series.get(key, 0.0) + value

    def observe(self, protocol: str, seconds: float) -> None:
        with self._lock:
            h = self._hist.setdefault(protocol, [0.0] * (len(BUCKETS) + 3))  # buckets, +Inf, sum, count
            h[bisect.bisect_left(BUCKETS, seconds)] += 1  # index len(BUCKETS) is the +Inf overflow
            h[-2] += seconds
            h[-1] += 1

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, series in self.counters.items():
                lines += [f"# HELP {name} {self._help[name]}", f"# TYPE {name} counter"]
                lines += [f"{name}{_labels(k)} {v:g}" for k, v in sorted(series.items())]
            for name, (text, read) in self.external.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} counter", f"{name} {float(read()):g}"]
            name = "mlwarden_guard_request_seconds"
            lines += [f"# HELP {name} Time from request decoded to answer encoded.", f"# TYPE {name} histogram"]
            for proto, h in sorted(self._hist.items()):
                cum = 0.0
                for le, c in zip((*(f"{b:g}" for b in BUCKETS), "+Inf"), h[:len(BUCKETS) + 1]):
                    cum += c
                    lines.append(f'{name}_bucket{{protocol="{proto}",le="{le}"}} {cum:g}')
                lines.append(f'{name}_sum{{protocol="{proto}"}} {h[-2]:.6f}')
                lines.append(f'{name}_count{{protocol="{proto}"}} {h[-1]:g}')
        return "\n".join(lines) + "\n"
