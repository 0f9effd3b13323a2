"""The engine interface and the fold logic every engine shares.

An engine only decides *where* partitions are folded; *how* is :func:`fold_partition`
and :func:`merge_states`, the same code for every engine. Partial states merge in
partition order, so every engine gives the same result on the same data.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..registry import FoldCheck
from ..sources.datasets import Partition, iter_batches

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Failed:
    """The state of a check whose update raised: the audit goes on without it."""

    message: str


@dataclass
class Folded:
    """A check's merged state (or failure) and the seconds spent folding it."""

    state: Any
    seconds: float = 0.0


def fold_partition(checks: Sequence[FoldCheck], part: Partition) -> dict[str, Folded]:
    """Fold one partition into a fresh state of every check that reads its split."""
    mine = [c for c in checks if part.split in c.splits]
    out = {c.id: Folded(c.init()) for c in mine}
    if not mine:
        return out
    columns = _columns(mine, part.split)
    for batch in iter_batches(part, columns):
        for c in mine:
            folded = out[c.id]
            if isinstance(folded.state, Failed):
                continue
            t0 = time.perf_counter()
            try:
                folded.state = c.update(folded.state, batch)
            except Exception as e:  # a broken check must not stop the audit
                folded.state = Failed(f"{type(e).__name__}: {e}")
            folded.seconds += time.perf_counter() - t0
    return out


def merge_states(checks: Sequence[FoldCheck], parts: Iterable[dict[str, Folded]]) -> dict[str, Folded]:
    """Merge per-partition states, in partition order, into one state per check."""
    merged = {c.id: Folded(c.init()) for c in checks}
    by_id = {c.id: c for c in checks}
    for part in parts:
        for cid, folded in part.items():
            acc = merged[cid]
            acc.seconds += folded.seconds
            if isinstance(acc.state, Failed):
                continue
            if isinstance(folded.state, Failed):
                acc.state = folded.state
                continue
            try:
                acc.state = by_id[cid].merge(acc.state, folded.state)
            except Exception as e:
                acc.state = Failed(f"{type(e).__name__} while merging: {e}")
    return merged


def single_threaded(fn: Callable[..., R], *args: object) -> R:
    """``fn(*args)`` with one OpenMP/BLAS thread: for work run side by side in threads (an engine's
    ``map``, the audit's finalizers), where each library's default of a thread per core, times the
    tasks, oversubscribes the cores (boosting fits measured 7-13x slower so on 2 cores). OpenMP's
    thread count is per calling thread: the limit is set in the thread that does the work."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return fn(*args)


def _columns(checks: Sequence[FoldCheck], split: str) -> list[str] | None:
    wanted: set[str] = set()
    for c in checks:
        cols = c.columns(split)
        if cols is None:
            return None
        wanted.update(cols)
    return sorted(wanted)


class Engine(ABC):
    """Where folds and maps run. Use as a context manager: it may hold a cluster."""

    name: str

    @abstractmethod
    def fold(self, checks: Sequence[FoldCheck], partitions: Sequence[Partition]) -> dict[str, Folded]:
        """Fold every partition and merge, in partition order."""

    @abstractmethod
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Apply ``fn`` to every item, possibly in parallel; results in item order."""

    def close(self, *, abort: bool = False) -> None:
        """Release workers; ``abort`` (an interrupted or failed audit) stops them at once."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(abort=exc_type is not None)
