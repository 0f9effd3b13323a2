"""Proxy bins do not depend on how a split is cut into batches (a bug the process pool found)."""

from __future__ import annotations

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
