"""The space an attack searches: the model's features encoded as floats, with their domains.

Numbers stay as they are; a category (or bool) becomes the index of its value in the
schema's ``values``. :class:`Space` knows each feature's bounds, step (granularity), allowed
values, one-hot group and whether it is immutable, plus the spec's relational constraints
over the model's columns, and turns encoded rows back into the DataFrame the model reads
(:meth:`Space.frame`) or the column arrays the constraints read (:meth:`Space.env`).

A feature left at the value of the real row it started from is always acceptable (real rows
define what exists); a feature the attack changed must be inside its domain; and every
relational constraint must hold on the whole row (:meth:`Space.valid`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..constraints import Constraint, applicable, evaluate
from ..sources.model import FeatureSchema

TOL = 1e-9


@dataclass(frozen=True)
class Space:
    schema: FeatureSchema
    lo: np.ndarray
    hi: np.ndarray
    step: np.ndarray
    """NaN where a feature has no granularity."""
    anchor: np.ndarray
    categorical: np.ndarray
    immutable: np.ndarray
    groups: tuple[tuple[int, ...], ...]
    values: tuple[tuple[object, ...] | None, ...]
    constraints: tuple[Constraint, ...]
    ignored: tuple[str, ...] = ()
    """Constraints that read columns the model does not: the attack cannot move them, so they are not enforced."""

    @classmethod
    def build(cls, schema: FeatureSchema, constraints: Sequence[Constraint] = ()) -> Space:
        fs = schema.features
        lo = np.array([f.min if f.numeric and f.min is not None else -np.inf for f in fs], float)
        hi = np.array([f.max if f.numeric and f.max is not None else np.inf for f in fs], float)
        categorical = np.array([not f.numeric for f in fs])
        values = tuple(tuple(f.values) if not f.numeric and f.values is not None else None for f in fs)
        for i, v in enumerate(values):
            if categorical[i]:
                lo[i], hi[i] = 0.0, float(max(0, len(v or ()) - 1))
        step = np.array([f.step if f.numeric and f.step else np.nan for f in fs], float)
        step[categorical] = 1.0
        anchor = np.zeros(len(fs))  # steps are multiples of the step, as data.quality.out_of_range checks them
        index = {n: i for i, n in enumerate(schema.names)}
        groups = tuple(tuple(index[c] for c in cols) for cols in schema.groups().values())
        for g in groups:  # one-hot columns are 0/1 whatever the data's min/max said
            lo[list(g)], hi[list(g)], step[list(g)], anchor[list(g)] = 0.0, 1.0, 1.0, 0.0
        kept = tuple(c for c in constraints if set(c.columns) <= set(index))
        ignored = tuple(c.text for c in constraints if not set(c.columns) <= set(index))
        return cls(schema=schema, lo=lo, hi=hi, step=step, anchor=anchor, categorical=categorical,
                   immutable=np.array([f.immutable for f in fs]), groups=groups, values=values,
                   constraints=kept, ignored=ignored)

    @property
    def names(self) -> list[str]:
        return self.schema.names

    @property
    def width(self) -> int:
        return len(self.schema.features)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), self.width), float)
        for i, f in enumerate(self.schema.features):
            col = frame[f.name]
            if self.categorical[i]:
                lookup = {_key(v): k for k, v in enumerate(self.values[i] or ())}
                out[:, i] = [lookup.get(_key(v), np.nan) for v in col.tolist()]
            else:
                out[:, i] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        return out

    def env(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Column arrays as the constraints (and the model) read them."""
        out: dict[str, np.ndarray] = {}
        for i, f in enumerate(self.schema.features):
            if self.categorical[i]:
                vals = np.asarray(list(self.values[i] or ()) + [None], dtype=object)
                codes = np.where(np.isfinite(X[:, i]), X[:, i], len(vals) - 1).astype(int)
                out[f.name] = vals[np.clip(codes, 0, len(vals) - 1)]
            else:
                out[f.name] = X[:, i]
        return out

    def frame(self, X: np.ndarray) -> pd.DataFrame:
        env = self.env(X)
        cols: dict[str, object] = {}
        for i, f in enumerate(self.schema.features):
            v = env[f.name]
            if f.kind == "int" and np.all(np.isfinite(v)):
                v = np.rint(v).astype(np.int64)
            elif f.kind == "bool" and all(isinstance(x, (bool, np.bool_)) for x in v):
                v = v.astype(bool)
            cols[f.name] = v
        return pd.DataFrame(cols)

    def snap(self, X: np.ndarray, X0: np.ndarray) -> np.ndarray:
        """Per-feature projection: immutables back, one-hot groups to one column, values to their
        domain (bounds, step, category codes). Features equal to ``X0`` are left as they are."""
        X = np.array(X, float)
        X0 = np.broadcast_to(np.atleast_2d(X0), X.shape)
        X[:, self.immutable] = X0[:, self.immutable]
        for g in self.groups:
            cols = list(g)
            block = X[:, cols]
            same = np.all(np.abs(block - X0[:, cols]) <= TOL, axis=1)
            pick = np.argmax(np.nan_to_num(block, nan=-np.inf), axis=1)
            onehot = np.zeros_like(block)
            onehot[np.arange(len(block)), pick] = 1.0
            X[:, cols] = np.where(same[:, None], block, onehot)
        changed = ~(np.abs(X - X0) <= TOL) & ~(np.isnan(X) & np.isnan(X0))
        stepped = np.isfinite(self.step)
        grid = np.where(stepped, self.anchor + np.round((X - self.anchor) / np.where(stepped, self.step, 1.0))
                        * np.where(stepped, self.step, 1.0), X)
        lo_g = np.where(stepped, self.anchor + np.ceil((self.lo - self.anchor) / np.where(stepped, self.step, 1) - TOL)
                        * np.where(stepped, self.step, 1), self.lo)
        hi_g = np.where(stepped, self.anchor + np.floor((self.hi - self.anchor) / np.where(stepped, self.step, 1) + TOL)
                        * np.where(stepped, self.step, 1), self.hi)
        fixed = np.clip(grid, lo_g, hi_g)
        return np.where(changed, fixed, X)

    def domain_ok(self, X: np.ndarray, X0: np.ndarray) -> np.ndarray:
        """Rows whose changed features all lie in their domain, immutables and groups intact."""
        X0 = np.broadcast_to(np.atleast_2d(X0), X.shape)
        changed = ~(np.abs(X - X0) <= TOL) & ~(np.isnan(X) & np.isnan(X0))
        ok = ~np.any(changed[:, self.immutable], axis=1)
        stepped = np.isfinite(self.step)
        k = (X - self.anchor) / np.where(stepped, self.step, 1.0)
        on_grid = ~stepped | (np.abs(k - np.round(k)) <= 1e-6)
        inside = (X >= self.lo - 1e-9 * np.maximum(1, np.abs(self.lo))) & \
                 (X <= self.hi + 1e-9 * np.maximum(1, np.abs(self.hi)))
        ok &= np.all(~changed | (on_grid & inside), axis=1)
        for g in self.groups:
            cols = list(g)
            touched = np.any(changed[:, cols], axis=1)
            block = X[:, cols]
            onehot = np.all((block == 0) | (block == 1), axis=1) & (block.sum(axis=1) == 1)
            ok &= ~touched | onehot
        return ok

    def relations_ok(self, X: np.ndarray) -> np.ndarray:
        """Rows that satisfy every relational constraint (rows with a missing value they read count as satisfied)."""
        ok = np.ones(len(X), bool)
        if not self.constraints:
            return ok
        env = self.env(X)
        for c in self.constraints:
            ok &= evaluate(c, env) | ~applicable(c, env)
        return ok

    def valid(self, X: np.ndarray, X0: np.ndarray) -> np.ndarray:
        return self.domain_ok(X, X0) & self.relations_ok(X)


def _key(v: object) -> object:
    """Category values compare by text, so 1 / 1.0 / '1' from parquet and spec meet."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
