"""A real Redis for the guard's tests: Debian's ``redis-server`` on a free loopback port.

``make redis`` (a prerequisite of ``make test``) installs it; without the binary the tests that
use these fixtures skip with a message saying so. Import the fixtures into a test module or a
conftest::

    from tests.guard.redis_fixture import redis_server, redis_url  # noqa: F401

``redis_server`` (session) starts one server with persistence off (``--save '' --appendonly
no``), waits for PING (bounded), yields its base URL and kills it at the end. ``redis_url``
(per test) flushes database 0 and yields ``redis://127.0.0.1:PORT/0``, so tests never see each
other's keys.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(workdir: Path) -> tuple[subprocess.Popen, int]:
    """Start redis-server on a free loopback port; retry on a lost port race. Raises RuntimeError."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    last = ""
    for _ in range(3):
        port = free_port()
        log = workdir / f"redis-{port}.log"  # a file, not a pipe: a full pipe would stall the server
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
                 "--save", "", "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
                 "--loglevel", "warning"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if _ping(port):
                return proc, port
            time.sleep(0.05)
        stop_redis(proc)
        last = log.read_text(errors="replace")[-500:]
    raise RuntimeError(f"redis-server did not answer PING: {last}")


def stop_redis(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL ``redis://127.0.0.1:PORT`` of a private redis-server for this test session."""
    try:
        proc, port = start_redis(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError:
        pytest.skip("redis-server is not installed (run `make redis`, or "
                    "`apt-get install -y redis-server`)")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_redis(proc)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0``, flushed before the test."""
    import redis

    url = f"{redis_server}/0"
    client = redis.Redis.from_url(url, socket_timeout=5)
    client.flushdb()
    client.close()
    yield url
