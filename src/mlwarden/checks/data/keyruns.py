"""Per-key records of a fold state, kept in memory up to a limit and spilled to disk by key range past it.

Some checks must keep a record per distinct row to answer (a hash and its count, its first
row, its label): that is the state that grows with the data. :class:`KeyRuns` holds it as
chunks of named 1-D numpy columns, one of them ``key`` (a uint64 row hash). Merging appends
chunks; an optional ``reducer`` (a module-level function, so states still pickle) folds the
in-memory chunks into one whenever they double, so repeated keys cost once. Past ``limit``
bytes the in-memory chunk is written to a temporary folder as one ``.npy`` file per column,
its records grouped by *bucket* — the top :data:`BUCKET_BITS` bits of the key — and dropped
from memory; a bucket is read back as a slice of each mapped file.

Records of one key always land in the same bucket, so a finalize step that groups by key can
read :meth:`KeyRuns.buckets` one at a time: its peak memory is one bucket (1/16 of the
state), not the whole state, and the answer is the same as if nothing had spilled. Spilling
happens only when states merge (in the process that finalizes); partial states that workers
send back stay in memory. Plain arrays only, never pickles: a string column is written as a
fixed-width unicode array; a run with other objects (ids mixing types) stays in memory.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .rowhash import sorted_unique

SPILL_BYTES = 64 << 20
"""Bytes of records a store holds in memory before it spills (per store)."""
BUCKET_BITS = 4
_REDUCE_MIN = 1 << 17
LAZY_KEEP = 0.9
"""A reduction that keeps at least this share of the records (keys nearly all distinct) ends
reducing while merging: it cost a sort for nothing. Records are then reduced once, when read."""

Columns = dict[str, np.ndarray]


def _bytes(cols: Columns) -> int:
    return sum(a.nbytes for a in cols.values())


def _concat(chunks: list[Columns]) -> Columns:
    if len(chunks) == 1:
        return chunks[0]
    return {n: np.concatenate([c[n] for c in chunks]) for n in chunks[0]}


def _storable(a: np.ndarray) -> np.ndarray | None:
    """``a`` as an array ``np.save`` writes without pickle, or None when it holds non-text objects."""
    if a.dtype != object:
        return a
    if all(isinstance(v, str) for v in a.tolist()):
        return np.array(a.tolist(), dtype=str) if a.size else np.empty(0, "U1")
    return None


def key_order(c: Columns, ties: tuple[str, ...]) -> np.ndarray:
    """The order that sorts records by key, then by the ``ties`` columns (first most significant).

    Rows mostly have distinct keys: sorting by the key alone and ordering only the records that
    share a key by ``ties`` costs a third of a lexsort of everything by every column."""
    key = c["key"]
    order = np.argsort(key)
    ks = key[order]
    dup = np.flatnonzero(ks[1:] == ks[:-1])
    if dup.size:
        multi = sorted_unique(np.r_[dup, dup + 1])
        sub = order[multi]
        order[multi] = sub[np.lexsort(tuple(c[t][sub] for t in reversed(ties)) + (key[sub],))]
    return order


@dataclass
class KeyRuns:
    reducer: Callable[[Columns], Columns] | None = None
    limit: int | None = None  # bytes held in memory before spilling; None: SPILL_BYTES
    chunks: list[Columns] = field(default_factory=list)
    held: int = 0
    reduced: int = 0  # bytes of the in-memory state after its last reduction
    runs: list[Path] = field(default_factory=list)
    edges: list[np.ndarray] = field(default_factory=list)  # per run: where each bucket starts in its files
    lazy: bool = False  # reductions stopped paying: held and spilled records may repeat keys
    _dir: str | None = None

    def add(self, cols: Columns) -> None:
        if len(cols["key"]):
            self.chunks.append(cols)
            self.held += _bytes(cols)
            self._maybe_reduce()

    def merge(self, other: KeyRuns) -> KeyRuns:
        if other.runs:
            raise TypeError("a spilled KeyRuns merges only as the accumulator")
        self.chunks.extend(other.chunks)
        self.held += other.held
        other.chunks, other.held = [], 0
        self._maybe_reduce()
        if self.held > (SPILL_BYTES if self.limit is None else self.limit):
            self.spill()
        return self

    def _maybe_reduce(self) -> None:
        if (self.reducer is not None and not self.lazy and len(self.chunks) > 1
                and self.held > 2 * self.reduced + _REDUCE_MIN):
            before = sum(len(c["key"]) for c in self.chunks)
            self.chunks = [self.reducer(_concat(self.chunks))]
            self.held = self.reduced = _bytes(self.chunks[0])
            # distinct keys (one record a row, as in most stores at scale): at 10M rows, reducing
            # as partitions merged cost 5 CPU-s of the main process and removed under 1 % of records
            self.lazy = len(self.chunks[0]["key"]) >= LAZY_KEEP * before

    def memory(self) -> Columns | None:
        """The in-memory records as one (reduced) chunk, or None when there are none."""
        if not self.chunks:
            return None
        if self.reducer is not None and not (len(self.chunks) == 1 and self.held == self.reduced):
            self.chunks = [self.reducer(_concat(self.chunks))]
            self.held = self.reduced = _bytes(self.chunks[0])
        return _concat(self.chunks)

    def spill(self) -> None:
        """Write the in-memory records to disk, split into key buckets (one run); reduced first
        unless reducing stopped paying (they are reduced when read, then)."""
        cols = _concat(self.chunks) if self.lazy and self.chunks else self.memory()
        if cols is None:
            return
        stored: Columns = {}
        for n, a in cols.items():
            s = _storable(a)
            if s is None:
                return  # ids that are not all text: kept in memory (np.save would need pickle)
            stored[n] = s
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="mlwarden-keys-")
            weakref.finalize(self, shutil.rmtree, self._dir, True)
        run = Path(tempfile.mkdtemp(dir=self._dir))
        bucket = (cols["key"] >> np.uint64(64 - BUCKET_BITS)).astype(np.uint8)
        order = np.argsort(bucket, kind="stable")
        edges = np.searchsorted(bucket[order], np.arange((1 << BUCKET_BITS) + 1))
        # one file a column, not one a column and bucket: at 10M rows the audit's stores wrote,
        # opened and removed ~3,000 small files
        for name, a in stored.items():
            np.save(run / f"{name}.npy", a[order], allow_pickle=False)
        self.runs.append(run)
        self.edges.append(edges)
        self.chunks, self.held, self.reduced = [], 0, 0

    def buckets(self) -> Iterator[Columns]:
        """Every record, one key bucket at a time (records of one key are in one bucket);
        everything at once while nothing has spilled."""
        for b in range(1 << BUCKET_BITS) if self.runs else [None]:
            cols = self.bucket(b)
            if cols is not None:
                yield cols

    def bucket(self, b: int | None) -> Columns | None:
        """The records whose key is in bucket ``b`` (None: every record), or None when there are none.
        Stores that share a bucket number hold the same keys: :func:`spilled` says whether to split."""
        mem = self.memory()
        if not self.runs:
            if mem is None or b is None:
                return mem
            at = (mem["key"] >> np.uint64(64 - BUCKET_BITS)) == b
            return {n: a[at] for n, a in mem.items()}
        names = list(mem) if mem is not None else sorted(p.name[:-4] for p in self.runs[0].glob("*.npy"))
        parts: list[Columns] = []
        for r, edges in zip(self.runs, self.edges):
            files = {n: np.load(r / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in names}
            lo, hi = (0, int(edges[-1])) if b is None else (int(edges[b]), int(edges[b + 1]))
            parts.append({n: np.array(f[lo:hi]) for n, f in files.items()})
        if mem is not None:
            at = (mem["key"] >> np.uint64(64 - BUCKET_BITS)) == b if b is not None else slice(None)
            parts.append({n: a[at] for n, a in mem.items()})
        cols = _concat(parts)
        return self.reducer(cols) if self.reducer is not None and (len(parts) > 1 or self.lazy) else cols

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.chunks, self.held, self.runs, self.edges = [], 0, [], []

    def __getstate__(self) -> dict:
        if self.runs:  # spilled states stay in the process that spilled them
            raise TypeError("a spilled KeyRuns cannot be pickled")
        return self.__dict__.copy()


def spilled(*stores: KeyRuns | None) -> list[int | None]:
    """Bucket numbers to read ``stores`` by together: every bucket once any has spilled, else one pass."""
    return list(range(1 << BUCKET_BITS)) if any(s is not None and s.runs for s in stores) else [None]
