"""One probe's connection to the endpoint: every request goes through here, and is counted.

The session owns the three bounds a polite pen-test needs — a request budget, a rate (requests
are spaced at least ``1/rate`` apart) and an overall deadline — and raises :class:`Stopped` when
one is reached, so no family can loop past them. It speaks raw HTTP (httpx; certificates are
not verified here because :mod:`.transport` judges them separately) and raw gRPC (bytes in,
bytes out, so malformed messages can be sent), and keeps a bounded record of what came back
for :mod:`.disclosure`. Each reply is classified once: ``ok``, ``rejected`` (a clean 4xx or
INVALID_ARGUMENT-like status), ``unauthorized``, ``throttled``, ``server_error``, ``hang``,
``dropped``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ..sources.endpoint import EndpointUrl
from .base import ProbeOptions

BODY_CAP = 64 << 10
"""Bytes of an answer kept: enough to see a stack trace, never a whole oversize answer."""
RECORD = 400

_GRPC_REJECTED = {"INVALID_ARGUMENT", "OUT_OF_RANGE", "FAILED_PRECONDITION", "NOT_FOUND", "RESOURCE_EXHAUSTED",
                  "UNIMPLEMENTED", "ALREADY_EXISTS", "ABORTED", "CANCELLED"}
_GRPC_UNAUTH = {"UNAUTHENTICATED", "PERMISSION_DENIED"}


class Stopped(Exception):
    """The request budget or the deadline is spent; the family stops and says so."""


@dataclass(frozen=True)
class Reply:
    status: int | str
    """HTTP status, or the gRPC status name; 0 when nothing came back."""
    outcome: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    seconds: float
    what: str
    """Which request this answers (``GET /v2/models/m``, ``ModelInfer``), for evidence."""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def text(self, limit: int = 300) -> str:
        return " ".join(self.body[:limit * 2].decode("utf-8", "replace").split())[:limit]


def http_outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status in (401, 403, 407):
        return "unauthorized"
    if status == 429:
        return "throttled"
    if 300 <= status < 500:
        return "rejected"
    return "server_error"


def grpc_outcome(code: str) -> str:
    if code == "OK":
        return "ok"
    if code in _GRPC_UNAUTH:
        return "unauthorized"
    if code == "RESOURCE_EXHAUSTED":
        return "throttled"  # callers that sent an oversize message read it as a clean rejection
    if code == "DEADLINE_EXCEEDED":
        return "hang"
    if code == "UNAVAILABLE":
        return "dropped"
    return "rejected" if code in _GRPC_REJECTED else "server_error"


class ProbeSession:
    def __init__(self, target: EndpointUrl, options: ProbeOptions) -> None:
        self.target = target
        self.options = options
        self.sent = 0
        self.started = time.monotonic()
        self.deadline = self.started + options.time_limit_s
        self.replies: deque[Reply] = deque(maxlen=RECORD)
        self._next = 0.0
        self._http: httpx.Client | None = None
        self._channel: Any = None
        self.cache: dict[str, Any] = {}
        """Work shared between families (metadata, a request the server accepts)."""

    # --- bounds -----------------------------------------------------------------------------

    @property
    def left(self) -> int:
        return self.options.max_requests - self.sent

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def spend(self, n: int = 1) -> None:
        """Charge ``n`` requests and wait for the rate; :class:`Stopped` when a bound is reached."""
        if self.sent + n > self.options.max_requests:
            raise Stopped(f"request budget of {self.options.max_requests} spent")
        now = time.monotonic()
        if now > self.deadline:
            raise Stopped(f"time limit of {self.options.time_limit_s:g} s reached")
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + n / self.options.rate
        self.sent += n

    def auth_headers(self) -> dict[str, str]:
        # both spellings: gateways read either; the caller passed the key on purpose
        k = self.options.key
        return {"authorization": f"Bearer {k}", "x-api-key": k} if k else {}

    # --- HTTP -------------------------------------------------------------------------------

    @property
    def http_client(self) -> httpx.Client:
        if self._http is None:
            base = self.target.base if self.target.protocol == "rest" else f"http://{self.target.base}"
            self._http = httpx.Client(base_url=base, timeout=self.options.timeout_s, follow_redirects=False,
                                      trust_env=False, verify=False)
        return self._http

    def http(self, method: str, path: str, *, body: Any = None, content: bytes | None = None,
             headers: dict[str, str] | None = None, auth: bool = True, retry_throttled: bool = True) -> Reply:
        """One HTTP request (JSON ``body``, or raw ``content``), bounded in time and in what is read."""
        hdrs = {**(self.auth_headers() if auth else {}), **(headers or {})}
        if body is not None:
            import json

            content = json.dumps(body, allow_nan=True).encode()  # NaN/Infinity are deliberate test cases
        if content is not None:
            hdrs.setdefault("content-type", "application/json")
        reply = self._http_once(method, path, content, hdrs)
        if reply.outcome == "throttled" and retry_throttled and self.left > 0:
            time.sleep(_retry_after(reply.header("retry-after")))  # polite: honour the server's back-off once
            reply = self._http_once(method, path, content, hdrs)
        return reply

    def _http_once(self, method: str, path: str, content: bytes | None, hdrs: dict[str, str]) -> Reply:
        self.spend()
        what = f"{method} {path}"
        t0 = time.monotonic()
        stop = t0 + self.options.timeout_s
        try:
            with self.http_client.stream(method, path, content=content, headers=hdrs) as r:
                buf = bytearray()
                for chunk in r.iter_bytes():
                    if len(buf) < BODY_CAP:
                        buf += chunk[:BODY_CAP - len(buf)]
                    if time.monotonic() > stop:  # a server dripping bytes is a hang too
                        raise httpx.ReadTimeout("deadline")
                reply = Reply(r.status_code, http_outcome(r.status_code),
                              tuple((k.lower(), v) for k, v in r.headers.items()), bytes(buf),
                              time.monotonic() - t0, what)
        except httpx.TimeoutException:
            reply = Reply(0, "hang", (), b"", time.monotonic() - t0, what)
        except httpx.HTTPError as e:
            reply = Reply(0, "dropped", (), str(e).encode()[:300], time.monotonic() - t0, what)
            self.http_client.close()  # pooled connections to a server that just reset one may be dead too
            self._http = None
        self.replies.append(reply)
        return reply

    # --- gRPC -------------------------------------------------------------------------------

    @property
    def channel(self) -> Any:
        if self._channel is None:
            import grpc

            opts = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 64 << 20),
                    ("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]
            if self.target.tls:
                roots = None
                if self.options.ca_file:
                    with open(self.options.ca_file, "rb") as f:
                        roots = f.read()
                self._channel = grpc.secure_channel(self.target.base, grpc.ssl_channel_credentials(roots), options=opts)
            else:
                self._channel = grpc.insecure_channel(self.target.base, options=opts)
        return self._channel

    def grpc(self, method: str, request: bytes, *, auth: bool = True) -> Reply:
        """One unary call of ``method`` (``/package.Service/Rpc``) with raw request bytes."""
        import grpc

        self.spend()
        call = self.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        meta = tuple(self.auth_headers().items()) if auth else ()
        t0 = time.monotonic()
        name = method.rsplit("/", 1)[-1]
        try:
            resp, c = call.with_call(request, timeout=self.options.timeout_s, metadata=meta)
            headers = tuple((k, str(v)) for k, v in (*c.initial_metadata(), *c.trailing_metadata()))
            reply = Reply("OK", "ok", headers, bytes(resp)[:BODY_CAP], time.monotonic() - t0, name)
        except grpc.RpcError as e:
            reply = _grpc_error(e, time.monotonic() - t0, name)
        self.replies.append(reply)
        return reply

    def grpc_stream(self, method: str, requests: list[bytes], *, auth: bool = True) -> Reply:
        """A bidirectional-stream call with a few raw requests; the first answer (reflection uses it)."""
        import grpc

        self.spend()
        call = self.channel.stream_stream(method, request_serializer=None, response_deserializer=None)
        meta = tuple(self.auth_headers().items()) if auth else ()
        t0 = time.monotonic()
        name = method.rsplit("/", 1)[-1]
        try:
            it: Iterator[bytes] = call(iter(requests), timeout=self.options.timeout_s, metadata=meta)
            first = next(it, b"")
            it.cancel()  # type: ignore[attr-defined]
            reply = Reply("OK", "ok", (), bytes(first)[:BODY_CAP], time.monotonic() - t0, name)
        except grpc.RpcError as e:
            reply = _grpc_error(e, time.monotonic() - t0, name)
        self.replies.append(reply)
        return reply

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._channel is not None:
            self._channel.close()


def _grpc_error(e: Any, seconds: float, name: str) -> Reply:
    code = e.code().name if hasattr(e, "code") and e.code() is not None else "UNKNOWN"
    details = str(e.details() if hasattr(e, "details") else e) or ""
    meta = []
    for getter in ("initial_metadata", "trailing_metadata"):
        try:
            meta += [(k, str(v)) for k, v in (getattr(e, getter)() or ())]
        except Exception:  # noqa: BLE001, S110 — an error object without metadata is still an answer
            pass
    return Reply(code, grpc_outcome(code), tuple(meta), details.encode()[:BODY_CAP], seconds, name)


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.05), 2.0)
    except ValueError:
        return 1.0
