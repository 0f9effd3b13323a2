"""Equivalence-class counts of ``data.privacy.k_anonymity``: a mergeable, capped count per class.

Classes are 64-bit hashes of the quasi-identifier values; counts fold lazily (pending arrays
merged by a sort once they outgrow the compacted ones), so memory stays at 16 bytes a
class (plus 8 a column where the per-column value hashes are kept) and the outcome does not
depend on batching or merge order. The full combination, whose classes grow with the rows,
is a :class:`FullClasses` instead: the same records in a store that spills to disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.keyruns import Columns, KeyRuns
from .kanon_risk import population_sums


@dataclass
class ClassCounts:
    """Counts per equivalence class (by hash), compacted lazily, capped at ``cap`` classes.

    With ``width`` > 0 each class also keeps its ``width`` per-column value hashes (``parts``),
    so the population model can look up each value's share (8 more bytes a column)."""

    cap: int
    width: int = 0
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    parts: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.uint64))
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    pending_rows: int = 0
    over: bool = False

    def __post_init__(self) -> None:
        if not self.parts.size:
            self.parts = np.empty((0, self.width), np.uint64)

    def add(self, hashes: np.ndarray, parts: np.ndarray | None = None) -> None:
        if not self.over:
            keys, first, counts = _group(hashes, np.ones(hashes.size, np.int64))
            part = parts[first] if parts is not None and self.width else np.empty((keys.size, 0), np.uint64)
            self._push(keys, counts, part)

    def absorb(self, other: ClassCounts) -> None:
        if self.over or other.over:
            self._overflow()
            return
        for keys, counts, parts in [(other.keys, other.counts, other.parts), *other.pending]:
            self._push(keys, counts, parts)

    def compact(self) -> None:
        """Fold pending counts in. The class count only grows with data, so going over the cap
        here means the whole data is over it too: the outcome doesn't depend on batching."""
        if self.over or not self.pending:
            return
        keys = np.concatenate([self.keys] + [k for k, _, _ in self.pending])
        counts = np.concatenate([self.counts] + [c for _, c, _ in self.pending])
        parts = np.concatenate([self.parts] + [p for _, _, p in self.pending])
        self.keys, first, self.counts = _group(keys, counts)
        self.parts = parts[first]
        self.pending, self.pending_rows = [], 0
        if self.keys.size > self.cap:
            self._overflow()

    def _push(self, keys: np.ndarray, counts: np.ndarray, parts: np.ndarray) -> None:
        self.pending.append((keys, counts, parts))
        self.pending_rows += keys.size
        if self.pending_rows > max(self.keys.size, 1 << 18):
            self.compact()

    def _overflow(self) -> None:
        self.over = True
        self.keys, self.counts, self.pending, self.pending_rows = np.empty(0, np.uint64), np.empty(0, np.int64), [], 0
        self.parts = np.empty((0, self.width), np.uint64)


def _group(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct keys sorted, index of a record of each, summed counts). Any record of a class will
    do (its value hashes are the same), so an unstable sort serves: a third of ``np.unique``'s
    stable one with ``return_index``."""
    order = np.argsort(keys)
    ks = keys[order]
    start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]]) if ks.size else np.empty(0, np.int64)
    summed = np.add.reduceat(counts[order], start) if start.size else counts[:0]
    return ks[start], order[start], summed.astype(np.int64)


def reduce_classes(c: Columns) -> Columns:
    """One record per class hash, sorted by it: row counts summed, the value hashes of its first record
    (every record of a class has the same ones)."""
    _, first, cnt = _group(c["key"], c["cnt"])
    out = {n: a[first] for n, a in c.items() if n != "cnt"}
    out["cnt"] = cnt.astype(np.uint32)
    return out


@dataclass
class FullClasses:
    """Counts per class of the full quasi-identifier combination, with each class's ``width`` value
    hashes (for the population model): 12 + 8·width bytes a class, in a :class:`KeyRuns` that spills
    to disk past its limit. The cap (how many classes are counted exactly) is applied when the
    classes are read, on the union, so the outcome doesn't depend on batching either."""

    width: int
    limit: int | None = None  # bytes held in memory before spilling (None: the KeyRuns default)
    runs: KeyRuns = field(default_factory=lambda: KeyRuns(reduce_classes))

    def __post_init__(self) -> None:
        self.runs.limit = self.limit

    def add(self, hashes: np.ndarray, parts: np.ndarray | None = None) -> None:
        cols: Columns = {"key": hashes, "cnt": np.ones(hashes.size, np.uint32)}
        if parts is not None:
            cols.update({f"p{j}": np.ascontiguousarray(parts[:, j]) for j in range(self.width)})
        self.runs.add(cols)

    def absorb(self, other: FullClasses) -> None:
        self.runs.merge(other.runs)

    def buckets(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(class hashes sorted, counts, value hashes: classes × width), a key bucket at a time."""
        for c in self.runs.buckets():
            parts = np.column_stack([c[f"p{j}"] for j in range(self.width)]) if self.width else \
                np.empty((c["key"].size, 0), np.uint64)
            yield c["key"], c["cnt"].astype(np.int64), parts

    def stats(self, marginals: list[tuple[np.ndarray, np.ndarray]] | None, sample: list[int], n: int,
              population: int, thresholds: tuple[int, ...]) -> dict[str, Any]:
        """Classes, k, unique rows, rows in classes under each threshold, the population sums
        (:func:`~.kanon_risk.population_sums`; not with ``marginals`` None) and the class size of
        each ``sample`` hash, over every class, read a key bucket at a time."""
        wanted = np.unique(np.array(sample, dtype=np.uint64))
        out: dict[str, Any] = {"classes": 0, "k": 0, "unique_rows": 0, "lt": dict.fromkeys(thresholds, 0),
                               "population": (0.0, 0.0), "sample_counts": {}}
        for keys, c, parts in self.buckets():
            if not c.size:
                continue
            out["k"] = int(c.min()) if not out["classes"] else min(out["k"], int(c.min()))
            out["classes"] += int(c.size)
            out["unique_rows"] += int(c[c == 1].sum())
            for k in thresholds:
                out["lt"][k] += int(c[c < k].sum())
            if n and marginals is not None:
                u, s = population_sums(c, parts, marginals, n, population)
                out["population"] = (out["population"][0] + u, out["population"][1] + s)
            at = np.clip(np.searchsorted(keys, wanted), 0, keys.size - 1)
            hit = keys[at] == wanted
            out["sample_counts"].update(zip(wanted[hit].tolist(), c[at[hit]].tolist()))
        return out

    def close(self) -> None:
        self.runs.close()
