"""The scanner's shared vocabulary: what a scan finds, the limits it keeps, where it is.

Every format scanner (pickle, zip, tar, numpy, safetensors, …) reports through a
:class:`ScanContext`: it never raises on hostile input — a file it cannot parse is itself
an issue, so a scanner error can never read as "clean". The scanner fails closed: wherever
it stops before the end of what a loader would read (a limit, a parse error, a region two
readers may read differently) the issue is HIGH (:meth:`ScanContext.incomplete`). Nothing here imports, unpickles
or otherwise executes the content it scans.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
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


NOT_FULLY_SCANNED = "not fully scanned: a loader may execute what was not seen"

# Kinds that mean the scan stopped before the end of what a loader reads, raised by
# scanners that report them at a lower severity of their own (see ScanContext.add).
FAIL_CLOSED_KINDS = frozenset({
    "numpy.parse_error", "numpy.truncated", "torch.legacy_parse_error",
})


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Resource limits, each far beyond what a real model needs.

    Hitting one leaves part of the file unscanned, so it is a HIGH issue ("not fully
    scanned: a loader may execute what was not seen") and ``mlwarden scan`` exits 1.
    The defaults and why they are safe for real models:

    * ``max_opcodes`` 50M, ``max_memo``/``max_stack`` 5M: a 1 GB scikit-learn forest
      pickle runs ~10M opcodes; weights travel as raw bytes, not opcodes.
    * ``max_depth`` 8 containers nested (a .tar.gz of a zip of a pickle is 3).
    * ``max_seconds`` 120 per top-level file: tensor data is skipped, not read.
    * ``max_members`` 2M per archive: the largest sharded checkpoints hold ~100k
      members; an empty member costs a few microseconds, so this stays cheap.
    * ``max_member_bytes`` 64 GiB and ``max_total_bytes`` 256 GiB decompressed.
    * ``max_ratio`` 200:1 once more than ``bomb_min_bytes`` (1 GiB) came out: sparse
      weights compress to ~1000:1 only in small files.
    * ``max_header_bytes`` 100,000,000: the safetensors library's own header cap;
      ``max_json_tokens`` 4M containers and commas in one JSON header (a safetensors
      header spends ~8 per tensor, so ~500k tensors; real shards hold a few thousand),
      which keeps parsing a hostile header within a few hundred MB of memory.
    """

    max_opcodes: int = 50_000_000
    max_memo: int = 5_000_000
    max_stack: int = 5_000_000
    max_depth: int = 8  # container nesting
    max_seconds: float = 120.0  # per top-level file
    max_members: int = 2_000_000  # per archive
    max_member_bytes: int = 64 << 30  # uncompressed size of one member we would inspect
    max_total_bytes: int = 256 << 30  # uncompressed bytes inspected per top-level file
    max_ratio: float = 200.0  # compression ratio above which a member is a bomb suspect …
    bomb_min_bytes: int = 1 << 30  # … once its output passes this: sparse weights reach 1000:1 legitimately
    max_header_bytes: int = 100_000_000  # safetensors / gguf / json headers
    max_json_tokens: int = 4_000_000  # '[', '{' and ',' in one JSON header
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
        if issue.kind in FAIL_CLOSED_KINDS and issue.severity.rank < Severity.HIGH.rank:
            # fail closed: a scan that stopped early must not read as "probably fine"
            issue = replace(issue, severity=Severity.HIGH,
                            message=f"{issue.message} ({NOT_FULLY_SCANNED})")
        self.issues.append(issue)

    def incomplete(self, kind: str, where: Where, why: str, *, remediation: str = "",
                   offset: int | None = None, **detail: Any) -> None:
        """Report that the scan stopped before the end of what a loader reads: always HIGH."""
        self.add(ScanIssue(kind=kind, severity=Severity.HIGH, where=where, offset=offset,
                           message=f"{why}; {NOT_FULLY_SCANNED}", detail=detail,
                           remediation=remediation or "Treat the file as unvetted: do not load it "
                           "unless its source is trusted; raise the scan limits if it is."))

    def out_of_time(self) -> bool:
        return time.monotonic() > self._deadline
