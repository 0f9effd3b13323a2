"""Equivalence-class counts of ``data.privacy.k_anonymity``: a mergeable, capped count per class.

Classes are 64-bit hashes of the quasi-identifier values; counts fold lazily (pending arrays
merged by ``np.unique`` once they outgrow the compacted ones), so memory stays at 16 bytes a
class (plus 8 a column where the per-column value hashes are kept) and the outcome does not
depend on batching or merge order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
            keys, first, counts = np.unique(hashes, return_index=True, return_counts=True)
            part = parts[first] if parts is not None and self.width else np.empty((keys.size, 0), np.uint64)
            self._push(keys, counts.astype(np.int64), part)

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
        self.keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        self.counts = np.bincount(inverse.ravel(), weights=counts, minlength=self.keys.size).astype(np.int64)
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
