"""Sort-merge key joins (keyjoin) and normalized value hashing (near_values) of near duplicates."""

from __future__ import annotations

import decimal

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.checks.data import keyjoin, near_values
from mlwarden.checks.data.near_match import _mix_in_place
from mlwarden.checks.data.rowhash import _mix, sorted_unique


def keys(rng: np.random.Generator, n: int, distinct: int) -> np.ndarray:
    return _mix(rng.integers(0, distinct, n).astype(np.uint64))


@pytest.mark.parametrize(("n_train", "n_ev", "distinct"), [(5000, 800, 3000), (3000, 4000, 50), (0, 10, 5),
                                                           (10, 0, 5), (1, 1, 1)])
def test_joins_agree_with_a_dictionary(n_train: int, n_ev: int, distinct: int) -> None:
    rng = np.random.default_rng(n_train + n_ev)
    train, ev = keys(rng, n_train, distinct), keys(rng, n_ev, distinct)
    rows_of: dict[int, list[int]] = {}
    for i, k in enumerate(train.tolist()):
        rows_of.setdefault(k, []).append(i)
    expect = [rows_of.get(k, []) for k in ev.tolist()]
    assert keyjoin.counts(train, ev).tolist() == [len(r) for r in expect]
    m = keyjoin.matches(train, ev)
    assert [m.rows[s:s + c].tolist() for s, c in zip(m.start, m.count)] == expect  # every row, in row order
    assert keyjoin.first_match(train, ev).tolist() == [r[0] if r else -1 for r in expect]
    assert any(expect) or distinct > n_train or not n_ev  # the cases do exercise matches


def test_rows_with_finds_exactly_the_members_despite_filter_collisions() -> None:
    values = np.arange(100_000, dtype=np.uint64) * np.uint64(1 << 20)  # equal low bits: all pass the bitmap
    wanted = np.array([0, 5 << 20, 99_999 << 20, 7], np.uint64)
    assert keyjoin.rows_with(values, sorted_unique(wanted)).tolist() == [0, 5, 99_999]
    assert sorted_unique(np.array([3, 1, 3, 2, 1], np.uint64)).tolist() == [1, 2, 3]


def test_in_place_mix_is_the_row_hash_mix() -> None:
    x = np.random.default_rng(0).integers(0, 2**63, 1000).astype(np.uint64)
    assert (_mix_in_place(x.copy()) == _mix(x)).all()


NUMBERS = [
    pa.array(np.random.default_rng(1).integers(0, 50, 8192)),
    pa.array([None if i % 7 == 0 else i % 9 - 4 for i in range(8192)]),
    pa.array(np.where(np.arange(8192) % 10 == 0, np.nan,
                      np.resize(np.array([0.0, -0.0, 1.5, np.inf, -np.inf, -2.25]), 8192))),
    pa.array(np.arange(8192) % 3 == 0),
    pa.array([decimal.Decimal(i % 30) / 100 for i in range(8192)]),
    pa.array((np.arange(8192) % 40).astype(np.uint8)),
]


@pytest.mark.parametrize("arr", NUMBERS, ids=lambda a: str(a.type))
def test_low_cardinality_numbers_hash_per_distinct_value_as_they_would_row_by_row(arr: pa.Array) -> None:
    salt = np.uint64(5)
    assert len(arr.dictionary_encode().dictionary) * 4 <= len(arr)  # the per-distinct path is the one taken
    assert (near_values.grid_hashes(arr, salt) == near_values._number_hashes(arr, salt)).all()


def test_grid_free_values_get_one_hash_and_others_four() -> None:
    salt = np.uint64(1)
    whole = pa.array(np.array([0, 86_400, 3_600], "datetime64[s]"))
    fine = pa.array(np.array([0, 1_500, 3_600_250], "datetime64[ms]"))
    assert near_values.grid_hashes(whole, salt).shape == (3,)
    assert near_values.grid_hashes(pa.array(np.array([1, 2], "datetime64[D]")), salt).shape == (2,)
    assert near_values.grid_hashes(pa.array(["a", None]), salt).shape == (2,)
    h = near_values.grid_hashes(fine, salt)
    assert h.shape == (4, 3)
    # 1.5 s sits on a cell boundary: grids disagree on it, as they should; whole seconds do not
    assert len(set(h[:, 1].tolist())) == 2 and len(set(h[:, 0].tolist())) == 1
    assert (near_values.value_hashes(whole)[:, 0] == near_values.value_hashes(whole)[:, 3]).all()
