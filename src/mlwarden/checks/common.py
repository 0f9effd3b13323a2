"""Small helpers shared by check families."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

SAMPLE_IDS = 20


def row_ids(rb: pa.RecordBatch, offset: int, id_column: str | None) -> np.ndarray:
    """Row ids of a batch: the spec's id column when the batch has it, else row ordinals."""
    if id_column and id_column in rb.schema.names:
        return rb.column(id_column).to_numpy(zero_copy_only=False)
    return np.arange(offset, offset + rb.num_rows, dtype=np.int64)


def py(v: Any) -> Any:
    """A JSON-friendly Python value from a numpy scalar."""
    return v.item() if isinstance(v, np.generic) else v


def first_ids(chunks: list[np.ndarray], limit: int = SAMPLE_IDS) -> list[Any]:
    out: list[Any] = []
    for c in chunks:
        out.extend(py(v) for v in c[: limit - len(out)])
        if len(out) >= limit:
            break
    return out
