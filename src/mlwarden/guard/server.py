"""Assemble the guard from its options and run REST and gRPC until SIGTERM, then drain.

:func:`build` opens, in order, the spec, the training sample, the model (safe-loaded, or the
upstream), the input schema, the keys, the state (in-process or Redis), the audit log, the
detector and the feedback sink — any failure is one :class:`MlwardenError` line before a
port is bound. :func:`serve` runs uvicorn in the main thread and grpcio beside it. On
SIGTERM/SIGINT both stop accepting at once (readiness turns false), requests in flight
finish (uvicorn's and gRPC's grace), then the audit log, state and sinks close, so every
answered request is in the log.
"""

from __future__ import annotations

import logging
import signal
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MlwardenError
from .errors import GuardConfigError
from .gateway import Gateway, JsonFormatter

log = logging.getLogger("mlwarden.guard")


@dataclass(frozen=True, kw_only=True)
class GuardOptions:
    spec: Path
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int | None = 8081
    keys: Path = Path("mlwarden-keys.json")
    state: str | None = None
    audit_log: Path = Path("mlwarden-guard-audit.db")
    audit_key_file: Path | None = None
    feedback_db: Path = Path("mlwarden-feedback.db")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    upstream: str | None = None
    upstream_key: str | None = None
    insecure_upstream: bool = False
    model_name: str | None = None
    max_rows: int = 1000
    max_body: int = 4 << 20
    workers: int = 16
    grace_s: float = 10.0
    log_level: str = "info"
    detect: bool = True
    detector_policy: Any = field(default=None)


@dataclass
class Built:
    gateway: Gateway
    closers: list[Any]


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def _detector(schema: Any, policy: Any, train: Any) -> Any:
    from .detect import Detector

    names = [n for n in schema.names if train is not None and n in train.columns]
    # the training rows are the uniform-query detector's picture of real inputs (it keeps a bounded sample)
    reference = train[names] if train is not None and len(names) == len(schema.names) else None
    return Detector(schema, policy, reference=reference)


def build(opts: GuardOptions) -> Built:
    from ..spec import load_spec
    from .auditlog import AuditLog
    from .backend import open_backend, train_sample
    from .keys import KeyStore
    from .schema import InputSchema
    from .state import open_state

    if not opts.keys.exists():
        raise GuardConfigError(f"{opts.keys}: no keys file; create a key with "
                               f"`mlwarden guard keys create --keys {opts.keys} --name NAME`")
    if bool(opts.tls_cert) != bool(opts.tls_key) or (opts.tls_client_ca and not opts.tls_cert):
        raise GuardConfigError("TLS needs both --tls-cert and --tls-key (and --tls-client-ca only with them)")
    spec = load_spec(opts.spec)
    train = train_sample(spec)
    backend = open_backend(spec, train, upstream=opts.upstream, upstream_key=opts.upstream_key,
                           insecure_upstream=opts.insecure_upstream)
    closers: list[Any] = [backend]
    schema = InputSchema(backend.schema, spec.constraints, max_rows=opts.max_rows)
    keys = KeyStore(opts.keys)
    state = open_state(opts.state)
    closers.append(state)
    audit_key = opts.audit_key_file.read_bytes().strip() if opts.audit_key_file else None
    audit = AuditLog(opts.audit_log, key=audit_key)
    closers.append(audit)
    feedback = None
    if train is not None and spec.data.label and spec.data.label in train.columns:
        from .feedback import FeedbackSink

        feedback = FeedbackSink(spec, train, schema, backend.classes, opts.feedback_db)
        closers.insert(0, feedback)
    detector = _detector(backend.schema, opts.detector_policy, train) if opts.detect else None
    gw = Gateway(name=opts.model_name or spec.name, backend=backend, schema=schema, keys=keys, state=state,
                 audit=audit, detector=detector, feedback=feedback)
    return Built(gw, closers)


def _ssl_kwargs(opts: GuardOptions) -> dict[str, Any]:
    if not opts.tls_cert:
        return {}
    kw: dict[str, Any] = {"ssl_certfile": str(opts.tls_cert), "ssl_keyfile": str(opts.tls_key)}
    if opts.tls_client_ca:
        kw.update(ssl_ca_certs=str(opts.tls_client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return kw


def serve(opts: GuardOptions) -> int:
    """Run the guard until a signal; returns the exit code."""
    import uvicorn

    from .app import build_app

    setup_logging(opts.log_level)
    built = build(opts)
    gw = built.gateway
    grpc_server = None
    if opts.grpc_port is not None:
        from .grpc_server import build_server, tls_credentials

        creds = (tls_credentials(str(opts.tls_cert), str(opts.tls_key), str(opts.tls_client_ca) if opts.tls_client_ca
                                 else None) if opts.tls_cert else None)
        grpc_server, _ = build_server(gw, opts.host, opts.grpc_port, workers=opts.workers, max_bytes=opts.max_body,
                                      credentials=creds)
    stopping: list[Any] = []

    def stop_accepting() -> None:
        if not stopping:
            gw.accepting = False
            stopping.append(grpc_server.stop(opts.grace_s) if grpc_server else None)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            stop_accepting()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(build_app(gw, max_body=opts.max_body), host=opts.host, port=opts.port, log_config=None,
                            access_log=False, server_header=False, lifespan="off", loop="asyncio", http="h11",
                            timeout_graceful_shutdown=int(opts.grace_s), **_ssl_kwargs(opts))
    server = Server(config)
    # uvicorn re-raises the signal it handled once it has drained; this makes that a no-op so
    # the audit log and state are closed below instead of the process dying mid-cleanup
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    if grpc_server is not None:
        grpc_server.start()
    log.info("guard listening", extra={"fields": {"model": gw.name, "rest": f"{opts.host}:{opts.port}",
                                                  "grpc": f"{opts.host}:{opts.grpc_port}" if grpc_server else None,
                                                  "backend": gw.backend.kind, "tls": bool(opts.tls_cert),
                                                  "mtls": bool(opts.tls_client_ca)}})
    try:
        server.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the drain and the log's close short
        stop_accepting()
        if stopping and stopping[0] is not None:
            stopping[0].wait(opts.grace_s + 1)
        for c in built.closers:
            try:
                c.close()
            except MlwardenError as e:
                log.error("closing %s failed: %s", type(c).__name__, e)
        log.info("guard stopped")
    return 0 if server.started else 2
