"""Lower bound (and, when it closes, the exact answer): a mixed-integer program over the grid.

Variables: a binary ``z`` per option of each unit (exactly one per unit) and a flow
``y ∈ [0, 1]`` per tree node that can still be reached — 1 at every root, split between the
two children at every split, and, where both children are reachable, each child's flow
bounded by the options that send the row its way. With ``z`` integral the flow follows the
single path of the row (Kantchelian et al. 2016, in flow form), so the score is
``base + Σ value·y`` over leaves. Minimize Σ cost·z subject to the score landing on the other
side of the cut. HiGHS (shipped with SciPy) solves it; under a time limit its dual bound is
still a valid lower bound.

Only options costing at most the best known upper bound ``U`` are kept, and nodes that no
kept option reaches are cut away: any change cheaper than ``U`` lies inside, so the bound
stays sound — the true minimum is at least ``min(dual bound, U)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .trees_grid import Grid
from .trees_read import Ensemble


@dataclass(frozen=True)
class MilpResult:
    lower: float
    choice: dict[int, int] | None
    """The solver's best change (to verify), or None."""
    exact: bool
    variables: int
    status: str


def solve(ens: Ensemble, grid: Grid, target: bool, upper: float, *, time_limit: float, margin: float = 0.0,
          near: np.ndarray | None = None) -> MilpResult:
    """Minimal-cost change of ``grid``'s row to decision ``target``, restricted to cost ≤ ``upper``.

    ``near`` (bool per node) marks the leaves within ``upper`` of the row; the others are dropped.
    """
    keep = [np.flatnonzero(u.cost <= upper + 1e-9) for u in grid.units]
    # Per feature: reachable cell range and, for the unit's features, the option columns.
    lo = np.full(ens.n_features, -1)
    hi = np.full(ens.n_features, -1)
    for f, c in grid.fixed_cells.items():
        lo[f] = hi[f] = c
    zcol: list[tuple[int, int]] = []
    feat_opts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # feature → (z columns, their cells)
    for u, unit in enumerate(grid.units):
        zcols = np.arange(len(zcol), len(zcol) + len(keep[u]))
        zcol.extend((u, int(o)) for o in keep[u])
        for k, f in enumerate(unit.feats):
            cells = unit.cells[keep[u], k]
            lo[f], hi[f] = int(cells.min()), int(cells.max())
            feat_opts[int(f)] = (zcols, cells)
    nz = len(zcol)
    # Reachable nodes, level by level; a split's threshold index decides its side.
    thr_idx = np.zeros(len(ens.feature), dtype=np.int64)
    inner = ens.feature >= 0
    for f in np.unique(ens.feature[inner]):
        m = ens.feature == f
        thr_idx[m] = np.searchsorted(ens.thresholds(int(f)), ens.threshold[m], side="left")
    f_safe = np.where(inner, ens.feature, 0)
    left_ok = inner & (lo[f_safe] <= thr_idx)
    right_ok = inner & (hi[f_safe] > thr_idx)
    nan_feats = [f for f, c in grid.fixed_cells.items() if c < 0]
    if nan_feats:  # a missing value goes where the tree learned to send it
        m = inner & np.isin(f_safe, nan_feats)
        left_ok[m], right_ok[m] = ens.missing_left[m], ~ens.missing_left[m]
    hull_both = left_ok & right_ok  # else the hull of the options already decides the side
    reach = np.zeros(len(ens.feature), dtype=bool)
    reach[ens.roots] = True
    for level in ens.levels:
        nodes = level[reach[level]]
        reach[ens.left[nodes[left_ok[nodes]]]] = True
        reach[ens.right[nodes[right_ok[nodes]]]] = True
    if near is not None:  # keep only nodes with a leaf within the bound below them
        alive = near & ~inner
        for level in reversed(ens.levels):
            alive[level] = alive[ens.left[level]] | alive[ens.right[level]]
        reach &= alive
        left_ok &= reach[np.where(inner, ens.left, 0)]
        right_ok &= reach[np.where(inner, ens.right, 0)]
        if not reach[ens.roots].all():
            return MilpResult(upper, None, True, 0, "infeasible")
    ynode = np.flatnonzero(reach)
    ycol = np.full(len(ens.feature), -1)
    ycol[ynode] = nz + np.arange(len(ynode))
    nv = nz + len(ynode)

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lb: list[float] = []
    ub: list[float] = []

    def add(cs: np.ndarray, vs: np.ndarray, lo_: float, hi_: float) -> None:
        r = len(lb)
        rows.extend([r] * len(cs))
        cols.extend(cs.tolist())
        vals.extend(vs.tolist())
        lb.append(lo_)
        ub.append(hi_)

    start = 0
    for u in range(len(grid.units)):  # exactly one option per unit
        n = len(keep[u])
        add(np.arange(start, start + n), np.ones(n), 1.0, 1.0)
        start += n
    for r in ens.roots:  # every tree is entered
        add(np.array([ycol[r]]), np.ones(1), 1.0, 1.0)
    split = ynode[inner[ynode]]
    for n in split:  # flow conservation
        kids = [k for k, ok in ((ens.left[n], left_ok[n]), (ens.right[n], right_ok[n])) if ok]
        add(np.array([ycol[n], *(ycol[k] for k in kids)]), np.array([1.0] + [-1.0] * len(kids)), 0.0, 0.0)
    both = split[hull_both[split]]
    for n in both:  # each side's flow needs an option on that side
        zc, cells = feat_opts[int(ens.feature[n])]
        j = thr_idx[n]
        for child, ok, side in ((ens.left[n], left_ok[n], cells <= j), (ens.right[n], right_ok[n], cells > j)):
            if ok:
                add(np.r_[ycol[child], zc[side]], np.r_[1.0, -np.ones(int(side.sum()))], -np.inf, 0.0)
    leaves = ynode[~inner[ynode]]
    gap = ens.cut - ens.base
    score_cols, score_vals = ycol[leaves], ens.value[leaves]
    if target:
        add(score_cols, score_vals, gap + margin, np.inf)
    else:
        add(score_cols, score_vals, -np.inf, gap - margin)
    cost = np.zeros(nv)
    cost[:nz] = [grid.units[u].cost[o] for u, o in zcol]
    if math.isfinite(upper):
        add(np.arange(nz), cost[:nz], -np.inf, upper + 1e-9)
    # imported when a tree is attacked, not by every audit that lists the check
    from scipy import sparse
    from scipy.optimize import LinearConstraint, milp

    A = sparse.csr_matrix((vals, (rows, cols)), shape=(len(lb), nv))
    integrality = np.r_[np.ones(nz), np.zeros(len(ynode))]
    res = milp(cost, integrality=integrality, bounds=(0, 1), constraints=LinearConstraint(A, lb, ub),
               options={"time_limit": max(0.05, time_limit), "mip_rel_gap": 1e-7, "disp": False})
    choice = None
    if res.x is not None:
        z = res.x[:nz] > 0.5
        choice = {u: o for (u, o), on in zip(zcol, z) if on and o != grid.units[u].orig}
    if res.status == 2:  # infeasible: nothing within the bound flips it
        return MilpResult(math.inf if not math.isfinite(upper) else upper, None, True, nv, "infeasible")
    dual = getattr(res, "mip_dual_bound", None)
    lower = float(dual) if dual is not None and np.isfinite(dual) else 0.0
    if res.status == 0 and res.x is not None:
        lower = max(lower, float(res.fun) * (1 - 1e-7) - 1e-9)
    lower = max(0.0, lower)
    return MilpResult(lower, choice, res.status == 0, nv, "optimal" if res.status == 0 else "time limit")

