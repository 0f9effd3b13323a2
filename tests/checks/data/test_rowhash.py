"""Row hashes: equal rows hash equal whatever their storage, different rows differ."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlwarden.checks.data.rowhash import (
    column_hash,
    compact_sets,
    count_distinct,
    dictionary,
    in_sorted,
    in_sorted_sets,
    index_of,
    row_hashes,
    search_sorted,
    sort_codes,
    sorted_unique,
    value_counts,
)


def one(values: list, type: pa.DataType | None = None) -> np.ndarray:
    return column_hash(pa.array(values, type=type))


def rows(columns: dict) -> np.ndarray:
    batch = pa.record_batch(columns)
    return row_hashes(batch, list(batch.schema.names))


def test_numbers_compare_by_value_across_int_float_bool() -> None:
    ints = one([1, 0, 5, -3], pa.int64())
    assert (one([1, 0, 5, -3], pa.int8()) == ints).all()
    assert (one([1, 0, 5], pa.uint32()) == ints[:3]).all()
    assert (one([1.0, 0.0, 5.0, -3.0], pa.float64()) == ints).all()
    assert (one([1.0, 0.0, 5.0, -3.0], pa.float32()) == ints).all()
    assert (one([True, False]) == ints[:2]).all()


def test_distinct_values_hash_differently() -> None:
    h = one([0, 1, 2, -1, 2**40, None], pa.int64())
    f = one([0.5, 1.5, -0.5, 1e300, math.inf, -math.inf])
    assert len(set(h.tolist()) | set(f.tolist())) == 12


def test_negative_zero_is_zero() -> None:
    assert one([-0.0])[0] == one([0.0])[0] == one([0], pa.int64())[0]


def test_nan_and_null_are_one_missing_value_across_types() -> None:
    missing = one([math.nan, None])
    assert missing[0] == missing[1]
    assert one([None], pa.int64())[0] == missing[0]
    assert one([None], pa.string())[0] == missing[0]
    assert one([None], pa.timestamp("ms"))[0] == missing[0]
    assert one([None], pa.null())[0] == missing[0]
    assert missing[0] != one([0.0])[0]
    assert missing[0] != one([""])[0]


def test_strings_hash_exactly() -> None:
    h = one(["a", "A", "a ", "1", "1.0", "", "é", "e\u0301"])
    assert len(set(h.tolist())) == 8
    assert one(["1"])[0] != one([1], pa.int64())[0]  # a string is not a number
    assert (one(["x", "y"], pa.large_string()) == one(["x", "y"])).all()


def test_dictionary_encoded_strings_equal_plain_strings() -> None:
    plain = one(["north", "south", None, "north"])
    encoded = column_hash(pa.array(["north", "south", None, "north"]).dictionary_encode())
    assert (encoded == plain).all()
    ints = column_hash(pa.array([3, 4, 3], pa.int64()).dictionary_encode())
    assert (ints == one([3.0, 4.0, 3.0])).all()


def test_timestamps_compare_by_instant_whatever_the_unit() -> None:
    s = pa.array([0, 1_700_000_000], pa.timestamp("s"))
    h = column_hash(s)
    for unit, scale in (("ms", 10**3), ("us", 10**6), ("ns", 10**9)):
        assert (column_hash(pa.array([0, 1_700_000_000 * scale], pa.timestamp(unit))) == h).all()
    assert column_hash(pa.array([0], pa.date32()))[0] == h[0]  # a date is its midnight
    utc = pa.array([1_700_000_000], pa.timestamp("s", tz="UTC"))
    assert column_hash(utc)[0] == h[1]
    assert column_hash(pa.array([1_700_000_001], pa.timestamp("s")))[0] != h[1]


def test_column_order_is_irrelevant_but_names_matter() -> None:
    a = rows({"x": [1, 2], "y": ["p", "q"], "z": [0.5, None]})
    b = rows({"z": [0.5, math.nan], "y": ["p", "q"], "x": [1.0, 2.0]})
    assert (a == b).all()
    assert (row_hashes(pa.record_batch({"x": [1, 2], "y": [2, 1]}), ["y", "x"])
            == row_hashes(pa.record_batch({"y": [2, 1], "x": [1, 2]}), ["x", "y"])).all()
    swapped = rows({"x": [5], "y": [6]}), rows({"x": [6], "y": [5]})
    assert swapped[0][0] != swapped[1][0]
    renamed = rows({"x": [5], "w": [6]})
    assert renamed[0] != swapped[0][0]


def test_one_changed_value_changes_the_row() -> None:
    base = {"a": [1] * 6, "b": ["s"] * 6, "c": [0.25] * 6}
    changed = {"a": [1, 2, 1, 1, 1, 1], "b": ["s", "s", "t", "s", "s", None], "c": [0.25, 0.25, 0.25, 0.5, None, 0.25]}
    h, g = rows(base), rows(changed)
    assert h[0] == g[0]
    assert (h[1:] != g[1:]).all()
    assert len(set(g.tolist())) == 6


def test_a_rows_hash_depends_only_on_the_row() -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    table = pa.table({
        "i": rng.integers(-50, 50, n),
        "f": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "s": pa.array(rng.choice(["a", "b", "c", "d"], n)).dictionary_encode(),
        "t": pa.array(rng.integers(0, 10**9, n), pa.timestamp("ms")),
    })
    whole = row_hashes(table, table.column_names)
    for size in (1, 7, 999, 4_096):
        parts = [row_hashes(b, table.column_names) for b in table.to_batches(max_chunksize=size)]
        assert (np.concatenate(parts) == whole).all()
    reversed_rows = row_hashes(table.take(np.arange(n)[::-1]), table.column_names)
    assert (reversed_rows == whole[::-1]).all()
    chunked = pa.table({k: pa.chunked_array([table[k].combine_chunks()[:100], table[k].combine_chunks()[100:]])
                        for k in table.column_names})
    assert (row_hashes(chunked, table.column_names) == whole).all()


@pytest.mark.parametrize("base", [2**53, 2**62, -(2**53), 2**63 - 4])
def test_large_ints_stay_distinct_from_their_neighbours(base: int) -> None:
    h = one([base - 1, base, base + 1, base + 2, base + 3], pa.int64())
    assert len(set(h.tolist())) == 5


def test_an_integral_float_beyond_2_53_equals_its_integer() -> None:
    assert one([2.0**60])[0] == one([2**60], pa.int64())[0]
    assert one([2.0**53 + 0.0])[0] != one([2**53 + 1], pa.int64())[0]


def test_empty_batch_and_no_columns() -> None:
    assert row_hashes(pa.record_batch({"a": pa.array([], pa.int64())}), ["a"]).shape == (0,)
    h = row_hashes(pa.record_batch({"a": [1, 2, 3]}), [])
    assert h.dtype == np.uint64 and (h == h[0]).all()  # no features: every row alike


def test_compact_sets_keeps_the_union_and_bounds_the_list() -> None:
    rng = np.random.default_rng(7)
    chunks = [np.unique(rng.integers(0, 5_000, int(rng.integers(1, 2_000))).astype(np.uint64)) for _ in range(100)]
    out = compact_sets(chunks, limit=16)
    assert len(out) == 16
    assert all(np.array_equal(c, np.unique(c)) for c in out)  # each still sorted and distinct
    assert np.array_equal(np.unique(np.concatenate(out)), np.unique(np.concatenate(chunks)))
    assert compact_sets(chunks[:3], limit=16) == sorted(chunks[:3], key=len)  # under the limit: untouched


def test_in_sorted_and_distinct_agree_with_numpy() -> None:
    rng = np.random.default_rng(3)
    hay = np.unique(rng.integers(0, 10_000, 3_000).astype(np.uint64))
    values = rng.integers(0, 12_000, 5_000).astype(np.uint64)  # some above the largest haystack value
    assert np.array_equal(in_sorted(values, hay), np.isin(values, hay))
    assert not in_sorted(values, np.empty(0, np.uint64)).any()
    assert count_distinct(values) == np.unique(values).size
    assert count_distinct(np.empty(0, np.uint64)) == 0
    assert np.array_equal(sorted_unique(values), np.unique(values))
    assert sorted_unique(np.empty(0, np.uint64)).size == 0


@pytest.mark.parametrize("needles", [100, 50_000])  # below and above the size that sorts the needles
@pytest.mark.parametrize("side", ["left", "right"])
def test_search_sorted_is_numpy_searchsorted(needles: int, side: str) -> None:
    rng = np.random.default_rng(needles)
    hay = np.sort(rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64))  # large: past the haystack bar
    v = np.concatenate([rng.choice(hay, needles // 2), rng.integers(0, 2**64 - 1, needles - needles // 2,
                                                                     dtype=np.uint64), hay[:1], hay[-1:]])
    rng.shuffle(v)
    assert np.array_equal(search_sorted(hay, v, side), np.searchsorted(hay, v, side))


def test_in_sorted_sets_is_isin_of_the_union_in_the_values_order() -> None:
    rng = np.random.default_rng(4)
    sets = [np.unique(rng.integers(0, 2**40, n).astype(np.uint64)) for n in (120_000, 70_000, 10, 0)]
    v = np.concatenate([rng.choice(s, 3_000) for s in sets[:3]] + [rng.integers(0, 2**40, 9_000).astype(np.uint64)])
    rng.shuffle(v)
    got = in_sorted_sets(v, sets)
    assert np.array_equal(got, np.isin(v, np.concatenate(sets)))
    assert 9_000 <= got.sum() < v.size  # both outcomes occur
    assert np.array_equal(in_sorted(v, sets[0]), np.isin(v, sets[0]))
    assert not in_sorted_sets(v, []).any() and in_sorted_sets(v[:0], sets).size == 0


def test_index_of_finds_each_value_or_minus_one() -> None:
    keys = np.array([2**63 + 5, 3, 70, 1], np.uint64)  # distinct, any order
    v = np.array([70, 4, 2**63 + 5, 1, 1, 0], np.uint64)
    assert index_of(keys, v).tolist() == [2, -1, 0, 3, 3, -1]
    assert index_of(np.empty(0, np.uint64), v).tolist() == [-1] * 6


@pytest.mark.parametrize("values", [[5, 3, 5, 9, 3, 1], [1, 1, 2, 7, 7, 9], [4], []])
def test_sort_codes_is_unique_with_inverse(values: list[int]) -> None:
    # distinct values in first-seen order (unsorted), already in order, one, none
    v = np.array(values, dtype=np.uint64)
    codes, uniq = sort_codes(*pd.factorize(v))
    want_uniq, want_inv = np.unique(v, return_inverse=True)
    np.testing.assert_array_equal(uniq, want_uniq)
    np.testing.assert_array_equal(codes, want_inv.reshape(-1))


def test_shared_encodings_and_counts_are_arrows_own_per_array() -> None:
    """Checks share one dictionary encoding and one value count per array: the same result
    as Arrow's, computed once for one array, never handed to another array's content."""
    import pyarrow.compute as pc

    a = pa.array(["b", None, "a", "b", None, "c", " "])
    assert value_counts(a).equals(pc.value_counts(a))
    assert value_counts(a, nulls=False).equals(pc.value_counts(a.drop_null()))
    assert dictionary(a).equals(a.dictionary_encode())
    assert dictionary(a) is dictionary(a) and value_counts(a) is value_counts(a)  # computed once
    same_text = pa.array(["b", None, "a", "b", None, "c", " "])  # equal content, other buffers
    assert value_counts(same_text) is not value_counts(a) and value_counts(same_text).equals(value_counts(a))
    for view in (a.slice(1), a.slice(0, 3), a.slice(2, 3)):  # same buffers, other offset or length
        assert value_counts(view).equals(pc.value_counts(view))
        assert dictionary(view).equals(view.dictionary_encode())
    chunked = pa.chunked_array([a, a])
    assert value_counts(chunked, nulls=False).equals(pc.value_counts(pc.drop_null(chunked)))
    for i in range(200):  # a stream of batches: every one counted as itself
        b = pa.array([f"v{i}"] * (i % 3 + 1) + [None])
        assert value_counts(b, nulls=False).to_pylist() == [{"values": f"v{i}", "counts": i % 3 + 1}]
