"""What a row can become, as a tree ensemble sees it: per unit, a short list of options.

Between two consecutive split thresholds of a feature the ensemble's decision cannot
change, so a numeric feature has one *option* per cell of its threshold grid: the
admissible value of that cell closest to the row's value (inside the feature's bounds, on
its step grid, and landing in the cell after the model's own float rounding). A category
or bool feature has one option per cell holding one of its allowed values; a one-hot group
is one unit whose options put the 1 in each of its columns. Immutable features, and
features the row lacks (NaN), are not units: they keep their value.

The cost of an option is :func:`change_cost` — the shared per-feature cost, kept in one
place so that it can follow ``attacks/cost.py`` once that exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..sources.model import FeatureSchema
from .trees_read import Ensemble


def feature_scales(schema: FeatureSchema, data: pd.DataFrame | None) -> np.ndarray:
    """Per feature, the unit of change: the one definition of attacks/cost.py (train IQR, else range, else 1)."""
    from .cost import CostModel

    return np.asarray(CostModel.fit(schema, data).scales, dtype=np.float64)


def change_cost(kind: str, delta: np.ndarray | float, scale: float) -> np.ndarray:
    """Cost of moving one feature by ``delta``: Σ|Δ|/scale for numbers, 1 per change otherwise.

    A one-hot group's switch costs 1 in all (counted once, on the group).
    """
    d = np.abs(np.asarray(delta, dtype=np.float64))
    if kind in ("int", "float"):
        return d / scale
    return (d > 0).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Unit:
    """One thing an attacker can change: a feature, or a one-hot group of columns."""

    name: str
    feats: np.ndarray
    vals: np.ndarray
    """(options, len(feats)) values of the unit's features under each option."""
    cells: np.ndarray
    """(options, len(feats)) grid cell of each value (searchsorted on the feature's thresholds)."""
    cost: np.ndarray
    orig: int


@dataclass(frozen=True, eq=False)
class Grid:
    """The options of one row."""

    x: np.ndarray
    units: tuple[Unit, ...]
    fixed_cells: dict[int, int]
    """Features that are not units → their (fixed) cell."""

    def row(self, choice: dict[int, int]) -> np.ndarray:
        """The row with unit ``u`` set to option ``choice[u]``."""
        x = self.x.copy()
        for u, o in choice.items():
            x[self.units[u].feats] = self.units[u].vals[o]
        return x

    def cost(self, choice: dict[int, int]) -> float:
        return float(sum(self.units[u].cost[o] for u, o in choice.items()))


def thresholds_by_feature(ens: Ensemble) -> list[np.ndarray]:
    return [ens.thresholds(f) for f in range(ens.n_features)]


def cell_of(ens: Ensemble, thr: np.ndarray, v: np.ndarray | float) -> np.ndarray:
    """Cell index of ``v`` (cell k holds (thr[k-1], thr[k]]), after the model's rounding."""
    return np.searchsorted(thr, ens.cast(np.atleast_1d(v)), side="left")


def build_grid(ens: Ensemble, thr: list[np.ndarray], schema: FeatureSchema, scales: np.ndarray, x: np.ndarray) -> Grid:
    """The units and options of row ``x`` (values in schema order)."""
    x = np.asarray(x, dtype=np.float64)
    units: list[Unit] = []
    fixed: dict[int, int] = {}
    in_group: set[int] = set()
    index = {f.name: i for i, f in enumerate(schema.features)}
    for gname, cols in schema.groups().items():
        idx = np.array([index[c] for c in cols])
        in_group.update(idx.tolist())
        xv = x[idx]
        hot = np.flatnonzero(xv == 1)
        if any(schema.features[i].immutable for i in idx) or len(hot) != 1 or not np.all(np.isin(xv, (0, 1))):
            continue  # not a clean one-hot row, or frozen: the group keeps its values
        vals = np.eye(len(idx))
        cells = np.stack([cell_of(ens, thr[i], vals[:, k]) for k, i in enumerate(idx)], axis=1)
        cost = np.ones(len(idx))
        cost[hot[0]] = 0.0
        units.append(Unit(gname, idx, vals, cells, cost, int(hot[0])))
    for i, f in enumerate(schema.features):
        if i in in_group or f.immutable or np.isnan(x[i]) or not len(thr[i]):
            continue
        numeric_values = _numeric_values(f.values)
        if f.numeric or numeric_values is None:
            vals, cost = _numeric_options(ens, thr[i], x[i], f.min, f.max, f.step, scales[i])
        else:
            vals = np.unique(np.append(numeric_values, x[i]))
            cost = change_cost("category", vals - x[i], 1.0)
        cells = cell_of(ens, thr[i], vals)
        # one option per cell: the cheapest value in it
        order = np.lexsort((cost, cells))
        keep = order[np.r_[True, cells[order][1:] != cells[order][:-1]]]
        vals, cells, cost = vals[keep], cells[keep], cost[keep]
        if len(vals) < 2:
            continue
        orig = int(np.argmin(cost))
        units.append(Unit(f.name, np.array([i]), vals[:, None], cells[:, None], cost, orig))
    for i in range(len(x)):
        if not any(i in u.feats for u in units):
            fixed[i] = int(cell_of(ens, thr[i], x[i])[0]) if not np.isnan(x[i]) else -1
    return Grid(x, tuple(units), fixed)


def _numeric_values(values: tuple | None) -> np.ndarray | None:
    if values is None:
        return None
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _numeric_options(ens: Ensemble, thr: np.ndarray, x: float, lo: float | None, hi: float | None,
                     step: float | None, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of ``thr``, the admissible value closest to ``x`` (cells with none are dropped)."""
    a = np.r_[-np.inf, thr]
    b = np.r_[thr, np.inf]
    lo_ = -np.inf if lo is None else float(lo)
    hi_ = np.inf if hi is None else float(hi)
    xc = float(ens.cast(np.asarray(x))[()])
    with np.errstate(invalid="ignore", over="ignore"):
        below = b < xc
        target = np.minimum(b, hi_)
        if step:
            down = np.floor(target / step) * step
            up = np.maximum((np.floor(a / step) + 1) * step, np.ceil(lo_ / step) * step if np.isfinite(lo_) else -np.inf)
        else:
            down = _round(ens, target, -1)
            up = np.maximum(_round(ens, a, +1), lo_)
        v = np.where(below, down, up)
    v = np.where((a < xc) & (xc <= b), x, v)
    c = cell_of(ens, thr, np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0))
    inside = np.isfinite(v) & (c == np.arange(len(a)))
    inside &= ((v >= lo_) & (v <= hi_)) | (v == x)
    v = v[inside]
    return v, change_cost("float", v - x, scale)


def _round(ens: Ensemble, t: np.ndarray, direction: int) -> np.ndarray:
    """The representable value nearest ``t`` that stays ≤ t (direction -1) or goes > t (+1)."""
    t = np.asarray(t, dtype=np.float64)
    if ens.float32:
        with np.errstate(over="ignore", invalid="ignore"):
            v = t.astype(np.float32)
            if direction < 0:
                v = np.where(v > t, np.nextafter(v, np.float32(-np.inf)), v)
            else:
                v = np.where(v <= t, np.nextafter(v, np.float32(np.inf)), v)
        return v.astype(np.float64)
    return t if direction < 0 else np.nextafter(t, np.inf)
