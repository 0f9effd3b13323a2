"""PairTable and the feedback fold's value counts: equal to a plain dict count whatever the cut.

The fold counts from codes it already holds and merges sorted tables by binary search;
each of those paths (dense and sparse pair grids, narrow and wide merges, offset and
hashed integer keys) is checked here against counting the rows one by one in Python."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlwarden.checks.data.rowhash import column_hash, sort_codes
from mlwarden.checks.poisoning.feedback import FeedbackScreen, FeedbackState
from mlwarden.checks.poisoning.pairs import (
    _MERGE_WIDTH,
    PairTable,
    int_codes,
)


def reference(v: np.ndarray, lab: np.ndarray) -> dict[tuple[int, int], int]:
    return dict(Counter(zip(v.tolist(), lab.tolist())))


def assert_sorted_table(t: PairTable) -> None:
    keys = list(zip(t.v.tolist(), t.lab.tolist()))
    assert keys == sorted(set(keys)), "pairs must be distinct and sorted by (value, label)"
    assert t.v.dtype == np.uint64 and t.lab.dtype == np.uint64 and t.n.dtype == np.int64


def rows(rng: np.random.Generator, n: int, values: int, labels: int) -> tuple[np.ndarray, np.ndarray]:
    # large uint64 hashes, so that sorting as uint64 and as int64 would differ
    vpool = rng.integers(0, 2**64, values, dtype=np.uint64)
    lpool = rng.integers(0, 2**64, labels, dtype=np.uint64)
    return vpool[rng.integers(0, values, n)], lpool[rng.integers(0, labels, n)]


@pytest.mark.parametrize(("values", "labels"), [(30, 2), (500, 3), (3000, 40), (1, 1)])
def test_count_equals_dict_count(values: int, labels: int) -> None:
    # (3000, 40) has a value × label grid larger than the rows: the sparse path
    v, lab = rows(np.random.default_rng(values), 4000, values, labels)
    t = PairTable.count(v, lab)
    assert_sorted_table(t)
    assert t.as_dict() == reference(v, lab)


@pytest.mark.parametrize("labels", [2, 5, 3 * _MERGE_WIDTH])
def test_merge_in_any_order_and_cut_equals_dict_count(labels: int) -> None:
    # 3 × _MERGE_WIDTH labels put more than _MERGE_WIDTH pairs on one value: the merge by sort
    rng = np.random.default_rng(labels)
    v, lab = rows(rng, 6000, 400, labels)
    want = reference(v, lab)
    cuts = np.sort(rng.choice(np.arange(1, v.size), 7, replace=False))
    parts = [PairTable.count(a, b) for a, b in zip(np.split(v, cuts), np.split(lab, cuts))]
    forward, backward = PairTable(), PairTable()
    for p in parts:
        forward += p
        assert_sorted_table(forward)
    for p in reversed(parts):
        backward += p
    assert forward.as_dict() == want and backward.as_dict() == want
    assert np.array_equal(forward.v, backward.v) and np.array_equal(forward.lab, backward.lab)


def test_merge_of_disjoint_and_identical_tables() -> None:
    v, lab = rows(np.random.default_rng(7), 1000, 50, 3)
    low = PairTable.count(v[v < 2**63], lab[v < 2**63])
    high = PairTable.count(v[v >= 2**63], lab[v >= 2**63])
    both = PairTable()
    both += high
    both += low  # every pair of low goes before every pair of high
    assert both.as_dict() == reference(v, lab)
    both += PairTable.count(v, lab)  # every pair matched, none inserted
    assert both.as_dict() == {k: 2 * c for k, c in reference(v, lab).items()}


@pytest.mark.parametrize("keys", [np.arange(100, 400), np.array([0, 100_000, 5]), np.array([-100_050, -3, 7])])
def test_int_codes_count_like_hashing(keys: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    x = keys[rng.integers(0, keys.size, 2000)].astype(np.int64)
    lab = rng.integers(0, 2**64, 3, dtype=np.uint64)[rng.integers(0, 3, x.size)]
    codes, uniq = int_codes(x)
    assert np.array_equal(uniq[codes], x.view(np.uint64))
    lc, lu = sort_codes(*pd.factorize(lab))
    assert np.all(lu[1:] > lu[:-1]) and np.array_equal(lu[lc], lab)
    t = PairTable.from_codes(codes, uniq, lc, lu)
    assert_sorted_table(t)
    assert t.as_dict() == reference(x.view(np.uint64), lab)


def fold_values(values: list, labels: list, cuts: list[int]) -> FeedbackState:
    st = FeedbackState()
    for lo, hi in zip([0, *cuts], [*cuts, len(values)]):
        arr = pa.array(values[lo:hi])
        lab = np.array([hash(x) % 2**63 if x is not None else 0 for x in labels[lo:hi]], np.uint64)
        valid = np.array([x is not None for x in labels[lo:hi]])
        lc, lu = sort_codes(*pd.factorize(lab[valid]))
        FeedbackScreen._count_values(st, "train", "c", arr, column_hash(arr), None if valid.all() else valid, lc, lu)
    return st


def test_display_keeps_values_seen_only_on_unlabelled_rows() -> None:
    # "b" comes first on an unlabelled row, later on a labelled one; "z" is never labelled
    values = ["a", "b", "z", "a", "b", "c", "b", "c"]
    labels = ["y", None, None, "n", "y", "y", None, "n"]
    h = dict(zip(values, column_hash(pa.array(values)).tolist()))
    for cuts in ([], [2], [3, 5], [1, 2, 3, 4, 5, 6, 7]):
        st = fold_values(values, labels, cuts)
        assert st.display["train\x1fc"] == {h[x]: x for x in "abzc"}, cuts
        counted = Counter(v for v, lab in zip(values, labels) if lab is not None)
        table = st.values["train"]["c"]
        assert table is not None
        assert {v: int(table.n[table.v == h[v]].sum()) for v in counted} == dict(counted)
        assert h["z"] not in table.v.tolist()
