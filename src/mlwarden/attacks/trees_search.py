"""Upper bound: a cheap change that flips the ensemble, by greedy threshold crossings.

In the spirit of LT-attack (Zhang et al., NeurIPS 2020) the search moves between the
cells of the threshold grid rather than through feature space: every step scores, in one
batch, the row with each unit moved to each of its options, and takes a move that flips
the decision (the cheapest) or else the one with the best gain in score per unit of cost.
Starts are the row itself and the row moved to the cells of its nearest rows of the other
class (mutable units only). Each flip found is then pruned: every changed unit in turn is
moved back to the cheapest option that keeps the flip, until nothing gets cheaper.
"""

from __future__ import annotations

import numpy as np

from .trees_grid import Grid
from .trees_read import Ensemble

MAX_STEPS = 64


def _batch(grid: Grid, base: dict[int, int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Rows of ``base`` with one unit moved to each other option, and the (unit, option) of each."""
    x = grid.row(base)
    rows: list[np.ndarray] = []
    moves: list[tuple[int, int]] = []
    for u, unit in enumerate(grid.units):
        cur = base.get(u, unit.orig)
        opts = [o for o in range(len(unit.cost)) if o != cur]
        if not opts:
            continue
        block = np.repeat(x[None, :], len(opts), axis=0)
        block[:, unit.feats] = unit.vals[opts]
        rows.append(block)
        moves.extend((u, o) for o in opts)
    return (np.concatenate(rows) if rows else np.empty((0, len(x)))), moves


def _set(choice: dict[int, int], grid: Grid, u: int, o: int) -> dict[int, int]:
    out = dict(choice)
    if o == grid.units[u].orig:
        out.pop(u, None)
    else:
        out[u] = o
    return out


def greedy(ens: Ensemble, grid: Grid, target: bool, start: dict[int, int] | None = None) -> dict[int, int] | None:
    """A choice of options whose row the ensemble decides as ``target``, or None."""
    choice = dict(start or {})
    sign = 1.0 if target else -1.0
    cur = float(ens.score(grid.row(choice)[None, :])[0])
    for _ in range(MAX_STEPS):
        if (cur > ens.cut) == target:
            return choice
        X, moves = _batch(grid, choice)
        if not moves:
            return None
        s = ens.score(X)
        ok = (s > ens.cut) == target
        base_cost = grid.cost(choice)
        costs = np.array([base_cost - grid.units[u].cost[choice.get(u, grid.units[u].orig)] + grid.units[u].cost[o]
                          for u, o in moves])
        if ok.any():
            k = int(np.flatnonzero(ok)[np.argmin(costs[ok])])
            return _set(choice, grid, *moves[k])
        gain = sign * (s - cur)
        delta = costs - base_cost
        if not (gain > 1e-12).any():
            return None
        ratio = np.where(gain > 1e-12, gain / np.maximum(delta, 1e-9), -np.inf)
        k = int(np.argmax(ratio))
        choice = _set(choice, grid, *moves[k])
        cur = float(s[k])
    return None


def prune(ens: Ensemble, grid: Grid, target: bool, choice: dict[int, int]) -> dict[int, int]:
    """Cheapen a flipping choice unit by unit while it keeps flipping."""
    improved = True
    while improved and choice:
        improved = False
        for u in sorted(choice, key=lambda u: -grid.units[u].cost[choice[u]]):
            unit = grid.units[u]
            cheaper = [o for o in np.argsort(unit.cost, kind="stable") if unit.cost[o] < unit.cost[choice[u]]]
            if not cheaper:
                continue
            X = np.stack([grid.row(_set(choice, grid, u, int(o))) for o in cheaper])
            ok = (ens.score(X) > ens.cut) == target
            if ok.any():
                choice = _set(choice, grid, u, int(cheaper[int(np.argmax(ok))]))
                improved = True
                break
    return choice


def seed_choice(grid: Grid, seed_row: np.ndarray) -> dict[int, int]:
    """The options closest to ``seed_row``'s cells, unit by unit (immutables stay)."""
    choice: dict[int, int] = {}
    for u, unit in enumerate(grid.units):
        if len(unit.feats) > 1:  # one-hot group: the seed's hot column, when it has exactly one
            hot = np.flatnonzero(seed_row[unit.feats] == 1)
            if len(hot) == 1 and hot[0] != unit.orig:
                choice[u] = int(hot[0])
            continue
        d = np.abs(unit.vals[:, 0] - seed_row[unit.feats[0]])
        o = int(np.argmin(d))
        if o != unit.orig:
            choice[u] = o
    return choice


def upper_bound(ens: Ensemble, grid: Grid, target: bool, seeds: np.ndarray) -> dict[int, int] | None:
    """The cheapest pruned flip over the starts (the row, then each seed row); None if none flips."""
    best: dict[int, int] | None = None
    starts: list[dict[int, int]] = [{}] + [seed_choice(grid, s) for s in seeds]
    for start in starts:
        found = greedy(ens, grid, target, start)
        if found is None:
            continue
        found = prune(ens, grid, target, found)
        if best is None or grid.cost(found) < grid.cost(best):
            best = found
    return best
