"""Per-row numeric columns of a fold state, kept in memory up to a limit and spilled to disk past it.

Some checks need a few bytes per row to answer (a hash, a signature): that is the one
state that grows with the data. :class:`RowStore` holds it as chunks of named 1-D numpy
columns tagged with the offset of their first row in the split. Merging appends chunks;
once the chunks held in memory pass ``limit`` bytes, the in-memory chunks of each split are
written to a temporary folder as one ``.npy`` file per column (plain arrays, never
pickles) and dropped from memory. ``column(split, name)`` reads one column back whole, in
row order, so a finalize step touches one column at a time: its peak memory is a few
columns, not the table of them; ``take(split, name, rows)`` reads only the rows asked for.

Spilling happens only when states merge (in the process that finalizes); the partial
states that workers send back stay small and in memory. Object columns (string ids) are
never spilled.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPILL_BYTES = 256 << 20


@dataclass
class Chunk:
    offset: int
    rows: int
    cols: dict[str, np.ndarray]  # name → (rows,) array
    spilled: Path | None = None  # a segment folder: the numeric columns are there, not in ``cols``


@dataclass
class RowStore:
    limit: int | None = None  # bytes held in memory before spilling; None: SPILL_BYTES
    chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    held: int = 0
    _dir: str | None = None

    def add(self, split: str, offset: int, cols: dict[str, np.ndarray]) -> None:
        rows = len(next(iter(cols.values()))) if cols else 0
        self.chunks.setdefault(split, []).append(Chunk(offset, rows, cols))
        self.held += sum(a.nbytes for a in cols.values())

    def merge(self, other: RowStore) -> RowStore:
        for split, chunks in other.chunks.items():
            self.chunks.setdefault(split, []).extend(chunks)
        self.held += other.held
        other.chunks, other.held = {}, 0
        if self.held > (SPILL_BYTES if self.limit is None else self.limit):
            self.spill()
        return self

    @property
    def spilled(self) -> bool:
        """Whether some chunk is on disk."""
        return self._dir is not None

    def rows(self, split: str) -> int:
        return sum(c.rows for c in self.chunks.get(split, ()))

    def spill(self) -> None:
        """Write every in-memory chunk's numeric columns to disk, one segment per split."""
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="mlwarden-rows-")
            weakref.finalize(self, shutil.rmtree, self._dir, True)
        for split, chunks in self.chunks.items():
            fresh = sorted((c for c in chunks if c.spilled is None), key=lambda c: c.offset)
            if not fresh:
                continue
            seg = Path(tempfile.mkdtemp(dir=self._dir))
            names = [n for n, a in fresh[0].cols.items() if a.dtype != object]
            for name in names:
                np.save(seg / f"{name}.npy", np.concatenate([c.cols.pop(name) for c in fresh]))
            merged = Chunk(fresh[0].offset, sum(c.rows for c in fresh), {}, seg)
            for name in {n for c in fresh for n in c.cols}:  # object columns stay in memory
                merged.cols[name] = np.concatenate([c.cols[name] for c in fresh])
            self.chunks[split] = [c for c in chunks if c.spilled is not None] + [merged]
        self.held = sum(a.nbytes for cs in self.chunks.values() for c in cs for a in c.cols.values())

    def column(self, split: str, name: str) -> np.ndarray | None:
        """One column of ``split`` in row order (None when no chunk has it)."""
        parts = self._parts(split, name)
        if not parts:
            return None
        if len(parts) == 1:
            return np.array(parts[0]) if isinstance(parts[0], np.memmap) else parts[0]
        return np.concatenate(parts)  # spilled parts are mapped: one copy, not a load and a copy

    def take(self, split: str, name: str, rows: np.ndarray) -> np.ndarray | None:
        """``column(split, name)[rows]`` without reading the whole column: spilled parts are mapped."""
        parts = self._parts(split, name)
        if not parts:
            return None
        rows = np.asarray(rows, np.int64)
        ends = np.cumsum([len(p) for p in parts])
        which = np.searchsorted(ends, rows, side="right")
        out = np.empty(rows.size, parts[0].dtype)
        for k in np.unique(which):
            sel = which == k
            out[sel] = parts[k][rows[sel] - (ends[k] - len(parts[k]))]
        return out

    def _parts(self, split: str, name: str) -> list[np.ndarray] | None:
        parts = []
        for c in sorted(self.chunks.get(split, ()), key=lambda c: c.offset):
            if name in c.cols:
                parts.append(c.cols[name])
            elif c.spilled is not None and (c.spilled / f"{name}.npy").exists():
                parts.append(np.load(c.spilled / f"{name}.npy", mmap_mode="r", allow_pickle=False))
            else:
                return None
        return parts or None

    def offsets(self, split: str) -> np.ndarray:
        """Row ordinals in the split, in the order ``column`` returns rows."""
        chunks = sorted(self.chunks.get(split, ()), key=lambda c: c.offset)
        if not chunks:
            return np.empty(0, np.int64)
        return np.concatenate([np.arange(c.offset, c.offset + c.rows, dtype=np.int64) for c in chunks])

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.chunks, self.held = {}, 0

    def __getstate__(self) -> dict:
        if self._dir is not None:  # spilled states stay in the process that spilled them
            raise TypeError("a spilled RowStore cannot be pickled")
        return self.__dict__.copy()
