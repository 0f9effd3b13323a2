"""The model's decisions on a batch: from prediction columns, or from the model through its facade.

A :class:`Predictor` keeps only the spec (paths, URL and names), so it pickles cheaply to
worker processes and Dask workers. The model is reached through :mod:`mlwarden.sources.model`:
a local artifact is loaded once per process through :func:`mlwarden.loader.load_model`
(via :class:`~mlwarden.sources.model.LocalModel`) and cached by (path, mtime, size), so a model
replaced on disk is loaded afresh; a spec with only ``model.endpoint`` is queried through
:class:`~mlwarden.sources.endpoint.EndpointModel`. Fairness decisions are not attack queries:
they run on an unlimited budget, bounded by the size of the split.
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
from ..sources.model import LocalModel, Model, QueryBudget, infer_schema, model_features
from ..spec import Spec

_MODELS: dict[tuple[Any, ...], Model] = {}


def _load(path: str, allow: Sequence[str], excluded: set[str]) -> Model:
    from ..loader import load_model

    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _MODELS:
        for old in [k for k in _MODELS if k[0] == path]:
            del _MODELS[old]
        est = load_model(path, allow=allow)
        names = model_features(est, [], excluded)  # feature_names_in_, or [] until a batch shows the columns
        _MODELS[key] = LocalModel(est, schema=infer_schema(names, None), budget=QueryBudget(None), where=path)
    return _MODELS[key]


def _endpoint(url: str, features: Sequence[str], sample: pd.DataFrame | None) -> Model:
    key = (url, tuple(features))
    if key not in _MODELS:
        from ..sources.endpoint import open_endpoint_model

        _MODELS[key] = open_endpoint_model(url, data=sample, features=list(features), budget=QueryBudget(None))
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
        self.endpoint = spec.model.endpoint if spec.model and not self.artifact else None
        self.allow = tuple(spec.model.allow) if spec.model else ()
        self.prediction = spec.data.prediction
        self.score = spec.data.score
        self.label = spec.data.label
        self.excluded: set[str] = {c for c in (spec.data.label, spec.data.id, spec.data.time,
                                               spec.data.prediction, spec.data.score) if c}
        self.favorable_value = spec.fairness.favorable
        self._fav = _norm(spec.fairness.favorable)

    @property
    def available(self) -> bool:
        return bool(self.prediction or self.artifact or self.endpoint)

    @property
    def source(self) -> str:
        """``"column"`` when predictions come from the data, ``"endpoint"`` from a live endpoint, else ``"model"``."""
        if self.prediction:
            return "column"
        return "endpoint" if self.endpoint and not self.artifact else "model"

    def model(self, columns: Sequence[str] | None = None, sample: pd.DataFrame | None = None) -> Model:
        """The model facade (cached per process); an endpoint needs the batch's ``columns``."""
        if self.artifact:
            return _load(self.artifact, self.allow, self.excluded)
        if self.endpoint:
            return _endpoint(self.endpoint, self.feature_columns(columns or []), sample)
        raise SourceError("no model: set model.artifact, model.endpoint or data.prediction in the spec")

    def feature_columns(self, columns: Sequence[str]) -> list[str]:
        """The columns the model reads: its ``feature_names_in_``, else every non-special column."""
        if self.artifact and not self.prediction:
            return model_features(self.model().estimator, columns, self.excluded)
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
        model = self.model(feats, X.iloc[:1])
        if model.schema.names != feats:  # a local model without feature_names_in_ reads the batch's columns
            model = LocalModel(model.estimator, schema=infer_schema(feats, None), budget=model.budget,
                               where=model.where)
        pred = np.asarray(model.predict(X))
        score = None
        if self.score and self.score in frame_cols:
            score = _floats(batch, self.score)
        elif model.exposes_proba:
            hit = [i for i, c in enumerate(model.classes.tolist()) if _norm(c) == self._fav]
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
