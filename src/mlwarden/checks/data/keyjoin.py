"""Equi-joins of 64-bit hash keys, evaluation rows against training rows, in near-linear time.

Both near-duplicate detectors reduce to one question asked of two key columns (train,
millions of rows; evaluation, fewer): which training rows carry the key of each evaluation
row? ``np.searchsorted`` with needles in random order is the trap here: every needle is a
cold binary search through a sorted array far larger than the cache, so at ten million
training rows it costs more than sorting both sides (measured: 3.9 s against 0.1 s for
three million needles, sorted or not). So both sides are sorted, and the needles go in in
order. Training rows are then found only for the keys that did match, through a bitmap of
those keys' low bits (a Bloom filter with one hash: the keys are already mixed), so the
argsort that gives row numbers runs over the few matching rows, not the whole column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rowhash import sorted_unique

FILTER_BITS = 16  # bitmap cells per key: about 1 in 16 non-keys passes the filter


@dataclass(frozen=True)
class Matches:
    """Per evaluation row: how many training rows share its key, and where they are.

    ``rows`` holds the training rows of every matched key, grouped by key (ascending) and
    in row order within a key; an evaluation row's run starts at ``start`` and is ``count`` long.
    """

    count: np.ndarray  # (n_eval,) int64
    start: np.ndarray  # (n_eval,) int64, meaningful where count > 0
    rows: np.ndarray  # training row numbers


def counts(train: np.ndarray, ev: np.ndarray) -> np.ndarray:
    """How many training keys equal each evaluation key (both uint64)."""
    ks = np.sort(train)
    order = np.argsort(ev)
    es = ev[order]
    lo = np.searchsorted(ks, es, side="left")
    found = np.flatnonzero(ks[np.minimum(lo, max(ks.size - 1, 0))] == es) if ks.size else np.empty(0, np.int64)
    out = np.zeros(ev.size, np.int64)
    # most keys match nothing: the second search is for the few that do
    out[order[found]] = np.searchsorted(ks, es[found], side="right") - lo[found]
    return out


def matches(train: np.ndarray, ev: np.ndarray, count: np.ndarray | None = None) -> Matches:
    """Every training row sharing each evaluation row's key (``count`` from :func:`counts`, if known)."""
    count = counts(train, ev) if count is None else count
    hit = np.flatnonzero(count > 0)
    start = np.zeros(ev.size, np.int64)
    if not hit.size:
        return Matches(count, start, np.empty(0, np.int64))
    keys = sorted_unique(ev[hit])
    rows = rows_with(train, keys)
    tk = train[rows]
    order = np.argsort(tk, kind="stable")  # stable: row order within a key
    rows, tk = rows[order], tk[order]
    start[hit] = np.searchsorted(tk, ev[hit], side="left")
    return Matches(count, start, rows)


def first_match(train: np.ndarray, ev: np.ndarray) -> np.ndarray:
    """For each evaluation key: the first training row with an equal key, -1 if none."""
    m = matches(train, ev)
    out = np.full(ev.size, -1, np.int64)
    hit = m.count > 0
    out[hit] = m.rows[m.start[hit]]
    return out


def rows_with(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Ascending positions of ``values`` equal to one of ``keys`` (sorted, distinct uint64)."""
    if not keys.size or not values.size:
        return np.empty(0, np.int64)
    size = 1 << max(12, int(keys.size * FILTER_BITS - 1).bit_length())
    mask = np.uint64(size - 1)
    bitmap = np.zeros(size, bool)
    bitmap[(keys & mask).view(np.int64)] = True
    maybe = np.flatnonzero(bitmap[(values & mask).view(np.int64)])
    v = values[maybe]
    pos = np.minimum(np.searchsorted(keys, v), keys.size - 1)
    return maybe[keys[pos] == v]
