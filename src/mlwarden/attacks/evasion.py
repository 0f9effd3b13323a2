"""Constraint-aware black-box evasion: the smallest valid change that flips a decision.

A gradient-free search in the spirit of MOEVA (Simonetto et al., IJCAI 2022), needing only
``predict_proba`` (or only ``predict``), so it applies to any model, trees and endpoints
included. For each target row the model classifies correctly, in batches over all targets of
a chunk (one model call per step, not per row):

1. **seeds** — the nearest real rows of another class (in cost units over the mutable
   features, :mod:`mlwarden.attacks.cost`), with the target's immutables put back;
2. **line search** — bisection between the target and its cheapest flipping candidate;
3. **pruning** — revert changed features one at a time, costliest first, while it still flips;
4. **evolution** — a few generations of mutations (shrink toward the target, revert one
   feature, jitter, crossover with a seed), minimising cost among flipping candidates and the
   true class's probability plus cost among the others.

Every candidate is repaired onto the constraints (:mod:`mlwarden.attacks.repair`) before it
is sent, and one that cannot be repaired is never sent nor returned. A random-noise baseline
(random valid changes of the same costs) runs on the same targets. The search stops when the
chunk's query allowance or the deadline is reached, and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..sources.model import BudgetExceeded, Model
from .cost import CostModel
from .repair import repair
from .space import Space

BUDGETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
"""Cost budgets of the robustness curve (1.0 = one feature moved by its whole IQR)."""


@dataclass(frozen=True)
class Config:
    seeds: int = 8
    line_steps: int = 5
    prune_rounds: int = 6
    population: int = 6
    generations: int = 6
    noise_samples: int = 1
    budgets: tuple[float, ...] = BUDGETS


@dataclass(frozen=True)
class Task:
    """One chunk of targets (picklable: plain arrays)."""

    X0: np.ndarray
    y: np.ndarray
    """Index (into the model's classes) of each target's true class."""
    seeds: np.ndarray
    """(targets × k × features) nearest real rows of another class."""
    queries: int
    seed: int
    seconds: float


@dataclass
class ChunkResult:
    best: np.ndarray
    cost: np.ndarray
    queries: np.ndarray
    to_success: np.ndarray
    noise_cost: np.ndarray
    """Cheapest flipping noise per target (inf when none flipped)."""
    queries_used: int = 0
    stopped_early: bool = False
    reason: str | None = None
    invalid_sent: int = 0
    notes: list[str] = field(default_factory=list)


class _Stop(Exception):
    pass


class _Search:
    def __init__(self, model: Model, space: Space, costm: CostModel, task: Task) -> None:
        self.model, self.space, self.costm, self.task = model, space, costm, task
        self.scales = np.asarray(costm.scales)
        self.deadline = time.perf_counter() + task.seconds
        T, d = task.X0.shape
        self.res = ChunkResult(best=np.full((T, d), np.nan), cost=np.full(T, np.inf), queries=np.zeros(T, int),
                               to_success=np.full(T, -1), noise_cost=np.full(T, np.inf))
        self.near = task.X0.copy()
        self.near_p = np.ones(T)
        self.rng = np.random.default_rng(task.seed)
        mutable = ~space.immutable
        grouped = np.zeros(d, bool)
        for g in space.groups:
            grouped[list(g)] = True
        self.numeric = mutable & ~space.categorical & ~grouped
        self.units = [[j] for j in np.flatnonzero(mutable & ~grouped)] + \
                     [list(g) for g in space.groups if mutable[list(g)].all()]

    def ask(self, X: np.ndarray, owner: np.ndarray, record: bool = True
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Repair, send the valid rows, and return (repaired rows, valid, flipped, p_true)."""
        if time.perf_counter() > self.deadline:
            raise _Stop("time limit")
        X0 = self.task.X0[owner]
        X, ok = repair(self.space, X, X0, self.scales)
        flipped, p = np.zeros(len(X), bool), np.ones(len(X))
        rows = np.flatnonzero(ok)
        if len(rows):
            rem = self.model.budget.remaining
            if rem is not None and rem < len(rows):
                raise _Stop("query budget")
            try:
                y = self.task.y[owner[rows]]
                if self.model.exposes_proba:
                    proba = self.model.predict_proba(self.space.frame(X[rows]))
                    flipped[rows] = np.argmax(proba, axis=1) != y
                    p[rows] = proba[np.arange(len(rows)), y]
                else:
                    pred = self.model.predict(self.space.frame(X[rows]))
                    flipped[rows] = pred != self.model.classes[y]
                    p[rows] = (~flipped[rows]).astype(float)
            except BudgetExceeded:
                raise _Stop("query budget") from None
            np.add.at(self.res.queries, owner[rows], 1)
        if record:
            self._record(X, owner, ok, flipped, p)
        return X, ok, flipped, p

    def _record(self, X, owner, ok, flipped, p) -> None:
        cost = self.costm.cost(self.task.X0[owner], X)
        for i in np.flatnonzero(ok):
            t = owner[i]
            if flipped[i]:
                if self.res.to_success[t] < 0:
                    self.res.to_success[t] = self.res.queries[t]
                if cost[i] < self.res.cost[t]:
                    self.res.cost[t], self.res.best[t] = cost[i], X[i]
            elif np.isinf(self.res.cost[t]):
                score = p[i] + 0.01 * cost[i]
                if score < self.near_p[t]:
                    self.near_p[t], self.near[t] = score, X[i]

    def run(self) -> ChunkResult:
        try:
            self.noise()
            self.seeds()
            self.line()
            self.prune()
            for _ in range(self.cfg.generations):
                self.evolve()
        except _Stop as e:
            self.res.stopped_early, self.res.reason = True, str(e)
        return self.res

    cfg = Config()

    def noise(self) -> None:
        T = len(self.task.X0)
        cols = np.flatnonzero(self.numeric)
        if not len(cols):
            return
        for b in self.cfg.budgets:
            for _ in range(self.cfg.noise_samples):
                k = self.rng.integers(1, min(3, len(cols)) + 1, size=T)
                X = self.task.X0.copy()
                for t in range(T):
                    pick = self.rng.choice(cols, size=k[t], replace=False)
                    share = self.rng.dirichlet(np.ones(k[t])) * b
                    X[t, pick] += self.rng.choice([-1.0, 1.0], size=k[t]) * share * self.scales[pick]
                owner = np.arange(T)
                X, ok, flipped, _ = self.ask(X, owner, record=False)
                cost = self.costm.cost(self.task.X0, X)
                hit = ok & flipped & (cost <= b * (1 + 1e-9))
                self.res.noise_cost[hit] = np.minimum(self.res.noise_cost[hit], cost[hit])

    def seeds(self) -> None:
        T, K, d = self.task.seeds.shape
        X = self.task.seeds.reshape(T * K, d).copy()
        owner = np.repeat(np.arange(T), K)
        X0 = self.task.X0[owner]
        X[:, self.space.immutable] = X0[:, self.space.immutable]
        keep = ~np.all(np.isnan(X), axis=1)
        self.ask(X[keep], owner[keep])

    def line(self) -> None:
        active = np.flatnonzero(np.isfinite(self.res.cost))
        if not len(active):
            return
        lo, hi = np.zeros(len(active)), np.ones(len(active))
        far = self.res.best[active].copy()
        for _ in range(self.cfg.line_steps):
            mid = (lo + hi) / 2
            X = self._blend(self.task.X0[active], far, mid)
            _, ok, flipped, _ = self.ask(X, active)
            win = ok & flipped
            hi, lo = np.where(win, mid, hi), np.where(win, lo, mid)

    def _blend(self, X0: np.ndarray, X1: np.ndarray, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, float)[:, None]
        X = X0 + a * (np.nan_to_num(X1) - np.nan_to_num(X0))
        jump = ~self.numeric  # categories and groups switch at the midpoint
        X[:, jump] = np.where(a >= 0.5, X1, X0)[:, jump]
        return np.where(np.isnan(X0) & np.isnan(X1), np.nan, X)

    def prune(self) -> None:
        tried: dict[int, set[int]] = {}
        for _ in range(self.cfg.prune_rounds):
            rows, owner = [], []
            for t in np.flatnonzero(np.isfinite(self.res.cost)).tolist():
                unit = self._costliest(t, tried.setdefault(t, set()))
                if unit is None:
                    continue
                tried[t].add(unit)
                x = self.res.best[t].copy()
                x[self.units[unit]] = self.task.X0[t, self.units[unit]]
                rows.append(x)
                owner.append(t)
            if not rows:
                return
            self.ask(np.asarray(rows), np.asarray(owner))

    def _costliest(self, t: int, tried: set[int]) -> int | None:
        x0, x = self.task.X0[t], self.res.best[t]
        per = self.costm.per_feature(x0, x)[0]
        best, best_cost = None, 0.0
        for u, cols in enumerate(self.units):
            if u in tried or np.allclose(x[cols], x0[cols], equal_nan=True):
                continue
            c = per[cols].sum() if len(cols) == 1 else 1.0
            if best is None or c > best_cost:
                best, best_cost = u, c
        return best

    def evolve(self) -> None:
        T = len(self.task.X0)
        P = self.cfg.population
        owner = np.repeat(np.arange(T), P)
        found = np.isfinite(self.res.cost)
        parent = np.where(found[:, None], self.res.best, self.near)[owner]
        X0 = self.task.X0[owner]
        X = parent.copy()
        op = self.rng.integers(0, 4, size=len(X))
        num = np.flatnonzero(self.numeric)
        for i in range(len(X)):
            t = owner[i]
            if op[i] == 0:  # shrink toward the target
                u = self.rng.uniform(0.4, 1.0, size=X.shape[1])
                X[i] = X0[i] + u * (np.nan_to_num(parent[i]) - np.nan_to_num(X0[i]))
                X[i, ~self.numeric] = parent[i, ~self.numeric]
            elif op[i] == 1 and self.units:  # revert one changed feature
                cols = self.units[self.rng.integers(len(self.units))]
                X[i, cols] = X0[i, cols]
            elif op[i] == 2 and len(num):  # jitter one or two numeric features
                pick = self.rng.choice(num, size=min(len(num), int(self.rng.integers(1, 3))), replace=False)
                sigma = 0.3 if found[t] else 1.0
                X[i, pick] += self.rng.normal(0, sigma, size=len(pick)) * self.scales[pick]
            else:  # crossover with one of the target's seeds
                seeds = self.task.seeds[t]
                s = seeds[self.rng.integers(len(seeds))]
                if not np.all(np.isnan(s)):
                    take = self.rng.random(len(s)) < 0.5
                    for g in self.space.groups:
                        take[list(g)] = take[g[0]]
                    X[i, take] = s[take]
        X = np.where(np.isnan(X0) & np.isnan(X), np.nan, X)
        self.ask(X, owner)


def attack_chunk(model: Model, space: Space, costm: CostModel, cfg: Config, task: Task) -> ChunkResult:
    """Attack one chunk of targets with ``task.queries`` queries at most (a sub-budget of ``model``'s)."""
    from ..sources.model import QueryBudget

    local = model.with_budget(QueryBudget(task.queries))
    search = _Search(local, space, costm, task)
    search.cfg = cfg
    out = search.run()
    out.queries_used = local.budget.used
    return out


def nearest_seeds(costm: CostModel, X0: np.ndarray, y: np.ndarray, pool: np.ndarray, pool_y: np.ndarray,
                  k: int) -> np.ndarray:
    """(targets × k × features): for each target, the ``k`` nearest pool rows of another class
    (NaN-filled where the pool has fewer). Distances in cost units over the mutable features."""
    out = np.full((len(X0), k, X0.shape[1]), np.nan)
    for t in range(len(X0)):
        other = np.flatnonzero(pool_y != y[t])
        if not len(other):
            continue
        dist = costm.distance(X0[t], pool[other])
        dist = np.where(np.isfinite(dist), dist, np.inf)
        order = other[np.argsort(dist, kind="stable")[:k]]
        out[t, :len(order)] = pool[order]
    return out
