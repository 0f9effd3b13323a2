"""Servers the probe is tested against: a naive one (REST plain + TLS, gRPC), a hardened one, and MLServer.

All listen on free loopback ports, start in the fixture and stop at its end. The real MLServer
fixture is shared with tests/sources (imported here, so it starts only for the tests that use it).
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.probe import certs, grpc_fixture, rest_fixture
from tests.mlserver_fixture import free_port  # noqa: F401 — mlserver itself is registered in tests/conftest.py


@dataclass(frozen=True)
class Naive:
    http: str
    https: str
    grpc: str
    throttling: str
    """Naive, plus a bare CORS wildcard and 429s without Retry-After."""


@dataclass(frozen=True)
class Hardened:
    https: str
    ca: Path
    key: str


def _stop(*servers) -> None:
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def naive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Naive]:
    cert, key = certs.bad_cert(tmp_path_factory.mktemp("naive-tls"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1  # the planted weakness: legacy TLS accepted
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    plain = rest_fixture.serve(rest_fixture.Naive)
    tls = rest_fixture.serve(rest_fixture.Naive, ctx)
    throttling = rest_fixture.serve(rest_fixture.Throttling)
    grpc_server, grpc_port = grpc_fixture.serve()
    try:
        yield Naive(f"http://127.0.0.1:{plain[0].server_port}/v2/models/loan",
                    f"https://127.0.0.1:{tls[0].server_port}/v2/models/loan",
                    f"grpc://127.0.0.1:{grpc_port}/loan",
                    f"http://127.0.0.1:{throttling[0].server_port}/v2/models/loan")
    finally:
        grpc_server.stop(grace=None)
        _stop(plain, tls, throttling)


@pytest.fixture(scope="session")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hardened]:
    ca, cert, key = certs.good_chain(tmp_path_factory.mktemp("hardened-tls"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    server = rest_fixture.serve(rest_fixture.Hardened, ctx)
    try:
        yield Hardened(f"https://127.0.0.1:{server[0].server_port}/v2/models/loan", ca, rest_fixture.KEY)
    finally:
        _stop(server)
