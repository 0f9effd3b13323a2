"""Shared helper: run one format scanner over bytes and return what it reported."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from mlwarden.scan.base import Limits, ScanContext, ScanIssue, Where

Scan = Callable[..., list[ScanIssue]]


@pytest.fixture
def scan() -> Scan:
    def run(scanner, data: bytes, limits: Limits | None = None, ctx: ScanContext | None = None) -> list[ScanIssue]:
        ctx = ctx or ScanContext(policy=None, limits=limits)
        scanner(io.BytesIO(data), ctx, Where(path="model.bin"))
        return ctx.issues

    return run


def kinds(issues: list[ScanIssue]) -> set[str]:
    return {i.kind for i in issues}


def worst(issues: list[ScanIssue]) -> str | None:
    return max(issues, key=lambda i: i.severity.rank).severity.value if issues else None
