"""The one request pipeline both protocols run: authenticate, limit, validate, detect, answer, log.

Order matters and is the same for REST and gRPC: the API key first (401/403 before
anything else is read), then the key's token bucket (one token a request, so a flood is
refused before its body is decoded), then decoding and the input schema, then the key's
daily budget (one unit a row: rows are queries), then the stateful attack detector, then
the model and the key's output policy. Every model request, refused or answered, becomes
one audit-log entry, appended and committed *before* the answer leaves: if the log cannot
take it, the client gets 503 rather than an answer nobody recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import output
from .backend import Backend
from .errors import Forbidden, GuardError, NotFound, TooMany, Unavailable
from .keys import KeyRecord, KeyStore
from .metrics import Metrics
from .schema import InputSchema
from .wire import InferAnswer, InferCall

access = logging.getLogger("mlwarden.guard.access")
log = logging.getLogger("mlwarden.guard")
THROTTLE_S = 5.0


def _day(now: float) -> tuple[str, float]:
    """UTC day of ``now`` and the seconds until it ends."""
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    end = dt.datetime.combine(d.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    return d.date().isoformat(), (end - d).total_seconds()


class Gateway:
    def __init__(self, *, name: str, backend: Backend, schema: InputSchema, keys: KeyStore, state: Any,
                 audit: Any, detector: Any = None, feedback: Any = None, version: str = "1") -> None:
        self.name, self.version = name, version
        self.backend, self.schema, self.keys = backend, schema, keys
        self.state, self.audit, self.detector, self.feedback = state, audit, detector, feedback
        self.metrics = Metrics()
        if hasattr(audit, "commits"):
            self.metrics.external["mlwarden_guard_audit_commits_total"] = (
                "Audit-log transactions (each one fsync); entries / commits is the group-commit batch.",
                lambda: audit.commits)
        self.accepting = True

    def key(self, presented: str | None, peer: str | None = None) -> KeyRecord:
        """Authenticate and charge the request to the key's rate limit: every route a key opens is metered
        (metadata and readiness too, which reach the upstream in proxy mode)."""
        key = self.keys.authenticate(presented, peer)
        self.meter(key)
        return key

    def meter(self, key: KeyRecord) -> None:
        ok, retry = self.state.take(f"rate:{key.id}", 1, key.quota.rate, key.quota.burst, time.time())
        if not ok:
            raise TooMany(f"rate limit of {key.quota.rate:g} requests/s (burst {key.quota.burst}) exceeded for "
                          f"API key '{key.name}'; retry after {math.ceil(retry)} s", retry_after=retry)

    def route(self, key: KeyRecord, model: str, version: str) -> None:
        """403 for a model the key may not query, 404 for one the guard does not serve."""
        if model == self.name and version in ("", self.version):
            key.require_model(model)
            return
        if model == self.name:
            raise NotFound(f"model '{model}' has no version '{version[:40]}' (it serves version {self.version})")
        raise NotFound(f"unknown model '{model[:60]}'")

    def model_metadata(self, key: KeyRecord) -> dict[str, Any]:
        return {"name": self.name, "versions": [self.version], "platform": f"mlwarden-guard/{self.backend.kind}",
                "inputs": self.schema.metadata(),
                "outputs": output.metadata(key.output, exposes_proba=self.backend.exposes_proba,
                                           classes=self.backend.classes)}

    def record(self, event: dict[str, Any]) -> int:
        """Append one entry to the audit log, synchronously; 503 when it cannot be written."""
        try:
            seq = int(self.audit.append(event))  # AuditLog serialises writers itself
        except Exception as e:  # noqa: BLE001 — a log we cannot write means we must not answer
            log.error("audit log append failed: %s", e)
            raise Unavailable("the audit log is unavailable; the request was not served") from None
        self.metrics.inc("mlwarden_guard_audit_entries_total")
        return seq

    def call(self, protocol: str, presented: str | None, model: str, version: str, peer: str,
             decode: Callable[[], InferCall]) -> InferAnswer:
        """One inference request end to end; raises :class:`GuardError` for every refusal."""
        event: dict[str, Any] = {"kind": "infer", "protocol": protocol, "peer": peer, "model": model[:128],
                                 "version": version[:40], "ts": time.time()}
        with self.recorded(protocol, event):
            return self._infer(event, presented, model, version, decode)

    @contextmanager
    def recorded(self, protocol: str, event: dict[str, Any]) -> Iterator[None]:
        """Run one request and log its outcome (status, code, error, time) whatever happens."""
        t0 = time.perf_counter()
        status, code = 200, "OK"
        try:
            yield
        except GuardError as e:
            status, code = e.status, e.grpc_code
            event["error"] = e.message
            raise
        except Exception:
            status, code = 500, "INTERNAL"
            event["error"] = "internal error"
            log.exception("%s failed", event.get("kind", "request"))
            raise
        finally:
            event["status"], event["code"] = status, code
            event["ms"] = round((time.perf_counter() - t0) * 1000, 3)
            self.finish(protocol, event)

    def finish(self, protocol: str, event: dict[str, Any]) -> None:
        self.record(event)
        self.metrics.inc("mlwarden_guard_requests_total", protocol=protocol, status=str(event["status"]))
        self.metrics.observe(protocol, event["ms"] / 1000)
        if access.isEnabledFor(logging.INFO):
            access.info("request", extra={"fields": {k: v for k, v in event.items() if k != "ts"}})

    def _infer(self, event: dict[str, Any], presented: str | None, model: str, version: str,
               decode: Callable[[], InferCall]) -> InferAnswer:
        key = self.keys.authenticate(presented, event["peer"])
        event["key"] = key.name
        self.route(key, model, version)
        self.meter(key)
        now = time.time()
        call = decode()
        event["request_id"] = call.id
        output.check_requested(key.output, call.outputs, exposes_proba=self.backend.exposes_proba, key=key.name)
        v = self.schema.validate(call)
        event["rows"] = v.rows
        event["input_sha256"] = hashlib.sha256(v.matrix.tobytes()).hexdigest()
        day, left = _day(now)
        ok, used = self.state.spend_budget(f"budget:{key.id}", day, v.rows, key.quota.daily)
        if not ok:
            raise TooMany(f"daily budget of {key.quota.daily} rows for API key '{key.name}' is spent "
                          f"({used} used, {v.rows} asked); it resets at 00:00 UTC", retry_after=left)
        degraded = False
        if self.detector is not None:
            d = self.detector.observe(key.id, v.matrix, self.state)
            if d.action != "allow":
                event["detection"] = {"action": d.action, "reason": d.reason, "score": round(float(d.score), 6)}
                self.metrics.inc("mlwarden_guard_detections_total", action=d.action)
            if d.action == "block":
                raise Forbidden(f"API key '{key.name}' is blocked: its queries look like an attack")
            if d.action == "throttle":
                raise TooMany(f"API key '{key.name}' is throttled: its queries look like an attack; "
                              f"retry after {THROTTLE_S:g} s", retry_after=THROTTLE_S)
            degraded = d.action == "degrade"
        want = output.needs_proba(key.output, call.outputs, exposes_proba=self.backend.exposes_proba, degraded=degraded)
        labels, proba = self.backend.predict(v.frame, proba=want)
        self.metrics.inc("mlwarden_guard_rows_total", v.rows)
        outs = output.shape(key.output, call.outputs, np.asarray(labels), proba, self.backend.classes, degraded=degraded)
        return InferAnswer(self.name, self.version, call.id, outs)

    def submit_feedback(self, protocol: str, presented: str | None, peer: str, doc: Any) -> dict[str, Any]:
        """Screen one labelled feedback batch; suspects go to quarantine, the rest to the accepted table."""
        event: dict[str, Any] = {"kind": "feedback", "protocol": protocol, "peer": peer, "ts": time.time()}
        with self.recorded(protocol, event):
            key = self.keys.authenticate(presented, peer)
            event["key"] = key.name
            model = doc.get("model_name", self.name) if isinstance(doc, dict) else self.name
            self.route(key, str(model), "")
            if not key.feedback:
                raise Forbidden(f"API key '{key.name}' may not post feedback")
            if self.feedback is None:
                raise NotFound("feedback is not enabled: the spec needs data.train and data.label")
            ok, retry = self.state.take(f"rate:{key.id}", 1, key.quota.rate, key.quota.burst, time.time())
            if not ok:
                raise TooMany(f"rate limit exceeded for API key '{key.name}'; retry after {math.ceil(retry)} s",
                              retry_after=retry)
            result = self.feedback.submit(key.name, doc)
            event.update({k: v for k, v in result.items() if k != "batch_rows"})
            return {"batch": result["batch"], "received": result["rows"]}

    def ready(self) -> bool:
        return self.accepting and self.backend.ready()


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        doc.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, default=str)
