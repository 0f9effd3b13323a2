"""The model's decisions on a batch: from prediction columns, or from the safe-loaded model.

A :class:`Predictor` keeps only the spec (paths and names), so it pickles cheaply to
worker processes and Dask workers; each process loads the model once, through
:func:`mlwarden.loader.load_model`, and caches it by (path, mtime, size) so a model
replaced on disk is loaded afresh.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import SourceError
from ..spec import Spec

_MODELS: dict[tuple[str, int, int], Any] = {}


def _load(path: str, allow: Sequence[str]) -> Any:
    from ..loader import load_model

    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _MODELS:
        for old in [k for k in _MODELS if k[0] == path]:
            del _MODELS[old]
        _MODELS[key] = load_model(path, allow=allow)
    return _MODELS[key]


def _norm(v: Any) -> Any:
    """A label value in a comparable form: numbers and booleans as float, text as text."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return None if math.isnan(f) else f
    if isinstance(v, str):
        s = v.strip()
        low = s.lower()
        if low in ("true", "false"):
            return 1.0 if low == "true" else 0.0
        try:
            f = float(s)
        except ValueError:
            return v
        return None if math.isnan(f) else f
    return v


class Predictor:
    """Predicted labels and scores for a batch, the way the spec says to get them."""

    def __init__(self, spec: Spec) -> None:
        self.artifact = spec.artifact()
        self.allow = tuple(spec.model.allow) if spec.model else ()
        self.prediction = spec.data.prediction
        self.score = spec.data.score
        self.label = spec.data.label
        self.excluded = {spec.data.label, spec.data.id, spec.data.time, spec.data.prediction,
                         spec.data.score} - {None}
        self.favorable_value = spec.fairness.favorable
        self._fav = _norm(spec.fairness.favorable)

    @property
    def available(self) -> bool:
        return bool(self.prediction or self.artifact)

    @property
    def source(self) -> str:
        """``"column"`` when predictions come from the data, ``"model"`` otherwise."""
        return "column" if self.prediction else "model"

    def model(self) -> Any:
        if not self.artifact:
            raise SourceError("no model: set model.artifact or data.prediction in the spec")
        return _load(self.artifact, self.allow)

    def feature_columns(self, columns: Sequence[str]) -> list[str]:
        """The columns the model reads: its ``feature_names_in_``, else every non-special column."""
        if self.artifact and not self.prediction:
            names = getattr(self.model(), "feature_names_in_", None)
            if names is not None:
                return [str(n) for n in names]
        return [c for c in columns if c not in self.excluded]

    def columns(self, columns: Sequence[str]) -> list[str]:
        """Every column :meth:`predict` reads from a split with ``columns``."""
        if self.prediction:
            return [c for c in (self.prediction, self.score) if c]
        return self.feature_columns(columns)

    def predict(self, batch: pa.RecordBatch | pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """(predicted labels, score of the favorable label or None) for every row."""
        frame_cols = list(batch.columns) if isinstance(batch, pd.DataFrame) else list(batch.schema.names)
        if self.prediction:
            pred = _values(batch, self.prediction)
            return pred, _floats(batch, self.score) if self.score else None
        model = self.model()
        feats = self.feature_columns(frame_cols)
        missing = [c for c in feats if c not in frame_cols]
        if missing:
            raise SourceError(f"the model reads columns the data lacks: {', '.join(missing[:8])}")
        if isinstance(batch, pd.DataFrame):
            X = batch[feats]
        else:
            X = batch.select(feats).to_pandas()
        if X.empty:
            return np.empty(0, dtype=object), None
        pred = np.asarray(model.predict(X))
        score = None
        if self.score and self.score in frame_cols:
            score = _floats(batch, self.score)
        elif hasattr(model, "predict_proba"):
            classes = list(getattr(model, "classes_", []))
            hit = [i for i, c in enumerate(classes) if _norm(c) == self._fav]
            if hit:
                score = np.asarray(model.predict_proba(X))[:, hit[0]].astype(np.float64)
        return pred, score

    def favorable(self, values: np.ndarray) -> np.ndarray:
        """True where ``values`` equal the favorable label (1, 1.0, "1" and True alike)."""
        arr = np.asarray(values)
        fav = self._fav
        if arr.dtype.kind in "biuf":
            if not isinstance(fav, float):
                return np.zeros(arr.shape, dtype=bool)
            return arr.astype(np.float64) == fav
        codes, uniques = pd.factorize(pd.Series(arr.ravel(), dtype=object), use_na_sentinel=True)
        hits = np.array([_norm(u) == fav for u in uniques] + [False], dtype=bool)
        return hits[codes].reshape(arr.shape)


def _values(batch: pa.RecordBatch | pd.DataFrame, column: str) -> np.ndarray:
    if isinstance(batch, pd.DataFrame):
        return batch[column].to_numpy()
    col = batch.column(column)
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type) and col.null_count == 0:
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(col.to_pylist(), dtype=object) if col.null_count else col.to_numpy(zero_copy_only=False)


def _floats(batch: pa.RecordBatch | pd.DataFrame, column: str) -> np.ndarray:
    """A score column as float64, with NaN where it is null."""
    if isinstance(batch, pd.DataFrame):
        return pd.to_numeric(batch[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    col = batch.column(column)
    return col.cast(pa.float64()).to_numpy(zero_copy_only=False)
