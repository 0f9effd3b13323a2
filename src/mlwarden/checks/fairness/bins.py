"""Bins and counts behind fairness.proxies: each value's bin, and (bin, group, half) counts.

Kept apart from the check so that fairness.counterfactual can read the same bins (to pick
the proxies it probes and the values it substitutes). Bins are a pure function of the
value, so any partitioning and merge order gives the same counts:

- a column with at most ``EXACT_BINS`` distinct values (over the whole split) keeps
  them exactly — indicator columns, codes, small integers, categories;
- past that, numbers fall into log-scale bins (a float's sign, exponent and top
  ``MANTISSA_BITS`` mantissa bits: each bin spans at most 12.5 % of its values'
  magnitude) and text into ``HASH_BUCKETS`` hash buckets;
- missing values (null, NaN, blank text) are a bin of their own: missingness can leak.

*half* splits rows in two by a hash of their content (:func:`halves`), so that exact
duplicates always fall on the same side.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...fairness.groups import MISSING, group_codes
from ..data.rowhash import dictionary, sort_codes

EXACT_BINS = 128
HASH_BUCKETS = 64
MANTISSA_BITS = 3

_SHIFT = np.int64(52 - MANTISSA_BITS)
_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)

Key = Any  # None (missing) | float | str (exact) | ("n", int) | ("s", int) (coarse)
Counts = dict[tuple[Key, str, int], int]


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection on uint64, so distinct inputs never tie."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def halves(content: np.ndarray) -> np.ndarray:
    """0 or 1 per row from a hash of its content: exact duplicates always share a half."""
    with np.errstate(over="ignore"):
        return (mix(content * GOLDEN + np.uint64(0x51)) & np.uint64(1)).astype(np.int64)


def coarse_number(x: np.ndarray) -> np.ndarray:
    """Order-preserving log-scale bin of each float64 (no NaN; -0.0 already 0.0)."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return np.where(bits < 0, bits ^ _LOW63, bits) >> _SHIFT


def bin_value(key: int) -> float:
    """The lower edge (toward zero for negatives: an edge) of a coarse numeric bin."""
    ordered = np.int64(key) << _SHIFT
    bits = ordered if ordered >= 0 else ordered ^ _LOW63
    return float(np.array([bits], dtype=np.int64).view(np.float64)[0])


def _coarse(key: Key) -> Key:
    if key is None or isinstance(key, tuple):
        return key
    if isinstance(key, float):
        return ("n", int(coarse_number(np.array([key]))[0]))
    return ("s", _bucket(str(key)))


@functools.lru_cache(maxsize=1 << 16)
def _bucket(text: str) -> int:
    # cached: every batch of a split meets the same codes, postcodes and names again
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % HASH_BUCKETS


def column_kind(t: pa.DataType) -> str | None:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_temporal(t):
        return "time"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return None


def _sorted_codes(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(v, return_inverse=True)`` by hashing, then sorting only the distinct values."""
    if v.dtype.kind == "i" and v.size:
        lo = int(v.min())
        span = int(v.max()) - lo + 1
        if span <= max(v.size, 1 << 16):  # coarse bins span at most 2**16: a bincount, no hash nor sort
            present = np.bincount(v - lo, minlength=span) > 0
            return np.flatnonzero(present) + lo, (np.cumsum(present) - 1)[v - lo]
    if v.dtype.kind == "f" and v.size and abs(float(v.min())) < 2**53 and float(v.max()) - float(v.min()) < 1 << 16:
        whole = v.astype(np.int64)  # counts, codes, small integers stored as floats
        if (whole == v).all():
            uniq, inv = _sorted_codes(whole)
            return uniq.astype(np.float64), inv
    inv, uniq = sort_codes(*pd.factorize(v))
    return uniq, inv


def _keys(col: pa.Array, coarse: bool) -> tuple[list[Key], np.ndarray]:
    """The distinct bin keys of a column and each row's index into them."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    kind = column_kind(col.type)
    if kind in ("number", "time"):
        if kind == "time":
            col = pc.cast(col, pa.timestamp("ns")) if pa.types.is_date(col.type) else col
            col = pc.cast(col, pa.int64(), safe=False)
        x = pc.cast(col, pa.float64(), safe=False)  # int64 nanoseconds exceed 2**53: round, don't refuse
        x = np.asarray(x.fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
        nan = np.isnan(x)
        x = np.where(x == 0.0, 0.0, x)
        v = np.where(nan, 0.0, x)
        uniq, inv = (None, None) if coarse else _sorted_codes(v)  # a coarse column needs no exact pass
        if uniq is None or inv is None or uniq.size > EXACT_BINS:
            uniq, inv = _sorted_codes(coarse_number(v))
            keys: list[Key] = [("n", u) for u in uniq.tolist()]
        else:
            keys = [float(u) for u in uniq]
        keys.append(None)
        return keys, np.where(nan, len(keys) - 1, inv)
    enc = dictionary(col) if kind == "text" else pc.dictionary_encode(pc.cast(col, pa.string()))
    # blank text is missing: found among the distinct values, not the rows
    blank = np.asarray(pc.equal(pc.utf8_trim_whitespace(enc.dictionary), "").to_numpy(zero_copy_only=False), bool)
    values = [str(v) for v, b in zip(enc.dictionary.to_pylist(), blank.tolist()) if not b]
    slot = np.where(blank, len(values), np.cumsum(~blank) - 1).astype(np.int64)
    idx = np.asarray(enc.indices.fill_null(blank.size).to_numpy(zero_copy_only=False), dtype=np.int64)
    codes = np.append(slot, len(values))[idx]
    if coarse or len(values) > EXACT_BINS:
        # one key per bucket, not per value: the counts then add up without a per-value pass
        buckets, inv = np.unique(np.fromiter(map(_bucket, values), np.int64, len(values)), return_inverse=True)
        keys = [("s", b) for b in buckets.tolist()]
        codes = np.append(inv.reshape(-1), len(keys))[codes]
    else:
        keys = list(values)
    keys.append(None)
    return keys, codes


class PairCounts:
    """The counts of one (feature, attribute) pair: ``n[key, group, half]``.

    Keys and groups enter their vocabularies (dicts, in order of first count) only when
    they get a non-zero count, so every row and column of ``n`` is non-zero — as in the
    :data:`Counts` dict, whose cells this holds densely. A batch touches the vocabularies
    once per distinct key and group, never once per cell.
    """

    def __init__(self) -> None:
        self.keys: dict[Key, int] = {}
        self.groups: dict[str, int] = {}
        self.n = np.zeros((0, 0, 2), np.int64)

    def add(self, keys: list[Key], groups: list[str], n: np.ndarray) -> None:
        """Add ``n[i, j, half]`` rows of ``keys[i]`` in ``groups[j]`` (keys may repeat: coarse bins)."""
        ki = np.flatnonzero(n.any(axis=(1, 2)))
        gi = np.flatnonzero(n.any(axis=(0, 2)))
        kv = _index(self.keys, [keys[i] for i in ki.tolist()])
        gv = _index(self.groups, [groups[j] for j in gi.tolist()])
        if self.n.shape[:2] != (len(self.keys), len(self.groups)):
            grown = np.zeros((len(self.keys), len(self.groups), 2), np.int64)
            grown[: self.n.shape[0], : self.n.shape[1]] = self.n
            self.n = grown
        part = n[np.ix_(ki, gi)]
        if np.unique(kv).size == kv.size:
            self.n[np.ix_(kv, gv)] += part
        else:  # several of the given keys fall into one bin
            np.add.at(self.n, (kv[:, None], gv[None, :]), part)

    def distinct(self) -> int:
        """Distinct keys besides missing: what the coarsening limit counts."""
        return len(self.keys) - (None in self.keys)

    def coarsened(self) -> PairCounts:
        out = PairCounts()
        out.add([_coarse(k) for k in self.keys], list(self.groups), self.n)
        return out

    def to_dict(self) -> Counts:
        k, g = list(self.keys), list(self.groups)
        i, j, h = (x.tolist() for x in np.nonzero(self.n))
        return {(k[a], g[b], c): int(n) for a, b, c, n in zip(i, j, h, self.n[i, j, h].tolist())}

    @classmethod
    def from_dict(cls, cell: Counts) -> PairCounts:
        out = cls()
        for (key, g, h), c in cell.items():
            n = np.zeros((1, 1, 2), np.int64)
            n[0, 0, h] = c
            out.add([key], [g], n)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PairCounts) and self.to_dict() == other.to_dict()


def _index(vocab: dict, items: list) -> np.ndarray:
    """Each item's index in ``vocab``, adding the new ones at the end."""
    # len(vocab) is read before setdefault inserts, so a new item gets the next index
    return np.fromiter((vocab.setdefault(x, len(vocab)) for x in items), np.int64, len(items))


def add_batch(counts: dict[tuple[str, str], PairCounts], coarse: set[tuple[str, str]], rb: pa.RecordBatch,
              features: list[str], attrs: list[str], half: np.ndarray) -> None:
    """Fold one batch's (bin, group, half) counts for every (feature, attribute) pair."""
    groups = {a: group_codes(rb, a) for a in attrs if a in rb.schema.names}
    for col in features:
        if col not in rb.schema.names or column_kind(rb.schema.field(col).type) is None:
            continue
        by_coarseness: dict[bool, tuple[list[Key], np.ndarray]] = {}  # the same for every attribute
        for attr, (gcodes, glabels) in groups.items():
            pair = (col, attr)
            if (pair in coarse) not in by_coarseness:
                by_coarseness[pair in coarse] = _keys(rb.column(col), pair in coarse)
            keys, kcodes = by_coarseness[pair in coarse]
            if pair not in coarse and any(isinstance(k, tuple) for k in keys):
                # This batch alone had too many distinct values: the whole pair goes coarse now,
                # or exact keys of other batches would mix with its bins (and the bins would
                # depend on how the split was cut into batches and partitions).
                coarse.add(pair)
                if pair in counts:
                    counts[pair] = counts[pair].coarsened()
            ng = len(glabels)
            n = np.bincount((kcodes * ng + gcodes) * 2 + half, minlength=len(keys) * ng * 2)
            counts.setdefault(pair, PairCounts()).add(keys, glabels, n.reshape(len(keys), ng, 2))
            _settle(counts, coarse, pair)


def merge_counts(a: dict[tuple[str, str], PairCounts], ca: set, b: dict[tuple[str, str], PairCounts],
                 cb: set) -> None:
    """Add b's counts into a (and b's coarse flags into ca); b is left as it was."""
    for pair, cell in b.items():
        if pair in cb and pair not in ca:
            ca.add(pair)
            if pair in a:
                a[pair] = a[pair].coarsened()
        if pair in ca and pair not in cb:
            cell = cell.coarsened()
        a.setdefault(pair, PairCounts()).add(list(cell.keys), list(cell.groups), cell.n)
        _settle(a, ca, pair)


def _settle(counts: dict[tuple[str, str], PairCounts], coarse: set, pair: tuple[str, str]) -> None:
    if pair not in coarse and counts[pair].distinct() > EXACT_BINS:
        coarse.add(pair)
        counts[pair] = counts[pair].coarsened()


def _order(key: Key) -> tuple:
    if key is None:
        return (0, 0, "")
    if isinstance(key, float):
        return (1, key, "")
    if isinstance(key, str):
        return (2, 0, key)
    return (3 if key[0] == "n" else 4, key[1], "")


def table(cell: PairCounts | Counts) -> tuple[list[Key], list[str], np.ndarray]:
    """(sorted bin keys, sorted groups without MISSING, counts[bin, group, half])."""
    if isinstance(cell, dict):
        cell = PairCounts.from_dict(cell)
    keys = sorted(cell.keys, key=_order)
    groups = sorted(set(cell.groups) - {MISSING})
    ki = np.array([cell.keys[k] for k in keys], dtype=np.intp)
    gi = np.array([cell.groups[g] for g in groups], dtype=np.intp)
    return keys, groups, cell.n[np.ix_(ki, gi)].astype(np.float64)
