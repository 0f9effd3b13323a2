"""What a probe family returns: issues (one per rule that fired) and the figures behind them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..findings import Severity

FAMILIES: tuple[str, ...] = ("transport", "access", "disclosure", "inputs", "latency", "quotas")
"""Run order: the quota burst goes last, so a server that throttles it has answered everything else first."""


@dataclass(frozen=True, kw_only=True)
class Issue:
    """One weakness the probe saw; ``rule`` is stable (``endpoint.inputs.nan``) and tests assert on it."""

    rule: str
    severity: Severity
    title: str
    description: str
    remediation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    references: tuple[str, ...] = ()


@dataclass
class FamilyResult:
    """Issues and metrics of one family; ``skipped`` says why it could not look (no finding is not a pass then)."""

    issues: list[Issue] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""


@dataclass(frozen=True, kw_only=True)
class ProbeOptions:
    """Bounds of one probe: request budget and rate, per-request and overall time, and what to send."""

    key: str | None = None
    max_requests: int = 200
    rate: float = 20.0
    """Requests per second, at most (the quota burst included)."""
    timeout_s: float = 10.0
    """A request unanswered after this long counts as a hang."""
    time_limit_s: float = 180.0
    ca_file: str | None = None
    """Extra CA bundle (PEM) that the certificate check trusts besides the system store."""
    example: dict[str, Any] | None = None
    """A valid OIP v2 REST inference body, for servers whose metadata declares no inputs."""
    oversize_bytes: int = 4 << 20
    burst: int = 40
    """Requests of the quota burst (fewer when the budget is short)."""

    def __post_init__(self) -> None:
        if self.max_requests < 20:
            raise ValueError("--max-requests must be at least 20 (the probe needs that many to say anything)")
        if not 0 < self.rate <= 1000:
            raise ValueError("--rate must be between 0 and 1000 requests per second")
        if self.timeout_s <= 0 or self.time_limit_s <= 0:
            raise ValueError("timeouts must be positive")
