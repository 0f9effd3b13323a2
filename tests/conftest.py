"""Shared fixtures: the demo pipeline (built once per session) and small spec helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

try:  # property tests are reproducible in CI: derandomized, no example database, no deadline
    from hypothesis import settings

    settings.register_profile("mlwarden", derandomize=True, database=None, deadline=None)
    settings.load_profile("mlwarden")
except ImportError:  # hypothesis is a dev extra
    pass

from tests.mlserver_fixture import mlserver  # noqa: E402,F401 — one real OIP v2 server for every folder


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlwarden.demo import build_demo

    root = tmp_path_factory.mktemp("demo")
    build_demo(root)
    return root


@pytest.fixture(scope="session")
def demo_report(demo_dir: Path):
    from mlwarden.audit import run_audit
    from mlwarden.spec import load_spec

    return run_audit(load_spec(demo_dir / "mlwarden.yaml"))


@pytest.fixture
def make_spec(tmp_path: Path):
    """Write a spec file (YAML text) into tmp_path and return its path."""

    def _make(text: str, name: str = "mlwarden.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return p

    return _make
