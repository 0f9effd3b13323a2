"""One facade over the model under audit: the safe-loaded artifact or a live endpoint.

Every check that queries a model — attacks, counterfactuals, probes — goes through a
:class:`Model`: ``predict`` and, where the model exposes scores, ``predict_proba``, both on
a DataFrame of the model's features; the feature schema (names, kinds, bounds, immutables,
one-hot groups) from the model, the spec's ``features:`` and the training data; and one
:class:`QueryBudget` shared by every caller, so an attack cannot spend more queries than the
spec grants and every result can say how many it used.

A model behind an endpoint is opened from :mod:`mlwarden.sources.endpoint` (imported only
then); a local artifact only through :func:`mlwarden.loader.load_model`, which scans it
first. ``estimator`` is the loaded object for local models (for refitting clones, tree
internals, gradients) and ``None`` for endpoints: attacks that need it say so and skip.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import SourceError

Kind = Literal["int", "float", "category", "bool"]


class BudgetExceeded(SourceError):
    """A query would spend more than the budget the spec grants; nothing was sent."""


@dataclass
class QueryBudget:
    """Queries (rows sent to the model) allowed and used; thread-safe, shared by every caller."""

    limit: int | None
    used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def charge(self, n: int) -> None:
        """Count ``n`` queries, or raise :class:`BudgetExceeded` (counting none) when they don't fit."""
        with self._lock:
            if self.limit is not None and self.used + n > self.limit:
                raise BudgetExceeded(f"query budget exhausted: {self.used} of {self.limit} used, "
                                     f"{n} more asked; raise attacks.queries in the spec to allow more")
            self.used += n

    def __getstate__(self) -> dict[str, int | None]:
        # A budget sent to another process (a Dask worker) travels as a snapshot with a lock
        # of its own: attacks give each chunk its own allowance and add what the chunks used
        # to the parent budget when the results come back.
        return {"limit": self.limit, "used": self.used}

    def __setstate__(self, state: dict[str, int | None]) -> None:
        self.limit, self.used = state["limit"], int(state["used"] or 0)
        self._lock = threading.Lock()

    def child(self, limit: int | None) -> QueryBudget:
        """A sub-budget for one attack; spend it with :meth:`Model.with_budget`."""
        cap = self.remaining if limit is None else (limit if self.remaining is None else min(limit, self.remaining))
        return QueryBudget(cap)


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One input of the model, with what a real input can look like."""

    name: str
    kind: Kind
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] | None = None
    """Allowed values of a category/bool feature (from the spec, else the training data)."""
    immutable: bool = False
    step: float | None = None
    """Granularity of a numeric feature (1 for ints unless the spec says otherwise)."""
    group: str | None = None
    """Name of the one-hot group this 0/1 column belongs to (exactly one column of a group is 1)."""

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")


@dataclass(frozen=True)
class FeatureSchema:
    """The model's inputs in the order the model reads them."""

    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def groups(self) -> dict[str, list[str]]:
        """One-hot group name → its columns, in schema order."""
        out: dict[str, list[str]] = {}
        for f in self.features:
            if f.group:
                out.setdefault(f.group, []).append(f.name)
        return out

    def mutable(self) -> list[str]:
        return [f.name for f in self.features if not f.immutable]


def infer_schema(names: Sequence[str], data: pd.DataFrame | None, spec_features: dict[str, Any] | None = None) -> FeatureSchema:
    """The schema of ``names``: the spec's ``features:`` entries first, then what the data shows.

    Bounds not given by the spec are the observed min/max of ``data``; categories not listed
    by the spec are the observed values. ``spec_features`` maps a name to an object with the
    attributes of :class:`mlwarden.spec.FeatureSpec` (extra attributes such as ``group`` and
    ``step`` are read when present).
    """
    spec_features = spec_features or {}
    out = []
    for name in names:
        fs = spec_features.get(name)
        col = data[name] if data is not None and name in data.columns else None
        kind = _kind(getattr(fs, "type", None), col)
        lo, hi, values = getattr(fs, "min", None), getattr(fs, "max", None), getattr(fs, "values", None)
        if col is not None and kind in ("int", "float"):
            num = pd.to_numeric(col, errors="coerce")
            if lo is None and num.notna().any():
                lo = float(num.min())
            if hi is None and num.notna().any():
                hi = float(num.max())
        if values is None and col is not None and kind in ("category", "bool"):
            values = sorted(col.dropna().unique().tolist(), key=str)
        step = getattr(fs, "step", None)
        if step is None and kind == "int":
            step = 1.0
        out.append(Feature(name=name, kind=kind, min=lo, max=hi,
                           values=tuple(values) if values is not None else None,
                           immutable=bool(getattr(fs, "immutable", False)), step=step,
                           group=getattr(fs, "group", None)))
    return FeatureSchema(tuple(out))


def _kind(declared: str | None, col: pd.Series | None) -> Kind:
    if declared in ("int", "float", "bool"):
        return declared  # type: ignore[return-value]
    if declared in ("category", "str"):
        return "category"
    if col is None:
        return "float"
    if pd.api.types.is_bool_dtype(col):
        return "bool"
    if pd.api.types.is_integer_dtype(col):
        return "int"
    if pd.api.types.is_float_dtype(col):
        num = col.dropna()
        if len(num) and bool(np.all(np.equal(np.mod(num.to_numpy(), 1), 0))):
            return "int"
        return "float"
    return "category"


class Model(ABC):
    """A model that answers queries: local (safe-loaded) or remote (an endpoint).

    ``predict``/``predict_proba`` take a DataFrame whose columns include ``schema.names``
    and charge one query per row to ``budget`` before anything is computed or sent.
    """

    kind: Literal["local", "endpoint"]

    def __init__(self, *, schema: FeatureSchema, classes: Sequence[Any], budget: QueryBudget,
                 exposes_proba: bool, where: str) -> None:
        self.schema = schema
        self.classes = np.asarray(classes)
        self.budget = budget
        self.exposes_proba = exposes_proba
        self.where = where

    @property
    def estimator(self) -> Any | None:
        """The loaded object (local models), or None for an endpoint."""
        return None

    def with_budget(self, budget: QueryBudget) -> Model:
        """The same model, charging ``budget`` (and, through it, nothing else)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.budget = budget
        return clone

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        X = self._inputs(X)
        self.budget.charge(len(X))
        return np.asarray(self._predict(X)) if len(X) else np.empty(0, dtype=self.classes.dtype)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if not self.exposes_proba:
            raise SourceError(f"{self.where} does not expose scores; use predict (labels only)")
        X = self._inputs(X)
        self.budget.charge(len(X))
        if not len(X):
            return np.empty((0, len(self.classes)))
        return np.asarray(self._predict_proba(X), dtype=np.float64)

    def _inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        names = self.schema.names
        if X.columns.tolist() == names:
            return X  # already the model's columns in its order (the guard's frames): no copy
        missing = [n for n in names if n not in X.columns]
        if missing:
            raise SourceError(f"the model reads columns the data lacks: {', '.join(missing[:8])}")
        return X[self.schema.names]

    @abstractmethod
    def _predict(self, X: pd.DataFrame) -> np.ndarray: ...

    @abstractmethod
    def _predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


class LocalModel(Model):
    """A model file loaded through the safe loader."""

    kind = "local"

    def __init__(self, estimator: Any, *, schema: FeatureSchema, budget: QueryBudget, where: str) -> None:
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise SourceError(f"{where}: the model has no classes_; mlwarden attacks classifiers")
        super().__init__(schema=schema, classes=classes, budget=budget,
                         exposes_proba=hasattr(estimator, "predict_proba"), where=where)
        self._est = estimator

    @property
    def estimator(self) -> Any:
        return self._est

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._est.predict(X)

    def _predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._est.predict_proba(X)


def model_features(estimator: Any, columns: Sequence[str], excluded: set[str]) -> list[str]:
    """The columns a model reads: its ``feature_names_in_``, else every non-special column."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [c for c in columns if c not in excluded]


def open_model(spec: Any, *, data: pd.DataFrame | None = None, budget: QueryBudget | None = None,
               prefer: Literal["artifact", "endpoint"] = "artifact") -> Model:
    """The spec's model: its artifact (safe-loaded) or its endpoint, whichever ``prefer`` names and exists.

    ``data`` (a sample of the training split) fills in the schema where the spec's
    ``features:`` is silent. The budget defaults to ``spec.attacks.queries``.
    """
    budget = budget or QueryBudget(spec.attacks.queries)
    m = spec.model
    if m is None or not (m.artifact or m.endpoint):
        raise SourceError("no model: set model.artifact or model.endpoint in the spec")
    use_endpoint = bool(m.endpoint) and (prefer == "endpoint" or not m.artifact)
    excluded = {spec.data.label, spec.data.id, spec.data.time, spec.data.prediction, spec.data.score} - {None}
    if use_endpoint:
        from .endpoint import open_endpoint_model  # grpc/http clients load only when an endpoint is used

        return open_endpoint_model(m.endpoint, spec=spec, data=data, budget=budget, excluded=excluded)
    from ..loader import load_model

    path = spec.artifact()
    est = load_model(path, allow=m.allow)
    cols = list(data.columns) if data is not None else []
    names = model_features(est, cols, excluded)
    if not names:
        raise SourceError(f"{path}: cannot tell which columns the model reads (no feature_names_in_ and no data)")
    return LocalModel(est, schema=infer_schema(names, data, spec.features), budget=budget,
                      where=spec.display(path))


def finite_or_none(x: float) -> float | None:
    """A float for the report (JSON has no NaN)."""
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)
