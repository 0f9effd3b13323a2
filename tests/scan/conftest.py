"""Fixtures for the container and dispatch tests: a policy and a scan-a-file helper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlwarden.scan import FileScan, scan_path
from mlwarden.scan.base import Limits
from mlwarden.scan.policy import Policy


@pytest.fixture
def policy() -> Policy:
    return Policy()


@pytest.fixture
def scan_file(tmp_path: Path, policy: Policy) -> Callable[..., FileScan]:
    def run(name: str, data: bytes | None = None, limits: Limits | None = None) -> FileScan:
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        return scan_path(path, policy=policy, limits=limits)

    return run
