"""The detectors' feature space: numbers scaled to comparable units, categories one-hot.

Distances between queries only mean something when a step in one feature weighs like a step
in another. :class:`Encoder` maps the gateway's numeric matrix (model order, a category as its
index among the allowed values — :class:`~mlwarden.guard.schema.Validated.matrix`) to:

- a number: ``(x - centre) / scale``, where centre and scale are the median and IQR of a
  reference sample (the training data) when one is given, else the midpoint and range of the
  schema's bounds; a feature with neither falls back to scale 1, and the encoder says so in
  :attr:`Encoder.unscaled`;
- a category with known values: one column per value, each ``1/sqrt(2)``, so that changing the
  category moves a row by exactly 1 — the same as moving a number by its whole scale.

Rows are float64 ``[n, width]``. :func:`encode` takes a DataFrame (the same path: the frame
becomes the gateway's matrix first, so there is one reader of categories, not two).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from ..sources.model import FeatureSchema

HOT = 1 / math.sqrt(2)


class Encoder:
    """Schema (and optional reference sample) → an affine map plus one-hot expansion."""

    def __init__(self, schema: FeatureSchema, reference: pd.DataFrame | None = None) -> None:
        self.schema = schema
        self.names = schema.names
        self._index = [{str(v): i for i, v in enumerate(f.values)}
                       if f.kind == "category" and f.values is not None else None for f in schema.features]
        centre, scale, self.unscaled = [], [], []
        for f, idx in zip(schema.features, self._index):
            if idx is not None:
                centre.append(0.0)
                scale.append(1.0)
                continue
            c, s = _robust(reference[f.name]) if reference is not None and f.name in reference.columns else (None, None)
            if s is None and f.min is not None and f.max is not None and math.isfinite(f.max - f.min) and f.max > f.min:
                c, s = (f.min + f.max) / 2, f.max - f.min
            if s is None:
                c, s = 0.0, 1.0
                self.unscaled.append(f.name)
            centre.append(float(c if c is not None else 0.0))
            scale.append(float(s))
        self.centre = np.asarray(centre)
        self.scale = np.asarray(scale)
        self.numeric = np.asarray([idx is None for idx in self._index])
        self.width = int(self.numeric.sum()) + sum(len(idx) for idx in self._index if idx is not None)

    @property
    def features(self) -> int:
        return len(self.names)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """A frame as the gateway's matrix: model order, category → index (unknown → -1)."""
        out = np.empty((len(frame), self.features), dtype=np.float64)
        for j, (name, idx) in enumerate(zip(self.names, self._index)):
            col = frame[name]
            if idx is not None:
                out[:, j] = [idx.get(str(v), -1) for v in col]
            elif pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                out[:, j] = pd.to_numeric(col.astype("float64") if pd.api.types.is_bool_dtype(col) else col,
                                          errors="coerce").to_numpy(dtype=np.float64)
            else:  # a category the schema lists no values for: the gateway's stable hash, as a number
                out[:, j] = [zlib.crc32(str(v).encode()) % 1000 for v in col]
        return out

    def encode_matrix(self, m: np.ndarray) -> np.ndarray:
        """The gateway's matrix ``[n, features]`` → encoded rows ``[n, width]`` (NaN → 0 distance)."""
        m = np.asarray(m, dtype=np.float64)
        if m.ndim == 1:
            m = m.reshape(1, -1)
        out = np.zeros((m.shape[0], self.width), dtype=np.float64)
        col = 0
        for j, idx in enumerate(self._index):
            if idx is None:
                out[:, col] = (m[:, j] - self.centre[j]) / self.scale[j]
                col += 1
                continue
            k = np.rint(np.nan_to_num(m[:, j], nan=-1.0)).astype(np.int64)
            ok = (k >= 0) & (k < len(idx))
            out[np.flatnonzero(ok), col + k[ok]] = HOT
            col += len(idx)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1e6, neginf=-1e6)
        return out

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        return self.encode_matrix(self.matrix(frame))


def _robust(col: pd.Series) -> tuple[float | None, float | None]:
    x = pd.to_numeric(col.astype("float64") if pd.api.types.is_bool_dtype(col) else col, errors="coerce").dropna()
    if x.empty:
        return None, None
    q1, med, q3 = np.quantile(x.to_numpy(dtype=np.float64), [0.25, 0.5, 0.75])
    s = q3 - q1
    if not s > 0:  # a mostly-constant column: the range still tells how far a change goes
        s = float(x.max() - x.min())
    return (float(med), float(s)) if s > 0 and math.isfinite(s) else (None, None)


def encode(schema: FeatureSchema, frame: pd.DataFrame, reference: Any = None) -> np.ndarray:
    """Rows of ``frame`` in the detectors' normalized space (see the module docstring)."""
    return Encoder(schema, reference).encode(frame)
