"""``python -m mlwarden.guard``: run the gateway without the Typer CLI (tests, benchmarks, containers).

Takes the options of ``mlwarden guard`` and calls the same :func:`mlwarden.cli_guard.guard_command`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli_guard import guard_command
from ..errors import MlwardenError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlwarden.guard", description="Run the mlwarden guard.")
    p.add_argument("--spec", type=Path, default=Path("mlwarden.yaml"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--grpc-port", type=int, default=8081, help="-1 disables gRPC")
    p.add_argument("--keys", type=Path, default=Path("mlwarden-keys.json"))
    p.add_argument("--state", default=None)
    p.add_argument("--audit-log", type=Path, default=Path("mlwarden-guard-audit.db"))
    p.add_argument("--audit-key-file", type=Path, default=None)
    p.add_argument("--feedback-db", type=Path, default=Path("mlwarden-feedback.db"))
    p.add_argument("--tls-cert", type=Path, default=None)
    p.add_argument("--tls-key", type=Path, default=None)
    p.add_argument("--tls-client-ca", type=Path, default=None)
    p.add_argument("--upstream", default=None, help="proxy this OIP v2 endpoint (its key: $MLWARDEN_UPSTREAM_KEY)")
    p.add_argument("--insecure-upstream", action="store_true", help="allow sending the upstream key without TLS")
    p.add_argument("--model-name", default=None)
    p.add_argument("--max-rows", type=int, default=1000)
    p.add_argument("--log-level", default="info")
    p.add_argument("--no-detect", action="store_true", help="serve without the attack detector")
    a = p.parse_args(argv)
    try:
        return guard_command(a.spec, host=a.host, port=a.port, grpc_port=None if a.grpc_port < 0 else a.grpc_port,
                             keys=a.keys, state=a.state, audit_log=a.audit_log, audit_key_file=a.audit_key_file,
                             feedback_db=a.feedback_db, tls_cert=a.tls_cert, tls_key=a.tls_key,
                             tls_client_ca=a.tls_client_ca, upstream=a.upstream,
                             upstream_key=os.environ.get("MLWARDEN_UPSTREAM_KEY"), insecure_upstream=a.insecure_upstream, model_name=a.model_name,
                             max_rows=a.max_rows, detect=not a.no_detect, log_level=a.log_level)
    except MlwardenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
