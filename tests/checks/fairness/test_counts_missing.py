"""What the data-bias checks count as missing: null, NaN and blank text, in any storage."""

from __future__ import annotations

import pyarrow as pa

from mlwarden.checks.fairness.counts import null_mask


def test_null_nan_and_blank_text_are_missing() -> None:
    text = pa.array(["x", None, " ", "", "y", None, "  z", "\t"])
    assert null_mask(text).tolist() == [False, True, True, True, False, True, False, True]
    assert null_mask(text.slice(2, 3)).tolist() == [True, True, False]  # a view of the same buffers
    assert null_mask(pa.array(["a", "b"], pa.large_string())).tolist() == [False, False]
    assert null_mask(text.dictionary_encode()).tolist() == null_mask(text).tolist()
    assert null_mask(pa.chunked_array([text, text])).tolist() == null_mask(text).tolist() * 2
    assert null_mask(pa.array([1.0, float("nan"), None, 0.0])).tolist() == [False, True, True, False]
