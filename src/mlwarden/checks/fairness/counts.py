"""What the data-bias checks count as missing, and how they round figures for the report.

Shared by fairness.representation and fairness.base_rates, so that both agree on which
rows are missing a value and report numbers the same way.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def null_mask(col: pa.Array) -> np.ndarray:
    """Null, NaN and blank text all count as missing (CSV readers turn blanks into nulls)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    mask = pc.is_null(col, nan_is_null=True)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        mask = pc.or_(mask, pc.equal(pc.utf8_trim_whitespace(col), "").fill_null(False))
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)



def rounded(x: float, d: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), d)


def significant(x: float) -> float | None:
    """p- and q-values to three significant digits (rounding would turn 1e-12 into 0)."""
    return None if x is None or not math.isfinite(x) else float(f"{x:.3g}")

