"""Mergeable, bounded summaries of one column of one split, for the drift tests.

**Numbers** — :class:`NumericSketch`. Exact while the column has at most
``EXACT_DISTINCT`` distinct values (distinct value → count: discrete columns such as ages
or codes stay exact at any row count). Past that it becomes a histogram over fixed
float64 buckets: a value's bucket is its IEEE-754 bit pattern with all but the top
``MANTISSA_BITS`` mantissa bits dropped, so each bucket spans at most 2⁻⁸ ≈ 0.39 % of its
values' magnitude, and each bucket keeps its count, min, max and sum. Past ``MAX_BUCKETS``
buckets (data spread over many orders of magnitude) one more mantissa bit is dropped,
doubling the width, until it fits: at most 8,192 × 40 bytes per column and split. The
buckets are a pure function of the values (the coarsening level is the smallest that
fits the whole column, whatever the partitions), so merging is exact addition: any
partitioning, any merge order, any engine gives the same summary. Its error is not a rank ε fixed in advance but
known after the fact: the KS statistic read from two summaries lies between the value at
bucket ends (achieved by the data) and an upper bound computed from the buckets that hold
more than one distinct value (:func:`grid`, ``stats.ks_grid``).

Why not KLL (Apache DataSketches): its compactions flip coins from a clock-seeded
generator with no seed parameter, so the same data gives a different sketch in every run
and on every engine, and the sketch objects do not pickle. mlwarden promises identical
reports for identical input.

**Categories** — :class:`CategorySketch`, a Misra–Gries heavy-hitters summary of at most
``CATEGORY_CAPACITY`` counters. Exact while the column has no more distinct values than
that; past it, every count is low by at most ``decremented`` ≤ n / (capacity + 1), which
the check reports. Empty strings count as missing, because CSV readers turn them into
nulls and the same data would otherwise drift between a parquet and a CSV split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..data.rowhash import value_counts

EXACT_DISTINCT = 20_000
MAX_BUCKETS = 8_192
MANTISSA_BITS = 8
RELATIVE_WIDTH = 2.0 ** -MANTISSA_BITS
CATEGORY_CAPACITY = 1_000
MISSING = "(missing)"

_SHIFT = np.int64(52 - MANTISSA_BITS)
_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)


def bucket_keys(x: np.ndarray) -> np.ndarray:
    """Order-preserving bucket of each float64 (``-0.0`` must already be ``0.0``)."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    ordered = np.where(bits < 0, bits ^ _LOW63, bits)  # signed-int order == float order
    return ordered >> _SHIFT


@dataclass
class NumericSketch:
    """Distinct values with counts (exact), or fixed-bucket histogram past the cap."""

    n: int = 0
    missing: int = 0
    nonfinite: int = 0
    exact: bool = True
    level: int = 0
    """Extra mantissa bits dropped to stay within ``MAX_BUCKETS`` (histogram only)."""
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    """Distinct values (exact) or bucket keys (int64)."""
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    mins: np.ndarray | None = None
    maxs: np.ndarray | None = None
    sums: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        nan = np.isnan(x)
        inf = np.isinf(x)
        self.missing += int(nan.sum())
        self.nonfinite += int(inf.sum())
        x = np.sort(x[~(nan | inf)])
        if not x.size:
            return
        x = np.where(x == 0.0, 0.0, x)  # -0.0 and 0.0 sort together: one run of 0.0 after this
        self.n += int(x.size)
        # x is sorted: its distinct values are where runs start (np.unique would sort it again)
        starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
        counts = np.diff(np.r_[starts, x.size]).astype(np.int64)
        self._absorb(NumericSketch(n=0, keys=x[starts], counts=counts))

    def merge(self, other: NumericSketch) -> NumericSketch:
        self.n += other.n
        self.missing += other.missing
        self.nonfinite += other.nonfinite
        self._absorb(other)
        return self

    def _absorb(self, other: NumericSketch) -> None:
        if self.exact and other.exact:
            keys, inv = np.unique(np.concatenate([self.keys, other.keys]), return_inverse=True)
            counts = np.bincount(inv, weights=np.concatenate([self.counts, other.counts]), minlength=keys.size)
            self.keys, self.counts = keys, counts.astype(np.int64)
            if keys.size > EXACT_DISTINCT:
                self._to_hist()
            return
        if self.exact:
            self._to_hist()
        o = other.histogram(self.level)
        self.coarsen(o.level)
        assert self.mins is not None and self.maxs is not None and self.sums is not None
        assert o.mins is not None and o.maxs is not None and o.sums is not None
        self.keys, self.counts, self.mins, self.maxs, self.sums = _group(
            np.concatenate([self.keys, o.keys]), np.concatenate([self.counts, o.counts]),
            np.concatenate([self.mins, o.mins]), np.concatenate([self.maxs, o.maxs]),
            np.concatenate([self.sums, o.sums]))
        self._fit()

    def _to_hist(self) -> None:
        v, c = self.keys, self.counts
        self.keys, self.counts, self.mins, self.maxs, self.sums = _group(bucket_keys(v) >> self.level, c, v, v, v * c)
        self.exact = False
        self._fit()

    def coarsen(self, level: int) -> None:
        """Drop mantissa bits until at ``level`` (no-op when already there or coarser)."""
        if self.exact or level <= self.level:
            return
        assert self.mins is not None and self.maxs is not None and self.sums is not None
        self.keys, self.counts, self.mins, self.maxs, self.sums = _group(
            self.keys >> (level - self.level), self.counts, self.mins, self.maxs, self.sums)
        self.level = level

    def _fit(self) -> None:
        while self.keys.size > MAX_BUCKETS:
            self.coarsen(self.level + 1)

    def histogram(self, level: int = 0) -> NumericSketch:
        """This summary as a bucket histogram at ``level`` or coarser (a copy unless it already is one)."""
        if self.exact:
            h = NumericSketch(n=self.n, keys=self.keys, counts=self.counts, level=level)
            h._to_hist()
            return h
        if level <= self.level:
            return self
        h = NumericSketch(n=self.n, exact=False, level=self.level, keys=self.keys, counts=self.counts,
                          mins=self.mins, maxs=self.maxs, sums=self.sums)
        h.coarsen(level)
        return h

    @property
    def relative_width(self) -> float:
        return 2.0 ** -(MANTISSA_BITS - self.level)

    @property
    def method(self) -> str:
        return "exact" if self.exact else f"histogram(relative bucket width 2^-{MANTISSA_BITS - self.level})"

    def nbytes(self) -> int:
        arrays = [self.keys, self.counts, self.mins, self.maxs, self.sums]
        return sum(a.nbytes for a in arrays if a is not None)


def _group(keys: np.ndarray, counts: np.ndarray, mins: np.ndarray, maxs: np.ndarray,
           sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not keys.size:
        e = np.empty(0, np.float64)
        return keys.astype(np.int64), counts.astype(np.int64), e, e, e
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return (keys[starts], np.add.reduceat(counts[order], starts).astype(np.int64),
            np.minimum.reduceat(mins[order], starts), np.maximum.reduceat(maxs[order], starts),
            np.add.reduceat(sums[order].astype(np.float64), starts))


@dataclass(frozen=True)
class Grid:
    """Two numeric summaries on common cells, in value order.

    ``point[i]`` is true when cell ``i`` holds one single value in both splits (always,
    when both summaries are exact), so the CDFs are exact at and inside it.
    """

    ca: np.ndarray
    cb: np.ndarray
    point: np.ndarray
    rep_a: np.ndarray
    rep_b: np.ndarray
    exact: bool


def grid(a: NumericSketch, b: NumericSketch) -> Grid:
    if a.exact and b.exact:
        keys = np.union1d(a.keys, b.keys)
        ca = _place(keys, a.keys, a.counts)
        cb = _place(keys, b.keys, b.counts)
        return Grid(ca=ca, cb=cb, point=np.ones(keys.size, bool), rep_a=keys, rep_b=keys, exact=True)
    level = max(a.level if not a.exact else 0, b.level if not b.exact else 0)
    ha, hb = a.histogram(level), b.histogram(level)
    ha, hb = ha.histogram(hb.level), hb.histogram(ha.level)  # an exact side may have had to coarsen further
    assert ha.mins is not None and ha.maxs is not None and hb.mins is not None and hb.maxs is not None
    keys = np.union1d(ha.keys, hb.keys)
    ca, cb = _place(keys, ha.keys, ha.counts), _place(keys, hb.keys, hb.counts)
    mina, maxa = _place(keys, ha.keys, ha.mins, np.nan), _place(keys, ha.keys, ha.maxs, np.nan)
    minb, maxb = _place(keys, hb.keys, hb.mins, np.nan), _place(keys, hb.keys, hb.maxs, np.nan)
    pa_ = (ca == 0) | (mina == maxa)
    pb_ = (cb == 0) | (minb == maxb)
    same = (ca == 0) | (cb == 0) | (mina == minb)
    with np.errstate(invalid="ignore", divide="ignore"):
        rep_a = _place(keys, ha.keys, ha.sums / np.maximum(ha.counts, 1), np.nan)  # type: ignore[operator]
        rep_b = _place(keys, hb.keys, hb.sums / np.maximum(hb.counts, 1), np.nan)  # type: ignore[operator]
    return Grid(ca=ca, cb=cb, point=pa_ & pb_ & same, rep_a=rep_a, rep_b=rep_b, exact=False)


def _place(keys: np.ndarray, sub: np.ndarray, values: np.ndarray, fill: float = 0) -> np.ndarray:
    out = np.full(keys.size, fill, dtype=np.float64 if isinstance(fill, float) else np.int64)
    out[np.searchsorted(keys, sub)] = values
    return out


@dataclass
class CategorySketch:
    """Misra–Gries counts of at most ``capacity`` categories (exact below it)."""

    n: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    decremented: int = 0
    """Total subtracted from every counter: each count is low by at most this."""
    capacity: int = CATEGORY_CAPACITY

    def add_counts(self, counts: dict[str, int]) -> None:
        for k, c in counts.items():
            self.counts[k] = self.counts.get(k, 0) + c
            self.n += c
        self._shrink()

    def merge(self, other: CategorySketch) -> CategorySketch:
        self.n += other.n
        self.decremented += other.decremented
        for k, c in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + c
        self._shrink()
        return self

    def _shrink(self) -> None:
        if len(self.counts) <= self.capacity:
            return
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        cut = ranked[self.capacity][1]  # the (capacity+1)-th largest count
        self.decremented += cut
        self.counts = {k: c - cut for k, c in ranked if c > cut}

    @property
    def exact(self) -> bool:
        return self.decremented == 0


NULL_TOKENS = frozenset(pacsv.ConvertOptions().null_values)
"""The strings Arrow's CSV reader reads as null ("", "NA", "n/a", "NULL", "NaN" …). A text column
read from parquet keeps them as values; counted as ``MISSING`` here too, the same data compares
the same whether a split is a CSV file or a parquet file (a CSV split against a parquet train
raised a high drift finding for the null marker alone)."""


def category_counts(arr: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    """Value → count of one batch's column, as strings (nulls, blanks and :data:`NULL_TOKENS` as ``MISSING``)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.large_string())
    vc = value_counts(arr)
    out: dict[str, int] = {}
    for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
        key = MISSING if v is None or v in NULL_TOKENS or not v.strip() else v
        out[key] = out.get(key, 0) + c
    return out


def numeric_values(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column as float64 (nulls as NaN; dates and times as seconds since the epoch)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    scale = 1.0
    if pa.types.is_date(t):
        arr = pc.cast(arr, pa.timestamp("s"))
        t = arr.type
    if pa.types.is_timestamp(t):
        scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[t.unit]
        arr = pc.cast(arr, pa.int64())
    x = np.asarray(pc.cast(arr, pa.float64()).fill_null(np.nan), dtype=np.float64)
    return x * scale if scale != 1.0 else x
