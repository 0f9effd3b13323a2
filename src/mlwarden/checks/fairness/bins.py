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

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...fairness.groups import MISSING, group_codes

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
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest()
    return ("s", int.from_bytes(digest, "little") % HASH_BUCKETS)


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
    codes, uniq = pd.factorize(v)
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[codes] if codes.size else codes.astype(np.int64)


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
            keys: list[Key] = [("n", int(u)) for u in uniq]
        else:
            keys = [float(u) for u in uniq]
        keys.append(None)
        return keys, np.where(nan, len(keys) - 1, inv)
    text = col if kind == "text" else pc.cast(col, pa.string())
    text = pc.if_else(pc.equal(pc.utf8_trim_whitespace(text), ""), pa.scalar(None, text.type), text)
    enc = pc.dictionary_encode(text)
    values = [str(v) for v in enc.dictionary.to_pylist()]
    idx = enc.indices
    codes = np.asarray(idx.fill_null(len(values)).to_numpy(zero_copy_only=False), dtype=np.int64)
    keys = [_coarse(v) for v in values] if (coarse or len(values) > EXACT_BINS) else list(values)
    keys.append(None)
    return keys, codes


def add_batch(counts: dict[tuple[str, str], Counts], coarse: set[tuple[str, str]], rb: pa.RecordBatch,
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
                    counts[pair] = _coarsen(counts[pair])
            combined = (kcodes * len(glabels) + gcodes) * 2 + half
            n_all = np.bincount(combined, minlength=len(keys) * len(glabels) * 2)
            uniq = np.flatnonzero(n_all)
            n = n_all[uniq]
            cell = counts.setdefault(pair, {})
            for u, c in zip(uniq.tolist(), n.tolist()):
                k, h = divmod(u, 2)
                k, g = divmod(k, len(glabels))
                key = (keys[k], glabels[g], h)
                cell[key] = cell.get(key, 0) + c
            _settle(counts, coarse, pair)


def merge_counts(a: dict[tuple[str, str], Counts], ca: set, b: dict[tuple[str, str], Counts], cb: set) -> None:
    """Add b's counts into a (and b's coarse flags into ca)."""
    for pair, cell in b.items():
        if pair in cb and pair not in ca:
            ca.add(pair)
            a[pair] = _coarsen(a.get(pair, {}))
        if pair in ca and pair not in cb:
            cell = _coarsen(cell)
        mine = a.setdefault(pair, {})
        for key, n in cell.items():
            mine[key] = mine.get(key, 0) + n
        _settle(a, ca, pair)


def _settle(counts: dict[tuple[str, str], Counts], coarse: set, pair: tuple[str, str]) -> None:
    if pair in coarse:
        return
    if len({k[0] for k in counts[pair]} - {None}) > EXACT_BINS:
        coarse.add(pair)
        counts[pair] = _coarsen(counts[pair])


def _coarsen(cell: Counts) -> Counts:
    out: Counts = {}
    for (key, g, h), n in cell.items():
        k = (_coarse(key), g, h)
        out[k] = out.get(k, 0) + n
    return out


def _order(key: Key) -> tuple:
    if key is None:
        return (0, 0, "")
    if isinstance(key, float):
        return (1, key, "")
    if isinstance(key, str):
        return (2, 0, key)
    return (3 if key[0] == "n" else 4, key[1], "")


def table(cell: Counts) -> tuple[list[Key], list[str], np.ndarray]:
    """(sorted bin keys, sorted groups without MISSING, counts[bin, group, half])."""
    keys = sorted({k for k, _g, _h in cell}, key=_order)
    groups = sorted({g for _k, g, _h in cell} - {MISSING})
    ki = {k: i for i, k in enumerate(keys)}
    gi = {g: i for i, g in enumerate(groups)}
    m = np.zeros((len(keys), len(groups), 2), dtype=np.float64)
    for (k, g, h), n in cell.items():
        if g in gi:
            m[ki[k], gi[g], h] += n
    return keys, groups, m
