"""The scanner's shared vocabulary: what a scan finds, the limits it keeps, where it is.

Every format scanner (pickle, zip, tar, numpy, safetensors, …) reports through a
:class:`ScanContext`: it never raises on hostile input — a file it cannot parse is itself
an issue, so a scanner error can never read as "clean". Nothing here imports, unpickles
or otherwise executes the content it scans.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..findings import Severity


@dataclass(frozen=True, kw_only=True)
class Where:
    """A place inside a scanned file: the outer path plus the chain of container members."""

    path: str
    members: tuple[str, ...] = ()

    def child(self, member: str) -> Where:
        return Where(path=self.path, members=(*self.members, member))

    @property
    def member(self) -> str | None:
        return "!/".join(self.members) if self.members else None

    @property
    def depth(self) -> int:
        return len(self.members)

    def __str__(self) -> str:
        return f"{self.path}!/{self.member}" if self.members else self.path


@dataclass(frozen=True, kw_only=True)
class ScanIssue:
    """One thing a scan found. ``kind`` is a stable dotted code (e.g. ``pickle.global.dangerous``)."""

    kind: str
    severity: Severity
    message: str
    where: Where
    offset: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    remediation: str = ""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Resource limits; hitting one is an issue (the rest of the file stays unscanned)."""

    max_opcodes: int = 50_000_000
    max_memo: int = 5_000_000
    max_stack: int = 5_000_000
    max_depth: int = 8  # container nesting
    max_seconds: float = 120.0  # per top-level file
    max_members: int = 100_000  # per archive
    max_member_bytes: int = 8 << 30  # uncompressed size of one member we would inspect
    max_total_bytes: int = 32 << 30  # uncompressed bytes inspected per top-level file
    max_ratio: float = 200.0  # compression ratio above which a member is a bomb suspect …
    bomb_min_bytes: int = 1 << 30  # … once its output passes this: sparse weights reach 1000:1 legitimately
    max_header_bytes: int = 100 << 20  # safetensors / gguf / json headers
    spool_bytes: int = 16 << 20  # nested members above this spill to a temp file


class ScanContext:
    """Collects issues and enforces limits while one top-level file is scanned."""

    def __init__(self, *, policy: Any, limits: Limits | None = None) -> None:
        self.policy = policy
        self.limits = limits or Limits()
        self.issues: list[ScanIssue] = []
        self.formats: dict[str, str] = {}  # str(where) -> detected format
        self.globals: dict[str, set[str]] = {}  # str(where) -> "module.name" imported by pickles
        self.bytes_inspected = 0
        self._deadline = time.monotonic() + self.limits.max_seconds

    def add(self, issue: ScanIssue) -> None:
        self.issues.append(issue)

    def out_of_time(self) -> bool:
        return time.monotonic() > self._deadline
