"""The ``mlwarden guard`` commands as plain functions; ``cli.py`` wraps them in Typer.

Each returns the exit code and raises :class:`~mlwarden.errors.MlwardenError` (exit 2, one
line) for bad input; nothing here imports the server packages until a command needs them.

- ``guard_command(spec, ...)``: run the gateway (REST on ``port``, gRPC on ``grpc_port``).
- ``keys_create(keys, name, ...)``: add an API key, print it once.
- ``verify_log_command(db, expect_head, key_file)``: check the audit log's hash chain; 0 intact,
  1 tampered (it lives in :mod:`.cli_guard_log`, beside the audit log's other code, and is
  re-exported here so the three guard commands come from one module).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import TextIO

from .cli_guard_log import verify_log_command
from .errors import MlwardenError

__all__ = ["guard_command", "keys_create", "verify_log_command"]


def _port_free(host: str, port: int, what: str) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise MlwardenError(f"cannot listen for {what} on {host}:{port} ({e.strerror or e}); pick another port") from None


def guard_command(spec: Path = Path("mlwarden.yaml"), *, host: str = "127.0.0.1", port: int = 8080,
                  grpc_port: int | None = 8081, keys: Path = Path("mlwarden-keys.json"), state: str | None = None,
                  audit_log: Path = Path("mlwarden-guard-audit.db"), audit_key_file: Path | None = None,
                  feedback_db: Path = Path("mlwarden-feedback.db"), tls_cert: Path | None = None,
                  tls_key: Path | None = None, tls_client_ca: Path | None = None, upstream: str | None = None,
                  upstream_key: str | None = None, insecure_upstream: bool = False, model_name: str | None = None,
                  max_rows: int = 1000, max_body: int = 4 << 20, detect: bool = True, log_level: str = "info") -> int:
    """Serve the spec's model (or proxy ``upstream``) behind the guard until SIGTERM/SIGINT."""
    from .guard.server import GuardOptions, serve

    if port == grpc_port:
        raise MlwardenError(f"--port and --grpc-port are both {port}; give them different ports")
    if max_rows < 1 or max_body < 1024:
        raise MlwardenError("--max-rows must be at least 1 and --max-body at least 1024 bytes")
    _port_free(host, port, "REST")
    if grpc_port is not None:
        _port_free(host, grpc_port, "gRPC")
    return serve(GuardOptions(spec=spec, host=host, port=port, grpc_port=grpc_port, keys=keys, state=state,
                              audit_log=audit_log, audit_key_file=audit_key_file, feedback_db=feedback_db,
                              tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca, upstream=upstream,
                              upstream_key=upstream_key, insecure_upstream=insecure_upstream,
                              model_name=model_name, max_rows=max_rows, max_body=max_body, detect=detect,
                              log_level=log_level))


def keys_create(keys: Path, name: str, *, models: list[str] | None = None, output: str = "label", top_k: int = 1,
                decimals: int | None = 2, rate: float = 10.0, burst: int = 20, daily: int = 10_000,
                feedback: bool = False, metrics: bool = False, out: TextIO | None = None) -> int:
    """Add a key to ``keys`` and print it (the only time it is shown)."""
    from .guard.keys import OutputPolicy, Quota, create_key

    if output not in ("label", "topk", "proba"):
        raise MlwardenError(f"--output {output!r}: choose label, topk or proba")
    key = create_key(keys, name, models=tuple(models or ["*"]),
                     output=OutputPolicy(mode=output, top_k=top_k, decimals=decimals),  # type: ignore[arg-type]
                     quota=Quota(rate=rate, burst=burst, daily=daily), feedback=feedback, metrics=metrics)
    print(key, file=out or sys.stdout)
    return 0
