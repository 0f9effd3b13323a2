"""Normalized 64-bit row hashes: equal rows hash equal whatever their storage.

Normalization: numbers are compared by value, so ``1``, ``1.0`` and ``True`` match (an
integral float hashes as the integer); ``-0.0`` is ``0.0``; NaN and null are one
"missing" value; columns are combined in name order, so column order does not matter;
temporal values hash by their instant in nanoseconds. Strings hash exactly. Each value's
hash depends only on the value, never on its batch, so any partitioning gives the same
hashes. Collisions: 64-bit hashes, so about n²/2⁶⁵ expected — 3·10⁻⁸ at a million rows.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TAG_MISSING, _TAG_INT, _TAG_FLOAT, _TAG_TIME = (np.uint64(t) for t in (0x51, 0x1A7, 0xF10A7, 0x7173))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer, vectorized over uint64."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _name_hash(name: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little"))


def _numeric(arr: pa.Array) -> np.ndarray:
    valid = ~np.asarray(arr.is_null(), dtype=bool)
    if pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        x = np.asarray(pc.cast(arr, pa.float64()).fill_null(0.0), dtype=np.float64)
        valid &= ~np.isnan(x)
        x = np.where(x == 0.0, 0.0, x)  # -0.0 → 0.0
        with np.errstate(invalid="ignore"):
            integral = valid & np.isfinite(x) & (np.trunc(x) == x) & (np.abs(x) < 2.0**63)
        as_int = np.where(integral, x, 0.0).astype(np.int64).view(np.uint64)
        keys = np.where(integral, as_int, x.view(np.uint64))
        tags = np.where(integral, _TAG_INT, _TAG_FLOAT)
    elif pa.types.is_uint64(arr.type):
        # above 2**63 a uint64 would wrap onto a negative int64; hash those by their float value
        u = np.asarray(arr.fill_null(0), dtype=np.uint64)
        big = u >= np.uint64(1 << 63)
        keys = np.where(big, u.astype(np.float64).view(np.uint64), u)
        tags = np.where(big, _TAG_FLOAT, _TAG_INT)
    else:  # integers and booleans
        x = np.asarray(pc.cast(arr, pa.int64(), safe=False).fill_null(0), dtype=np.int64)
        keys, tags = x.view(np.uint64), np.full(len(x), _TAG_INT, dtype=np.uint64)
    keys = np.where(valid, keys, np.uint64(0))
    tags = np.where(valid, tags, _TAG_MISSING)
    with np.errstate(over="ignore"):
        return _mix(keys ^ (tags * _GOLDEN))


def _temporal(arr: pa.Array) -> np.ndarray:
    if pa.types.is_date(arr.type):
        arr = pc.cast(arr, pa.timestamp("ns"))
    elif pa.types.is_timestamp(arr.type):
        arr = pc.cast(arr, pa.timestamp("ns", tz=arr.type.tz), safe=False)
    valid = ~np.asarray(arr.is_null(), dtype=bool)
    x = np.asarray(pc.cast(arr, pa.int64(), safe=False).fill_null(0), dtype=np.int64).view(np.uint64)
    tags = np.where(valid, _TAG_TIME, _TAG_MISSING)
    with np.errstate(over="ignore"):
        return _mix(np.where(valid, x, np.uint64(0)) ^ (tags * _GOLDEN))


def _other(arr: pa.Array) -> np.ndarray:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        try:
            arr = pc.cast(arr, pa.large_string())
        except pa.ArrowNotImplementedError:
            arr = pa.array([None if v is None else repr(v) for v in arr.to_pylist()], pa.large_string())
    # Arrow finds the distinct values in C++; only those become Python objects to hash
    encoded = dictionary(arr)
    uniques = pd.util.hash_array(encoded.dictionary.to_numpy(zero_copy_only=False), categorize=False)
    codes = np.asarray(encoded.indices.fill_null(0), dtype=np.int64)
    h = uniques.astype(np.uint64)[codes] if len(uniques) else np.zeros(len(arr), dtype=np.uint64)
    missing = np.asarray(arr.is_null(), dtype=bool)
    with np.errstate(over="ignore"):
        return np.where(missing, _mix(np.asarray(_TAG_MISSING * _GOLDEN)), h)


def column_hash(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A uint64 hash per value of one column."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_dictionary(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        arr, t = arr.dictionary_decode(), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return _numeric(arr)
    if pa.types.is_temporal(t) and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        return _temporal(arr)
    if pa.types.is_null(t):
        with np.errstate(over="ignore"):
            return np.full(len(arr), _mix(np.array([_TAG_MISSING * _GOLDEN]))[0], dtype=np.uint64)
    return _other(arr)


def row_hashes(batch: pa.RecordBatch | pa.Table, columns: list[str]) -> np.ndarray:
    """A uint64 hash per row over ``columns`` (in name order, whatever order is given); read-only.

    Eight checks hash the rows of the same batch, most over the same columns: the
    column hashes and row hashes of the last two batches are kept (:class:`_Memo`), so
    each column of a batch is hashed once per process, not once per check.
    """
    memo = _MEMO.of(batch)
    key = ("row", *sorted(columns))
    h = memo.get(key)
    if h is not None:
        return h
    h = np.zeros(batch.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in sorted(columns):
            h = _mix(h * _GOLDEN + (batch_column_hash(batch, name) ^ _name_hash(name)))
    memo[key] = h = _frozen(h)
    return h


def batch_column_hash(batch: pa.RecordBatch | pa.Table, name: str) -> np.ndarray:
    """:func:`column_hash` of one column of ``batch``, computed once per batch and process
    (shared with :func:`row_hashes` and every other check through the memo); read-only."""
    memo = _MEMO.of(batch)
    col = memo.get(name)
    if col is None:
        col = memo[name] = _frozen(column_hash(batch.column(name)))
    return col


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # shared between checks: a check that wrote into it would corrupt the others
    return a


class _Memo:
    """Hashes of the last ``KEEP`` batches seen, by batch identity (the batch is held, so its id stays its own)."""

    KEEP = 2

    def __init__(self) -> None:
        self.entries: list[tuple[object, dict]] = []

    def of(self, batch: object) -> dict:
        for b, d in self.entries:
            if b is batch:
                return d
        d: dict = {}
        self.entries = [*self.entries[-(self.KEEP - 1):], (batch, d)]
        return d


_MEMO = _Memo()


class _ArrayResults:
    """Results of pure Arrow functions per array, for the arrays several checks ask the same of.

    A string column of a batch is dictionary-encoded by the row hashes, the fairness bins,
    the near-duplicate text keys and the PII scan, and value-counted by the column profile,
    drift and the category-mismatch check: 4-5 hash passes over its strings per batch
    (~0.9 ms each for 65,536 rows), where one of each serves. Keyed by the array's content
    identity (type, offset, length, buffer addresses); each entry holds its array, so those
    buffers stay allocated and no other array can take their addresses while the entry
    lives. The last ``KEEP`` results are kept (a batch's string columns, twice over)."""

    KEEP = 48

    def __init__(self) -> None:
        self.entries: collections.OrderedDict[tuple, tuple[pa.Array, Any]] = collections.OrderedDict()
        self.lock = threading.Lock()  # Dask runs a worker's tasks in threads

    def get(self, tag: str, arr: pa.Array, fn: Callable[[pa.Array], Any]) -> Any:
        key = (tag, arr.type, arr.offset, len(arr), *(0 if b is None else b.address for b in arr.buffers()))
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
                return hit[1]
        out = fn(arr)
        with self.lock:
            self.entries[key] = (arr, out)
            while len(self.entries) > self.KEEP:
                self.entries.popitem(last=False)
        return out


_RESULTS = _ArrayResults()


def dictionary(arr: pa.Array) -> pa.DictionaryArray:
    """``arr.dictionary_encode()``, once per array however many checks ask (read-only)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return _RESULTS.get("dictionary", arr, lambda a: a.dictionary_encode())


def value_counts(arr: pa.Array, *, nulls: bool = True) -> pa.StructArray:
    """``pc.value_counts(arr)`` (``nulls=False``: of ``arr.drop_null()``, the same values in the
    same order without the null entry), once per array however many checks ask."""
    if isinstance(arr, pa.ChunkedArray):
        return pc.value_counts(arr if nulls else pc.drop_null(arr))
    vc = _RESULTS.get("value_counts", arr, pc.value_counts)
    if not nulls and arr.null_count:
        vc = vc.filter(vc.field("values").is_valid())
    return vc


def sort_codes(codes: np.ndarray, uniq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A factorization (``pd.factorize``: row codes into distinct values in order of first
    appearance) with the distinct values sorted: (codes into the sorted values, the sorted
    values). ``np.unique(v, return_inverse=True)`` sorts every row; hashing first and sorting
    only the distinct values is 3-10x faster where they are few, and no sort at all is done
    when they already come in order."""
    if uniq.size < 2 or bool((uniq[1:] > uniq[:-1]).all()):
        return codes, uniq
    order = np.argsort(uniq)
    rank = np.empty(uniq.size, np.int64)
    rank[order] = np.arange(uniq.size)
    return rank[codes], uniq[order]


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique(x)`` by one sort. numpy 2.4's plain ``np.unique`` (and ``union1d``) takes a
    hash path ~80-150x slower on distinct 64-bit keys (2.1 s against 0.015 s at 2M)."""
    s = np.sort(x)
    return s[np.r_[True, s[1:] != s[:-1]]] if s.size else s


def compact_sets(chunks: list[np.ndarray], limit: int = 16) -> list[np.ndarray]:
    """Keep a list of sorted distinct-hash arrays at most ``limit`` long, merging the smallest first.

    Re-sorting everything whenever the list grew past the limit cost O(partitions × rows)
    (80 partitions at 10M rows); merging the two smallest arrays each time is O(rows ×
    log partitions), like a Huffman tree. The union of the arrays is all that counts."""
    chunks = sorted(chunks, key=len)
    while len(chunks) > limit:
        a, b = chunks.pop(0), chunks.pop(0)
        merged = sorted_unique(np.concatenate([a, b]))
        i = int(np.searchsorted([len(c) for c in chunks], len(merged)))
        chunks.insert(i, merged)
    return chunks


def search_sorted(haystack: np.ndarray, needles: np.ndarray, side: str = "left") -> np.ndarray:
    """``np.searchsorted(haystack, needles, side)``, with large needle sets put in order first.

    Needles in random order make every binary search a walk of cache misses through a
    haystack larger than the cache: 2.8 s for 2.5M needles in 10M hashes, against 0.19 s
    when the needles go in sorted (each search then starts where the last one ended, in
    cached pages), argsort and scatter included (bench/bench_sorted_search.py)."""
    if needles.size < _SORT_NEEDLES or haystack.size < _SORT_HAYSTACK:
        return np.searchsorted(haystack, needles, side)  # type: ignore[call-overload]
    order = np.argsort(needles)
    out = np.empty(needles.size, np.intp)
    out[order] = np.searchsorted(haystack, needles[order], side)  # type: ignore[call-overload]
    return out


def index_of(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The position of each of ``values`` in ``keys`` (distinct), -1 where it is absent: a hash
    table of the keys. For many values against few keys (a column's distinct values against
    every class of a table) it is 5-13x faster than a binary search per value, which
    mispredicts a branch at every step even with the keys in cache
    (bench/bench_sorted_search.py)."""
    return pd.Index(keys).get_indexer(values)


_SORT_NEEDLES = 4096
_SORT_HAYSTACK = 1 << 16  # 512 KiB of 64-bit keys: below that the haystack stays in cache


def in_sorted(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_unique)`` for a sorted, distinct haystack: a binary search per
    value (values in order, :func:`search_sorted`), without isin's sort of both arrays together."""
    return in_sorted_sets(values, [sorted_unique])


def in_sorted_sets(values: np.ndarray, haystacks: list[np.ndarray]) -> np.ndarray:
    """Which ``values`` are in any of ``haystacks`` (each sorted and distinct); the values are
    put in order once for all of them."""
    seen = np.zeros(values.size, dtype=bool)
    haystacks = [h for h in haystacks if h.size]
    if not haystacks or not values.size:
        return seen
    big = values.size >= _SORT_NEEDLES and max(h.size for h in haystacks) >= _SORT_HAYSTACK
    order = np.argsort(values) if big else None
    v = values[order] if order is not None else values
    for h in haystacks:
        i = np.searchsorted(h, v)
        i[i == h.size] = 0
        seen |= h[i] == v
    if order is None:
        return seen
    out = np.empty(values.size, dtype=bool)
    out[order] = seen
    return out


def count_distinct(values: np.ndarray) -> int:
    """How many distinct values: a hash table, not a sort."""
    return len(pd.unique(values)) if values.size else 0
