"""Leaf boxes: how far each leaf is from a row, and the bound that follows tree by tree.

Every node of an ensemble owns a box of grid cells per feature (narrowed by the splits
above it). The distance of a leaf from a row is the cheapest admissible change that lands
in its box, unit by unit (a feature's options are sorted by cell and their cost grows away
from the row's own cell, so the cheapest option in a range is at its end nearest the row;
a one-hot group takes its cheapest column whose 0/1 pattern fits). A change of cost c can
only reach leaves within distance c, so:

- leaves farther than the best known upper bound can be dropped from the program, and
- if even the best leaf of every tree within distance c cannot move the score across the
  cut, no change cheaper than c flips the decision — a certified lower bound that treats
  the trees independently (the one-tree-at-a-time level of Chen et al., NeurIPS 2019,
  for a separable cost instead of L∞).
"""

from __future__ import annotations

import math

import numpy as np

from .trees_grid import Grid
from .trees_read import Ensemble


def node_boxes(ens: Ensemble, thr: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, features) lowest and highest cell index each node's box allows."""
    n, F = len(ens.feature), ens.n_features
    lo = np.zeros((n, F), dtype=np.int32)
    hi = np.tile(np.array([len(t) for t in thr], dtype=np.int32), (n, 1))
    idx = np.zeros(n, dtype=np.int64)
    inner = ens.feature >= 0
    for f in np.unique(ens.feature[inner]):
        m = ens.feature == f
        idx[m] = np.searchsorted(thr[int(f)], ens.threshold[m], side="left")
    for level in ens.levels:
        f = ens.feature[level]
        L, R = ens.left[level], ens.right[level]
        lo[L], hi[L] = lo[level], hi[level]
        lo[R], hi[R] = lo[level], hi[level]
        hi[L, f] = np.minimum(hi[level, f], idx[level])
        lo[R, f] = np.maximum(lo[level, f], idx[level] + 1)
    return lo, hi


def leaf_distance(grid: Grid, leaves: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest admissible change of ``grid``'s row into each of ``leaves``' boxes (∞: none), in all
    and per unit: ``(total, per_unit)`` with ``per_unit`` of shape (units, leaves)."""
    d = np.zeros(len(leaves))
    per = np.zeros((len(grid.units), len(leaves)))
    blo, bhi = lo[leaves], hi[leaves]
    for f, c in grid.fixed_cells.items():
        if c >= 0:
            d[(blo[:, f] > c) | (bhi[:, f] < c)] = math.inf
    for u, unit in enumerate(grid.units):
        if len(unit.feats) == 1:
            f = int(unit.feats[0])
            cells, cost = unit.cells[:, 0], unit.cost
            a = np.searchsorted(cells, blo[:, f], side="left")
            b = np.searchsorted(cells, bhi[:, f], side="right")
            own = int(np.searchsorted(cells, cells[unit.orig]))
            with np.errstate(invalid="ignore"):
                near = np.where(a > own, cost[np.minimum(a, len(cost) - 1)], cost[np.maximum(b - 1, 0)])
            per[u] = np.where(a >= b, math.inf, np.where((a <= own) & (own < b), 0.0, near))
        else:
            ok = np.ones((len(leaves), len(unit.cost)), dtype=bool)
            for k, f in enumerate(unit.feats):
                ok &= (blo[:, [f]] <= unit.cells[None, :, k]) & (unit.cells[None, :, k] <= bhi[:, [f]])
            per[u] = np.where(ok, unit.cost[None, :], math.inf).min(axis=1)
    return d + per.sum(axis=0), per


def independent_bound(ens: Ensemble, leaves: np.ndarray, dist: np.ndarray, tree_of: np.ndarray, target: bool) -> float:
    """Smallest cost at which the trees, each free to pick its best leaf within it, cross the cut."""
    sign = 1.0 if target else -1.0  # maximize the score towards class 1, minimize towards class 0
    order = np.argsort(dist, kind="stable")
    best = np.full(ens.n_trees, -math.inf)
    total, missing = 0.0, ens.n_trees
    goal = sign * (ens.cut - ens.base)
    for k in order:
        dk = dist[k]
        if not math.isfinite(dk):
            break
        t, v = tree_of[k], sign * ens.value[leaves[k]]
        if v > best[t]:
            if best[t] == -math.inf:
                missing -= 1
                total += v
            else:
                total += v - best[t]
            best[t] = v
            if missing == 0 and total >= goal - 1e-9:  # ties and float slop count as crossing: stays sound
                return float(dk)
    return math.inf
