"""What the data-bias checks count as missing, and how they round figures for the report.

Shared by fairness.representation and fairness.base_rates, so that both agree on which
rows are missing a value and report numbers the same way.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data.rowhash import dictionary


def null_mask(col: pa.Array) -> np.ndarray:
    """Null, NaN and blank text all count as missing (CSV readers turn blanks into nulls)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    mask = np.asarray(pc.is_null(col, nan_is_null=True).to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        # blank values found among the distinct ones (the encoding other checks share), not per row
        enc = dictionary(col)
        blank = np.asarray(pc.equal(pc.utf8_trim_whitespace(enc.dictionary), "").to_numpy(zero_copy_only=False),
                           dtype=bool)
        if blank.any():
            mask |= blank[np.asarray(enc.indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)]
    return mask



def rounded(x: float, d: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), d)


def significant(x: float) -> float | None:
    """p- and q-values to three significant digits (rounding would turn 1e-12 into 0)."""
    return None if x is None or not math.isfinite(x) else float(f"{x:.3g}")

