"""Group labels from sensitive attributes: one attribute or an intersection of several.

A value becomes its text (``1.0`` reads ``"1"``, as Arrow casts it); a null, a NaN or an
empty string becomes :data:`MISSING`, a group of its own — rows without a sensitive value
are never dropped, because who is missing is often part of the disparity. Intersections
read ``"race=black & sex=female"``.

:func:`group_codes` is the fast path folds use: integer codes per row plus the labels
they index, so a batch of a million rows never becomes a million Python strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MISSING = "(missing)"


def _column(data: pa.RecordBatch | pa.Table, attr: str) -> pa.Array:
    col = data.column(attr)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _as_text(col: pa.Array) -> pa.Array:
    """The column as strings, with null for null, NaN and empty text."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_floating(col.type):
        col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    if pa.types.is_boolean(col.type):
        col = pc.if_else(col, pa.scalar("true"), pa.scalar("false"))
    text = col if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) else pc.cast(col, pa.string())
    return pc.if_else(pc.equal(pc.utf8_trim_whitespace(text), ""), pa.scalar(None, text.type), text)


def group_codes(data: pa.RecordBatch | pa.Table, attr: str) -> tuple[np.ndarray, list[str]]:
    """Per-row integer codes for ``attr`` and the group label each code stands for."""
    enc = pc.dictionary_encode(_as_text(_column(data, attr)), null_encoding="encode")
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    labels = [MISSING if v is None else str(v) for v in enc.dictionary.to_pylist()]
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if enc.indices.null_count:  # an encoded null has no dictionary slot in some versions
        codes = np.where(enc.indices.is_null().to_numpy(zero_copy_only=False), len(labels), codes)
        labels.append(MISSING)
    return _dedupe(codes, labels)


def _dedupe(codes: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Merge codes whose labels coincide (null and "" both read MISSING)."""
    uniq = sorted(set(labels))
    if len(uniq) == len(labels):
        return codes, labels
    remap = np.array([uniq.index(lab) for lab in labels], dtype=np.int64)
    return remap[codes] if codes.size else codes, uniq


def intersection_codes(data: pa.RecordBatch | pa.Table,
                       attrs: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Per-row codes of the combination of ``attrs`` and the value tuple each code stands for."""
    if not attrs:
        raise ValueError("name at least one sensitive attribute")
    combined = np.zeros(data.num_rows, dtype=np.int64)
    per_attr: list[list[str]] = []
    stride = 1
    for attr in reversed(attrs):
        codes, labels = group_codes(data, attr)
        combined += codes * stride
        stride *= max(1, len(labels))
        per_attr.insert(0, labels)
    present, inverse = np.unique(combined, return_inverse=True)
    shape = tuple(max(1, len(lab)) for lab in per_attr)
    idx = np.unravel_index(present, shape) if present.size else tuple(np.empty(0, np.int64) for _ in attrs)
    keys = [tuple(per_attr[a][int(idx[a][k])] for a in range(len(attrs))) for k in range(present.size)]
    return inverse.astype(np.int64, copy=False).reshape(-1), keys


def intersection_label(attrs: Sequence[str], values: Sequence[str]) -> str:
    """``"race=black & sex=female"`` for several attributes; the bare value for one."""
    if len(attrs) == 1:
        return str(values[0])
    return " & ".join(f"{a}={v}" for a, v in zip(attrs, values))


def group_labels(batch: pa.RecordBatch | pa.Table, attrs: Sequence[str]) -> np.ndarray:
    """The group of every row as an object array of str (MISSING for null/NaN/empty)."""
    attrs = list(attrs)
    codes, keys = intersection_codes(batch, attrs)
    names = np.array([intersection_label(attrs, k) for k in keys] or [MISSING], dtype=object)
    return names[codes] if codes.size else np.empty(0, dtype=object)
