"""Proxy bins do not depend on how a split is cut into batches (a bug the process pool found)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyarrow as pa

from mlwarden.checks.fairness.bins import EXACT_BINS, add_batch, merge_counts


def _fold(batches: list[pa.RecordBatch]) -> tuple[dict, set]:
    counts: dict = {}
    coarse: set = set()
    for rb in batches:
        add_batch(counts, coarse, rb, ["x"], ["g"], np.zeros(rb.num_rows, dtype=np.int64))
    return counts, coarse


def test_a_batch_past_the_exact_limit_makes_the_whole_column_coarse() -> None:
    wide = pa.record_batch({"x": np.arange(3 * EXACT_BINS, dtype=np.float64) * 1.37,
                            "g": ["a", "b", "c"] * EXACT_BINS})
    narrow = pa.record_batch({"x": np.arange(10, dtype=np.float64) + 0.5, "g": ["a", "b"] * 5})
    whole = pa.Table.from_batches([wide, narrow]).combine_chunks().to_batches()[0]
    reference = _fold([whole])
    assert reference[1] == {("x", "g")}
    for order in ([wide, narrow], [narrow, wide]):
        assert _fold(order) == reference
    # and as two partitions merged, either way round
    for first, second in ((wide, narrow), (narrow, wide)):
        a, ca = _fold([first])
        b, cb = _fold([second])
        merge_counts(a, ca, b, cb)
        assert (a, ca) == reference


def _mixed(rows: int) -> pa.RecordBatch:
    """Columns for each path of the binning: exact numbers, a wide column and text with blanks."""
    rng = np.random.default_rng(7)
    wide = rng.lognormal(8, 2, rows)
    wide[::17] = np.nan
    text = rng.integers(0, 3 * EXACT_BINS, rows).astype(str).astype(object)
    text[::11], text[1::13] = None, "  "  # null and blank text are both missing
    return pa.record_batch({
        "small": pa.array(rng.integers(-3, 4, rows).astype(np.float64)),
        "wide": pa.array(wide, from_pandas=True),
        "text": pa.array(text.tolist(), pa.string()),
        "g": pa.array(rng.choice(np.array(["a", "b", "c", None], dtype=object), rows).tolist(), pa.string()),
    })


def _reference(rb: pa.RecordBatch, col: str, half: np.ndarray) -> dict:
    """The counts row by row, from the documented rules (a test oracle, not a fold)."""
    from collections import Counter

    from mlwarden.checks.fairness.bins import _coarse
    from mlwarden.fairness.groups import group_codes

    def exact(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
            return None
        return v + 0.0 if isinstance(v, float) else v

    values = [exact(v) for v in rb.column(col).to_pylist()]
    wide = len(set(values) - {None}) > EXACT_BINS
    codes, labels = group_codes(rb, "g")
    keys = [_coarse(v) if wide else v for v in values]
    return dict(Counter(zip(keys, [labels[c] for c in codes.tolist()], half.tolist())))


def test_counts_equal_a_row_by_row_reference_whatever_the_cut() -> None:
    whole = _mixed(1500)
    half = np.random.default_rng(3).integers(0, 2, whole.num_rows)
    cols = ["small", "wide", "text"]

    def fold(starts: list[int]) -> tuple[dict, set]:
        counts: dict = {}
        coarse: set = set()
        for lo, hi in pairwise(starts):
            add_batch(counts, coarse, whole.slice(lo, hi - lo), cols, ["g"], half[lo:hi])
        return counts, coarse

    one = fold([0, whole.num_rows])
    assert one[1] == {("wide", "g"), ("text", "g")}
    for col in cols:
        assert one[0][(col, "g")].to_dict() == _reference(whole, col, half), col
    # batches of 97 rows each hold fewer than EXACT_BINS values: the wide columns go coarse
    # only when their exact keys, added up over batches, pass the limit
    cuts = list(range(0, whole.num_rows, 97)) + [whole.num_rows]
    assert fold(cuts) == one
    a, ca = fold(cuts[:8])
    b, cb = fold(cuts[7:])
    merge_counts(b, cb, a, ca)  # partitions merged in either order
    assert (b, cb) == one


def test_counts_survive_a_pickle_and_read_as_a_table() -> None:
    import pickle

    from mlwarden.checks.fairness.bins import PairCounts, table

    rb = _mixed(300)
    counts: dict = {}
    add_batch(counts, set(), rb, ["text"], ["g"], np.zeros(rb.num_rows, dtype=np.int64))
    cell = pickle.loads(pickle.dumps(counts[("text", "g")], protocol=5))
    assert cell == counts[("text", "g")] and PairCounts.from_dict(cell.to_dict()) == cell
    keys, groups, m = table(cell)
    assert keys[0] is None and groups == ["a", "b", "c"] and m.dtype == np.float64
    assert int(m.sum()) == sum(n for (_k, g, _h), n in cell.to_dict().items() if g in groups)
    cell.add(keys, groups, m.astype(np.int64))  # an unpickled state keeps folding: counts double
    assert table(cell)[2].sum() == 2 * m.sum()
