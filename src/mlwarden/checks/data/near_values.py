"""Normalized value keys for near duplicates: equal up to case, punctuation, spacing, rounding or noise.

Text is case-folded, punctuation dropped, spaces collapsed and trimmed; numbers are
quantized on a log scale (:data:`LOG_STEPS` = 256 steps per doubling, so 0.27 % wide);
timestamps to the second. A value close to a cell boundary would fall either side of it,
so numbers and sub-second timestamps get a cell on each of :data:`GRIDS` = 4 grids shifted
by a quarter step: two values within a quarter step (relative difference under 0.068 %)
share a cell on at least three of the four grids.

Text, categories, dates and whole-second timestamps fall in the same cell on every grid;
:func:`grid_hashes` returns one hash per row for them (not four equal ones), so a table
of mostly such columns hashes them once, not four times.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .rowhash import _GOLDEN, _mix, column_hash, dictionary

GRIDS = 4
LOG_STEPS = 256.0  # quantization steps per doubling
_U64 = np.uint64
DISTINCT_MIN = 1024  # rows under which numbers are hashed directly
_MISSING = _U64(0x51)
_SHIFTS = np.arange(GRIDS, dtype=np.float64) / GRIDS
_MISSING_TEXT = column_hash(pa.array([None], pa.large_string()))[0]


def normalize_text(arr: pa.Array) -> pa.Array:
    """Lower case, punctuation dropped, runs of white space as one space, trimmed."""
    arr = pc.utf8_lower(arr)
    arr = pc.replace_substring_regex(arr, r"[^\w\s]", "")
    arr = pc.replace_substring_regex(arr, r"\s+", " ")
    return pc.utf8_trim_whitespace(arr)


def grid_hashes(arr: pa.Array | pa.ChunkedArray, salt: np.uint64) -> np.ndarray:
    """uint64 hashes of normalized values, salted: (rows,) when every grid agrees, else (GRIDS × rows).

    Equal normalized values (on a grid) hash equal; the salt (a hash of the column's name)
    makes equal values of different columns hash apart, so hashes can be summed over columns.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        # ages, counts, codes, rounded rates: hash each distinct value once, then index (a
        # look at the first rows spares encoding columns of mostly distinct values for nothing)
        if len(arr) < 4 * DISTINCT_MIN or pc.count_distinct(arr.slice(0, 4 * DISTINCT_MIN)).as_py() > DISTINCT_MIN:
            return _number_hashes(arr, salt)
        try:
            enc = dictionary(arr)
        except pa.ArrowNotImplementedError:
            return _number_hashes(arr, salt)
        if len(enc.dictionary) * 4 > len(arr):
            return _number_hashes(arr, salt)
        per_value = _number_hashes(pa.concat_arrays([enc.dictionary, pa.nulls(1, enc.dictionary.type)]), salt)
        codes = np.asarray(enc.indices.fill_null(len(enc.dictionary)), dtype=np.int64)
        return np.take(per_value, codes, axis=1)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        keys = _time_keys(arr)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        # normalize each distinct value once (regexes are most of the cost), then index
        enc = dictionary(arr)
        per_value = column_hash(normalize_text(enc.dictionary))
        codes = np.asarray(enc.indices.fill_null(0), dtype=np.int64)
        keys = per_value[codes] if per_value.size else np.zeros(len(arr), dtype=_U64)
        keys = np.where(np.asarray(arr.is_null(), dtype=bool), _MISSING_TEXT, keys)
    else:
        keys = column_hash(arr)
    return _salted(keys, salt)


def value_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(rows × GRIDS) uint64 hashes of normalized values; equal columns for grid-free values."""
    h = grid_hashes(arr, _U64(0))
    return h.T if h.ndim == 2 else np.repeat(h[:, None], GRIDS, axis=1)


def _salted(keys: np.ndarray, salt: np.uint64) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _mix((keys * _GOLDEN) ^ salt)


def _time_keys(arr: pa.Array) -> np.ndarray:
    if pa.types.is_date(arr.type):
        arr = pc.cast(arr, pa.timestamp("ns"))
    ns = np.asarray(pc.cast(pc.cast(arr, pa.timestamp("ns", tz=arr.type.tz), safe=False), pa.int64())
                    .fill_null(0), dtype=np.int64)
    valid = ~np.asarray(arr.is_null(), dtype=bool)
    if not (ns % 1_000_000_000).any():  # whole seconds (dates too): one cell on every grid
        cells = (ns // 1_000_000_000).view(_U64) ^ _U64(0x7173)
        return np.where(valid, cells, _MISSING)
    sec = ns / 1e9
    cells = np.floor(sec[None, :] + _SHIFTS[:, None]).astype(np.int64).view(_U64) ^ _U64(0x7173)
    return np.where(valid[None, :], cells, _MISSING)


def _number_hashes(arr: pa.Array, salt: np.uint64) -> np.ndarray:
    # A number's cell on grid k is floor(lg + k/4) with lg its log in steps: the cell below
    # or above floor(lg), as the fraction of lg reaches 1 - k/4. So hash those two cells
    # (two hashes a value, not four) and pick per grid.
    x = np.asarray(pc.cast(arr, pa.float64(), safe=False).fill_null(np.nan), dtype=np.float64)
    valid = np.isfinite(x)
    nonzero = valid & (x != 0)
    lg = np.zeros(x.size)
    np.log2(np.abs(x, where=nonzero, out=np.ones(x.size)), where=nonzero, out=lg)
    lg *= LOG_STEPS
    below = np.floor(lg)
    frac = lg - below
    # cell × 4 + sign (1 or 2); zero is 3 and missing (and ±inf) 0: no cell is either
    low = below.astype(np.int64).view(_U64) * _U64(4) + np.where(x < 0, _U64(1), _U64(2))
    low = np.where(nonzero, low, np.where(valid, _U64(3), _U64(0)))
    h_low = _salted(low, salt)
    h_high = _salted(np.where(nonzero, low + _U64(4), low), salt)
    out = np.empty((GRIDS, x.size), _U64)
    out[0] = h_low
    for k in range(1, GRIDS):
        out[k] = np.where(frac >= 1 - _SHIFTS[k], h_high, h_low)
    return out
