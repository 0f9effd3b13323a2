"""The cost of changing an input: the one definition every ``model.evasion.*`` attack uses.

cost(x → x') = Σ over changed features of
  - ``|Δ| / scale`` for a numeric feature, where ``scale`` is its interquartile range in the
    training data (else its range, else 1): moving one feature by its whole IQR costs 1.0;
  - 1 for a category feature whose value changes;
  - 1 for a one-hot group whose active column changes (counted once per group, not per column);
  - infinity when an immutable feature changes (nobody can pay it).

A missing value that becomes present (or the reverse) costs 1 unit of that feature. Rows are
compared in the encoded space of :class:`mlwarden.attacks.space.Space` (numbers as they are,
categories as codes), so for an all-numeric model the arrays are simply the feature values in
schema order and the tree attacks can call :meth:`CostModel.cost` on them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..sources.model import FeatureSchema


@dataclass(frozen=True)
class CostModel:
    """Per-feature cost weights in schema order (see the module docstring for the definition)."""

    names: tuple[str, ...]
    scales: tuple[float, ...]
    """Numeric features: the unit of change (IQR, else range, else 1); categories/groups: 1."""
    numeric: tuple[bool, ...]
    immutable: tuple[bool, ...]
    groups: tuple[tuple[int, ...], ...]
    """Column indices of each one-hot group; a group change costs 1 in all."""

    @classmethod
    def fit(cls, schema: FeatureSchema, train: pd.DataFrame | None) -> CostModel:
        """Scales from ``train`` (a sample of the training split with the schema's columns)."""
        scales, numeric = [], []
        grouped = {n for cols in schema.groups().values() for n in cols}
        for f in schema.features:
            is_num = f.numeric and f.name not in grouped
            numeric.append(is_num)
            scales.append(_scale(train[f.name] if train is not None and f.name in train.columns else None, f.min, f.max)
                          if is_num else 1.0)
        index = {n: i for i, n in enumerate(schema.names)}
        groups = tuple(tuple(index[c] for c in cols) for cols in schema.groups().values())
        return cls(names=tuple(schema.names), scales=tuple(scales), numeric=tuple(numeric),
                   immutable=tuple(f.immutable for f in schema.features), groups=groups)

    def per_feature(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        """(rows × features) cost of each feature's change; group columns carry 0 (see :meth:`cost`)."""
        x0, x1 = np.atleast_2d(np.asarray(x0, float)), np.atleast_2d(np.asarray(x1, float))
        n0, n1 = np.isnan(x0), np.isnan(x1)
        diff = np.abs(np.where(n0 | n1, 0.0, x1 - x0))
        scale = np.asarray(self.scales)
        num = np.asarray(self.numeric)
        out = np.where(num, diff / scale, (diff > 1e-12).astype(float))
        out = np.where(n0 ^ n1, 1.0, out)
        imm = np.asarray(self.immutable)
        changed_imm = (diff[:, imm] > 1e-12) | (n0 ^ n1)[:, imm]
        for g in self.groups:
            out[:, list(g)] = 0.0
        out[:, imm] = np.where(changed_imm, np.inf, 0.0)
        return out

    def group_changes(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        """(rows × groups) 1 where the group's active column changed."""
        x0, x1 = np.atleast_2d(np.asarray(x0, float)), np.atleast_2d(np.asarray(x1, float))
        if not self.groups:
            return np.zeros((len(x0), 0))
        return np.stack([np.any(np.abs(x1[:, list(g)] - x0[:, list(g)]) > 1e-12, axis=1).astype(float)
                         for g in self.groups], axis=1)

    def cost(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        """Cost of moving each row of ``x0`` to the same row of ``x1`` (broadcasts a single ``x0``)."""
        per = self.per_feature(x0, x1)
        total = per.sum(axis=1)
        if self.groups:
            total = total + self.group_changes(np.broadcast_to(np.atleast_2d(x0), per.shape), x1).sum(axis=1)
        return total

    def l0(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        """Features changed per row (a one-hot group counts once)."""
        per = self.per_feature(x0, x1)
        n = (per > 0).sum(axis=1)
        if self.groups:
            n = n + self.group_changes(np.broadcast_to(np.atleast_2d(x0), per.shape), x1).sum(axis=1)
        return n

    def distance(self, x0: np.ndarray, pool: np.ndarray, mutable_only: bool = True) -> np.ndarray:
        """Cost-like distance from one row ``x0`` to every row of ``pool``, ignoring immutables
        (used to find the nearest real rows: what it would cost to move there)."""
        keep = ~np.asarray(self.immutable) if mutable_only else np.ones(len(self.names), bool)
        fake = CostModel(names=self.names, scales=self.scales, numeric=self.numeric,
                         immutable=tuple(False for _ in self.names), groups=self.groups)
        x0b = np.broadcast_to(np.atleast_2d(x0), pool.shape).copy()
        pool = pool.copy()
        pool[:, ~keep] = x0b[:, ~keep]
        return fake.cost(x0b, pool)


def _scale(col: pd.Series | None, lo: float | None, hi: float | None) -> float:
    if col is not None:
        x = pd.to_numeric(col, errors="coerce").dropna().to_numpy(dtype=float)
        if len(x):
            q1, q3 = np.percentile(x, [25, 75])
            if q3 - q1 > 0:
                return float(q3 - q1)
            if x.max() - x.min() > 0:
                return float(x.max() - x.min())
    if lo is not None and hi is not None and hi > lo:
        return float(hi - lo)
    return 1.0


def describe(cost: CostModel) -> dict[str, float]:
    """Feature → its unit of change, for the report."""
    return {n: round(s, 6) for n, s, num in zip(cost.names, cost.scales, cost.numeric) if num}


def names_changed(cost: CostModel, x0: np.ndarray, x1: np.ndarray) -> list[str]:
    """The features one row's change touches (a group by its columns that changed)."""
    per = cost.per_feature(x0, x1)[0]
    out = [cost.names[i] for i in np.flatnonzero(per > 0)]
    for g in cost.groups:
        if np.any(np.abs(np.asarray(x1, float)[list(g)] - np.asarray(x0, float)[list(g)]) > 1e-12):
            out.extend(cost.names[i] for i in g
                       if abs(float(np.asarray(x1, float)[i]) - float(np.asarray(x0, float)[i])) > 1e-12)
    return out


__all__: Sequence[str] = ("CostModel", "describe", "names_changed")
