"""The guard's input schema: what a real input looks like, from the spec and the model.

Built from the model's :class:`~mlwarden.sources.model.FeatureSchema` (the spec's
``features:`` first, the training data where the spec is silent) and the spec's
``constraints:``. A request passes when it carries every feature, one tensor per feature
(shape ``[n]`` or ``[n, 1]``) or one ``[n, d]`` numeric tensor in model order, at most
``max_rows`` rows, and every value fits: numbers finite, whole where the feature is an int,
on the feature's step, within [min, max]; categories among the allowed values; each one-hot
group with exactly one column set; every relational constraint holding. The first problem
is the answer: ``input 'age' row 3: 150 is above the maximum 100``.

Validation runs on plain numpy columns: a one-row request is checked in tens of microseconds.
The pandas frame the model reads is built only when the model is called, once.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..constraints import (
    Constraint,
    ConstraintError,
    applicable,
    check_columns,
    evaluate,
    parse,
)
from ..sources.model import Feature, FeatureSchema
from .errors import Invalid, TooLarge
from .wire import InferCall, WireTensor

NUMERIC_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"}
MAX_TEXT = 256


@dataclass(frozen=True)
class Validated:
    """A request that passed: its columns, a numeric matrix for the detectors, and (on demand) the
    model's input frame."""

    columns: dict[str, np.ndarray]
    """One checked column per feature, in model order."""
    matrix: np.ndarray
    """float64 ``[n, d]`` in model order; a category is its index among the allowed values."""

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def frame(self) -> pd.DataFrame:
        """The model's input, built on first use only (a DataFrame costs more than all the checks).

        Not ``functools.cached_property``: on Python 3.11 it holds one lock for every instance, which
        would serialise concurrent requests here."""
        f = self.__dict__.get("_frame")
        if f is None:
            f = pd.DataFrame(self.columns, copy=False)
            object.__setattr__(self, "_frame", f)  # a cache, not state: frozen stays true to its fields
        return f


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else repr(v) if isinstance(v, str) else str(v)


class InputSchema:
    def __init__(self, schema: FeatureSchema, constraints: Sequence[str] = (), *, max_rows: int = 1000) -> None:
        self.schema = schema
        self.names = schema.names
        self.max_rows = max_rows
        self.groups = schema.groups()
        self.constraints: list[Constraint] = []
        self.skipped: list[str] = []
        for text in constraints:
            c = parse(text)
            try:
                check_columns(c, self.names)
                self.constraints.append(c)
            except ConstraintError:
                self.skipped.append(c.text)  # reads the label or other non-inputs: not checkable on a request
        self._values = {f.name: {str(v): v for v in f.values} if f.values is not None else None for f in schema.features}
        self._index = {f.name: {str(v): i for i, v in enumerate(f.values)} if f.values is not None else None
                       for f in schema.features}

    def metadata(self) -> list[dict[str, Any]]:
        """OIP v2 ``inputs`` of the model metadata: one ``[-1, 1]`` tensor per feature."""
        dt = {"int": "INT64", "float": "FP64", "bool": "BOOL"}
        out = []
        for f in self.schema.features:
            numeric_values = f.values is not None and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          for v in f.values)
            d = dt.get(f.kind, "INT64" if f.kind == "category" and numeric_values else "BYTES")
            out.append({"name": f.name, "datatype": d, "shape": [-1, 1]})
        return out

    def validate(self, call: InferCall) -> Validated:
        cols = self._columns(call.inputs)
        n = len(next(iter(cols.values())))
        self._groups(cols)
        self._relations(cols)
        matrix = np.empty((n, len(self.names)), dtype=np.float64)
        for j, f in enumerate(self.schema.features):
            col = cols[f.name]
            if f.kind == "category":
                idx = self._index[f.name]
                matrix[:, j] = [idx[str(v)] for v in col] if idx is not None else [zlib.crc32(str(v).encode()) % 1000 for v in col]
            else:
                matrix[:, j] = np.asarray(col, dtype=np.float64)
        return Validated(cols, matrix)

    def _columns(self, inputs: tuple[WireTensor, ...]) -> dict[str, np.ndarray]:
        d = len(self.names)
        if len(inputs) == 1 and inputs[0].name not in self.names and len(inputs[0].shape) == 2 and d > 1:
            t = inputs[0]
            if t.shape[1] != d:
                raise Invalid(f"input '{t.name}': shape {list(t.shape)}; a single matrix input must be [n, {d}] "
                              f"with the features in this order: {', '.join(self.names[:20])}")
            if t.datatype not in NUMERIC_TYPES:
                raise Invalid(f"input '{t.name}': a matrix input must be numeric, not {t.datatype}; "
                              "send one tensor per feature instead")
            rows = self._rows(t.shape[0])
            columns = [t.data[i::d] for i in range(d)]  # row-major [n, d]: column i is every d-th value
            return {f.name: self._column(f, WireTensor(f.name, t.datatype, (rows,), columns[j]))
                    for j, f in enumerate(self.schema.features)}
        seen: dict[str, WireTensor] = {}
        for t in inputs:
            if t.name not in self._values:
                raise Invalid(f"unknown input '{t.name}'; the model reads: {', '.join(self.names[:20])}")
            if t.name in seen:
                raise Invalid(f"input '{t.name}' is given twice")
            seen[t.name] = t
        missing = [n for n in self.names if n not in seen]
        if missing:
            raise Invalid(f"missing input(s): {', '.join(missing[:20])}")
        n: int | None = None
        for t in seen.values():
            if not (len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1)):
                raise Invalid(f"input '{t.name}': shape {list(t.shape)}; a feature is [n] or [n, 1]")
            if n is None:
                n = self._rows(t.shape[0])
            elif t.shape[0] != n:
                raise Invalid(f"input '{t.name}' has {t.shape[0]} rows, other inputs have {n}")
        return {f.name: self._column(f, seen[f.name]) for f in self.schema.features}

    def _rows(self, n: int) -> int:
        if n < 1:
            raise Invalid("the request has no rows")
        if n > self.max_rows:
            raise TooLarge(f"the request has {n} rows; at most {self.max_rows} are accepted per request")
        return n

    def _column(self, f: Feature, t: WireTensor) -> np.ndarray:
        if f.kind == "category":
            return self._category(f, t)
        if f.kind == "bool":
            if t.datatype == "BOOL" or t.datatype in NUMERIC_TYPES:
                for i, v in enumerate(t.data):
                    if not (isinstance(v, bool) or (isinstance(v, (int, float)) and v in (0, 1))):
                        raise Invalid(f"input '{f.name}' row {i}: {_fmt(v)} is not a boolean (true/false or 0/1)")
                return np.asarray(t.data, dtype=bool)
            raise Invalid(f"input '{f.name}' has datatype {t.datatype}; expected BOOL")
        if t.datatype not in NUMERIC_TYPES:
            raise Invalid(f"input '{f.name}' has datatype {t.datatype}; expected a number (FP64, FP32, INT64…)")
        for i, v in enumerate(t.data):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise Invalid(f"input '{f.name}' row {i}: {_fmt(v)[:40]} is not a number")
            if isinstance(v, int) and abs(v) > 2 ** 53:
                raise Invalid(f"input '{f.name}' row {i}: {str(v)[:24]} is too large")
        if len(t.data) == 1:
            return self._one_number(f, float(t.data[0]))
        x = np.asarray(t.data, dtype=np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            i = int(np.argmax(bad))
            raise Invalid(f"input '{f.name}' row {i}: {_fmt(float(x[i]))} is not a finite number")
        if f.kind == "int":
            frac = x != np.round(x)
            if frac.any():
                i = int(np.argmax(frac))
                raise Invalid(f"input '{f.name}' row {i}: {_fmt(float(x[i]))} is not a whole number")
            big = np.abs(x) > 2 ** 53  # a whole float past 2**53 would wrap in the int64 cast
            if big.any():
                i = int(np.argmax(big))
                raise Invalid(f"input '{f.name}' row {i}: {_fmt(float(x[i]))} is too large")
        if f.min is not None and (x < f.min).any():
            i = int(np.argmax(x < f.min))
            raise Invalid(f"input '{f.name}' row {i}: {_fmt(float(x[i]))} is below the minimum {_fmt(float(f.min))}")
        if f.max is not None and (x > f.max).any():
            i = int(np.argmax(x > f.max))
            raise Invalid(f"input '{f.name}' row {i}: {_fmt(float(x[i]))} is above the maximum {_fmt(float(f.max))}")
        if f.step is not None and f.step != 1.0:
            q = (x - (f.min or 0.0)) / f.step
            off = np.abs(q - np.round(q)) > 1e-6
            if off.any():
                i = int(np.argmax(off))
                raise Invalid(f"input '{f.name}' row {i}: {_fmt(float(x[i]))} is not a multiple of the step "
                              f"{_fmt(float(f.step))}")
        return x.astype(np.int64) if f.kind == "int" else x

    def _one_number(self, f: Feature, x: float) -> np.ndarray:
        """:meth:`_column`'s checks on a single value in plain Python, in the same order and with the
        same messages: one-row requests are the common case, and numpy's per-call cost was most of it."""
        if not math.isfinite(x):
            raise Invalid(f"input '{f.name}' row 0: {_fmt(x)} is not a finite number")
        if f.kind == "int" and not x.is_integer():
            raise Invalid(f"input '{f.name}' row 0: {_fmt(x)} is not a whole number")
        if f.kind == "int" and abs(x) > 2 ** 53:
            raise Invalid(f"input '{f.name}' row 0: {_fmt(x)} is too large")
        if f.min is not None and x < f.min:
            raise Invalid(f"input '{f.name}' row 0: {_fmt(x)} is below the minimum {_fmt(float(f.min))}")
        if f.max is not None and x > f.max:
            raise Invalid(f"input '{f.name}' row 0: {_fmt(x)} is above the maximum {_fmt(float(f.max))}")
        if f.step is not None and f.step != 1.0:
            q = (x - (f.min or 0.0)) / f.step
            if abs(q - np.round(q)) > 1e-6:  # numpy's round: a huge quotient may be inf, as in the array path
                raise Invalid(f"input '{f.name}' row 0: {_fmt(x)} is not a multiple of the step {_fmt(float(f.step))}")
        a = np.array([x], dtype=np.float64)
        return a.astype(np.int64) if f.kind == "int" else a  # astype as the array path (it wraps past 2**63)

    def _category(self, f: Feature, t: WireTensor) -> np.ndarray:
        allowed = self._values[f.name]
        if t.datatype != "BYTES" and t.datatype not in NUMERIC_TYPES and t.datatype != "BOOL":
            raise Invalid(f"input '{f.name}' has datatype {t.datatype}; expected BYTES (text)")
        out = []
        for i, v in enumerate(t.data):
            if not isinstance(v, (str, int, float)) or (isinstance(v, str) and len(v) > MAX_TEXT):
                raise Invalid(f"input '{f.name}' row {i}: not a category value")
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if allowed is not None:
                key = str(v)
                if key not in allowed:
                    shown = ", ".join(sorted(allowed)[:12])
                    raise Invalid(f"input '{f.name}' row {i}: {_fmt(v)[:40]} is not one of the allowed values: {shown}")
                v = allowed[key]
            out.append(v)
        return np.asarray(out, dtype=object)

    def _groups(self, columns: dict[str, np.ndarray]) -> None:
        for g, cols in self.groups.items():
            block = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c in cols])
            if not np.isin(block, (0.0, 1.0)).all():
                i = int(np.argmax(~np.isin(block, (0.0, 1.0)).all(axis=1)))
                raise Invalid(f"row {i}: one-hot group '{g}' takes only 0 or 1 in {', '.join(cols)}")
            ones = block.sum(axis=1)
            if (ones != 1).any():
                i = int(np.argmax(ones != 1))
                raise Invalid(f"row {i}: one-hot group '{g}' must have exactly one of {', '.join(cols)} set to 1 "
                              f"(has {int(ones[i])})")

    def _relations(self, cols: dict[str, np.ndarray]) -> None:
        for c in self.constraints:
            broken = applicable(c, cols) & ~evaluate(c, cols)
            if broken.any():
                raise Invalid(f"row {int(np.argmax(broken))} violates the constraint '{c.text}'")
