"""The audit log's entry format: canonical event JSON, the chain hash, heads, and the verify result.

Shared by the writer (``auditlog.py``) and the verifier (``auditlog_verify.py``); the format
itself is described in ``auditlog.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import MlwardenError

GENESIS = "0" * 64
FORMAT = "mlwarden.auditlog/1"
MAX_EVENT_BYTES = 1 << 20
MAX_PROBLEMS = 50


class AuditLogError(MlwardenError):
    """The audit log cannot be opened, is not an mlwarden audit log, or an event is unusable."""


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_log` found: ``ok`` only when ``problems`` is empty; ``head`` is the
    newest entry's ``(seq, hash)``, the anchor to record for the next verification."""

    ok: bool
    entries: int
    problems: list[str] = field(default_factory=list)
    head: tuple[int, str] = (0, GENESIS)


def _plain(value: Any) -> Any:
    """The event as plain JSON values; non-finite floats become strings, numpy scalars Python's."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise AuditLogError(f"audit event keys must be strings, got {type(k).__name__}")
            out[k] = _plain(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return _plain(item())
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return _plain(tolist())
    raise AuditLogError(f"audit event value of type {type(value).__name__} is not JSON")


def canonical(event: dict) -> str:
    """The one JSON text of an event: sorted keys, compact separators, UTF-8, no NaN."""
    if not isinstance(event, dict):
        raise AuditLogError(f"an audit event must be a dict, got {type(event).__name__}")
    return json.dumps(_plain(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def entry_hash(prev_hash: str, seq: int, ts: float, event: str, key: bytes | None) -> str:
    msg = f"{prev_hash}\n{seq}\n{float(ts)!r}\n{event}".encode("utf-8")
    if key is None:
        return hashlib.sha256(msg).hexdigest()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def mac_name(key: bytes | None) -> str:
    return "sha256" if key is None else "hmac-sha256"


def parse_head(text: str) -> tuple[int, str]:
    """``"SEQ:HASH"`` → ``(seq, hash)``; :class:`AuditLogError` when malformed."""
    seq, sep, digest = text.strip().partition(":")
    digest = digest.lower()
    if not sep or not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise AuditLogError(f"expected head as SEQ:HASH (e.g. 42:{'ab' * 32}), got {text!r}")
    return int(seq), digest


def format_head(head: tuple[int, str]) -> str:
    return f"{head[0]}:{head[1]}"
