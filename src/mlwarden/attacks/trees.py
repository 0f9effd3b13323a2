"""Minimal changes that flip a tree ensemble's decision, bounded from both sides.

For each target row: an **upper bound** — a change found by a greedy search over threshold
crossings (:mod:`.trees_search`) or by the solver, and confirmed by the model itself — and a
**lower bound** — a cost below which *no* admissible change flips the decision, certified
by a mixed-integer program over the threshold grid (:mod:`.trees_milp`; exact when the
solver closes within its time limit). Costs are :func:`.trees_grid.change_cost` summed over
the features: |Δ|/scale for numbers (scale: the training IQR), 1 per category or one-hot
group switched; immutable features never change and values stay within their bounds.

The work is one pure function per row (:func:`bound_row`) over a picklable
:class:`TreeProblem`, so any ``map`` (threads, Dask) can fan it out; :func:`tree_bounds`
ties it to the :class:`~mlwarden.sources.model.Model` facade, which answers (and counts) the
queries for the original decisions and for checking every example found.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..sources.model import FeatureSchema, Model
from .trees_boxes import independent_bound, leaf_distance, node_boxes
from .trees_grid import Grid, build_grid, thresholds_by_feature
from .trees_milp import solve
from .trees_read import Ensemble
from .trees_search import upper_bound

SEEDS = 3
"""Nearest rows of the other class used as extra starts of the search."""
WITHIN = 0.30
"""Bounds are "within 30 %" when upper ≤ 1.3 × lower."""
MAX_BOX_CELLS = 50_000_000
"""Nodes × features past which leaf boxes are not kept (memory); the bounds then rest on the solver alone."""


@dataclass(frozen=True, eq=False)
class TreeProblem:
    """Everything one row's bounds need: picklable, shared by every row."""

    ens: Ensemble
    thr: list[np.ndarray]
    schema: FeatureSchema
    scales: np.ndarray
    pool: np.ndarray
    """Rows (schema order) the search may start from, with ``pool_pos`` their decisions."""
    pool_pos: np.ndarray
    milp_seconds: float = 1.0
    deadline: float = math.inf
    """``time.time()`` after which rows are not attempted (the check's wall-clock limit)."""
    boxes: tuple[np.ndarray, np.ndarray] | None = None
    leaves: np.ndarray | None = None
    tree_of: np.ndarray | None = None


@dataclass(frozen=True)
class RowBound:
    """Bounds on the cheapest change that flips one row's decision."""

    lower: float
    upper: float
    """``inf`` when no flip was found (with ``lower`` inf too: none exists under the constraints)."""
    exact: bool
    example: np.ndarray | None
    changes: dict[str, list[float]]
    """Feature → [from, to] in the upper-bound example."""
    seconds: float
    variables: int
    status: str

    @property
    def within(self) -> bool:
        if math.isinf(self.upper):
            return math.isinf(self.lower)
        return self.upper <= (1 + WITHIN) * self.lower + 1e-12


def make_problem(ens: Ensemble, schema: FeatureSchema, scales: np.ndarray, pool: np.ndarray, *,
                 milp_seconds: float = 1.0, deadline: float = math.inf) -> TreeProblem:
    pool = np.asarray(pool, dtype=np.float64)
    pos = ens.positive(pool) if len(pool) else np.zeros(0, dtype=bool)
    thr = thresholds_by_feature(ens)
    boxes = leaves = tree_of = None
    if len(ens.feature) * ens.n_features <= MAX_BOX_CELLS:
        boxes = node_boxes(ens, thr)
        leaves = np.flatnonzero(ens.feature < 0)
        tree_of = np.searchsorted(ens.roots, leaves, side="right") - 1
    return TreeProblem(ens, thr, schema, np.asarray(scales, dtype=np.float64), pool, pos, milp_seconds, deadline,
                       boxes, leaves, tree_of)


def bound_row(problem: TreeProblem, x: np.ndarray) -> RowBound:
    """Lower and upper bound for row ``x`` (schema order); never changes an immutable feature."""
    t0 = time.perf_counter()
    if time.time() > problem.deadline:
        return RowBound(math.nan, math.nan, False, None, {}, 0.0, 0, "not run (time limit)")
    ens = problem.ens
    x = np.asarray(x, dtype=np.float64)
    grid = build_grid(ens, problem.thr, problem.schema, problem.scales, x)
    target = not bool(ens.positive(x[None, :])[0])
    if not grid.units:
        return RowBound(math.inf, math.inf, True, None, {}, time.perf_counter() - t0, 0, "nothing mutable")
    dist, indep = None, 0.0
    if problem.boxes is not None and problem.leaves is not None and problem.tree_of is not None:
        dist, _per_unit = leaf_distance(grid, problem.leaves, *problem.boxes)
        indep = independent_bound(ens, problem.leaves, dist, problem.tree_of, target)
        if math.isinf(indep):  # not even trees moved one by one reach the cut: certified unflippable
            return RowBound(math.inf, math.inf, True, None, {}, time.perf_counter() - t0, 0, "certified by leaf boxes")
    best = upper_bound(ens, grid, target, _seeds(problem, x, target))
    upper = grid.cost(best) if best is not None else math.inf
    near = None
    if dist is not None and problem.leaves is not None:
        near = np.zeros(len(ens.feature), dtype=bool)
        near[problem.leaves[dist <= upper + 1e-9]] = True
    if best is not None and upper <= indep + 1e-12:  # the example meets the bound: nothing to solve
        return RowBound(indep, upper, True, grid.row(best), _changes(problem.schema, x, grid.row(best)),
                        time.perf_counter() - t0, 0, "optimal")
    res = solve(ens, grid, target, upper, time_limit=problem.milp_seconds, near=near)
    cand = res.choice
    if cand is not None and not _flips(ens, grid, cand, target):  # a tie the solver's tolerance let through
        cand = solve(ens, grid, target, upper, time_limit=problem.milp_seconds / 2, margin=1e-6, near=near).choice
    if cand is not None and _flips(ens, grid, cand, target) and grid.cost(cand) < upper:
        best, upper = cand, grid.cost(cand)
    cheapest = min((float(np.min(u.cost[u.cost > 0])) for u in grid.units if (u.cost > 0).any()), default=math.inf)
    lower = min(max(res.lower, cheapest, indep), upper)
    exact = res.exact and (math.isinf(upper) or upper - lower <= 1e-6 * max(1.0, upper))
    example = grid.row(best) if best is not None else None
    return RowBound(lower, upper, exact, example, _changes(problem.schema, x, example),
                    time.perf_counter() - t0, res.variables, res.status)


def _flips(ens: Ensemble, grid: Grid, choice: dict[int, int], target: bool) -> bool:
    return bool(ens.positive(grid.row(choice)[None, :])[0] == target)


def _seeds(problem: TreeProblem, x: np.ndarray, target: bool) -> np.ndarray:
    pool = problem.pool[problem.pool_pos == target]
    if not len(pool):
        return pool
    d = np.nansum(np.abs(pool - x) / problem.scales, axis=1)
    frozen = [i for i, f in enumerate(problem.schema.features) if f.immutable]
    if frozen:  # prefer rows that share the row's immutable values
        d = d + 1e6 * (pool[:, frozen] != x[frozen]).sum(axis=1)
    return pool[np.argsort(d, kind="stable")[:SEEDS]]


def _changes(schema: FeatureSchema, x: np.ndarray, ex: np.ndarray | None) -> dict[str, list[float]]:
    if ex is None:
        return {}
    return {schema.features[i].name: [float(x[i]), float(ex[i])] for i in np.flatnonzero(ex != x)}


@dataclass(frozen=True)
class TreeBounds:
    """Per-row bounds of a batch of rows, the original decisions, and what the model confirmed."""

    rows: list[RowBound]
    positive: np.ndarray
    confirmed: np.ndarray
    """True where the model itself decides the upper-bound example the other way."""
    disagreed: int
    """Rows whose decision by the read trees differs from the model's (left out)."""


def to_frame(X: np.ndarray, like: pd.DataFrame) -> pd.DataFrame:
    """Rows in schema order as a DataFrame with ``like``'s columns and (where lossless) dtypes."""
    out = pd.DataFrame(X, columns=list(like.columns))
    for c in like.columns:
        dt = like[c].dtype
        if pd.api.types.is_bool_dtype(dt):
            out[c] = out[c] != 0
        elif pd.api.types.is_integer_dtype(dt) and np.all(np.mod(out[c].to_numpy(), 1) == 0):
            out[c] = out[c].astype(dt)
    return out


def as_matrix(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([pd.to_numeric(frame[c].astype("float64") if pd.api.types.is_bool_dtype(frame[c])
                                          else frame[c], errors="coerce").to_numpy(dtype=np.float64)
                            for c in frame.columns]) if len(frame.columns) else np.empty((len(frame), 0))


def tree_bounds(model: Model, problem: TreeProblem, targets: pd.DataFrame,
                mapper: Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]] = lambda f, xs: list(map(f, xs))
                ) -> TreeBounds:
    """Bounds for every row of ``targets`` (model columns), confirmed through ``model``'s queries."""
    frame = targets[model.schema.names].reset_index(drop=True)
    X = as_matrix(frame)
    said = np.asarray(model.predict(frame)) == model.classes[1]
    mine = problem.ens.positive(X)
    keep = np.flatnonzero(said == mine)
    rows = mapper(functools.partial(bound_row, problem), [X[i] for i in keep])
    confirmed = np.zeros(len(rows), dtype=bool)
    have = [k for k, r in enumerate(rows) if r.example is not None]
    if have:
        ex = to_frame(np.stack([rows[k].example for k in have]), frame)
        flipped = (np.asarray(model.predict(ex)) == model.classes[1]) != said[keep[have]]
        confirmed[have] = flipped
    return TreeBounds(rows, said[keep], confirmed, int(len(X) - len(keep)))
