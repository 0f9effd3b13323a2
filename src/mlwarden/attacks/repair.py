"""Repair: project candidate rows onto the constraints, and say which rows could not be repaired.

Per feature (:meth:`Space.snap`): immutables go back to the real row's value, a one-hot group
keeps exactly its strongest column, numbers go onto their step grid inside their bounds,
categories onto a known value. Per relation, where the constraint has a shape repair
understands:

- **linear** (``a + 2*b <= c``, ``x == y - z``): move one mutable feature — one the attack
  already changed first, then the cheapest — just far enough (rounded onto its grid toward the
  feasible side) to satisfy it, provided that stays inside its bounds;
- **assignment** (``installment == f(amount, rate, term)`` where one side is a single mutable
  column not read by the other side): set that column to the other side's value;
- **membership** (``grade in {1, 2, 3}``): move the column to the nearest allowed value.

Other shapes (``or``, ``not``, non-linear inequalities) are only checked. A few passes run
because fixing one relation can break another; rows still invalid afterwards are reported
(``ok`` False) and the attack discards them — no invalid row is ever returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np

from ..constraints import Cmp, Col, Constraint, In, applicable, evaluate, linear
from ..constraints import _eval as eval_expr
from .space import Space

PASSES = 3


@dataclass(frozen=True)
class _Linear:
    index: tuple[int, ...]
    coef: tuple[float, ...]
    const: float
    op: str  # "<=", "==" (≥ and > are turned around; < and > keep a strictness flag)
    strict: bool
    tol: float


@dataclass(frozen=True)
class _Assign:
    index: int
    expr: Any


@dataclass(frozen=True)
class _Member:
    index: int
    allowed: tuple[float, ...]


def plan(space: Space, c: Constraint) -> _Linear | _Assign | _Member | None:
    """How to repair ``c`` in ``space``, or None when it can only be checked."""
    node = c.tree
    index = {n: i for i, n in enumerate(space.names)}
    movable = {n for n in index if not space.immutable[index[n]] and not space.categorical[index[n]]
               and not any(index[n] in g for g in space.groups)}
    if isinstance(node, In) and not node.negate and isinstance(node.x, Col) and node.x.name in movable:
        nums = tuple(sorted(float(v) for v in node.values if not isinstance(v, str)))
        return _Member(index[node.x.name], nums) if nums else None
    if not isinstance(node, Cmp) or node.op == "!=":
        return None
    la, lb = linear(node.a), linear(node.b)
    if la is not None and lb is not None:
        coef = dict(la[0])
        for k, v in lb[0].items():
            coef[k] = coef.get(k, 0.0) - v
        coef = {k: v for k, v in coef.items() if v != 0}
        const = la[1] - lb[1]
        sign = -1.0 if node.op in (">=", ">") else 1.0
        op = "==" if node.op == "==" else "<="
        return _Linear(tuple(index[k] for k in coef), tuple(sign * v for v in coef.values()), sign * const,
                       op, node.op in ("<", ">"), node.tol)
    if node.op == "==":
        for lhs, rhs in ((node.a, node.b), (node.b, node.a)):
            if isinstance(lhs, Col) and lhs.name in movable and lhs.name not in _cols(rhs):
                return _Assign(index[lhs.name], rhs)
    return None


def _cols(node: Any) -> set[str]:
    from ..constraints import columns_of

    return set(columns_of(node))


def repair(space: Space, X: np.ndarray, X0: np.ndarray, cost_scales: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(repaired rows, ok)``: ``ok[i]`` is True only when row ``i`` satisfies every constraint."""
    X0 = np.broadcast_to(np.atleast_2d(X0), X.shape)
    X = space.snap(X, X0)
    plans = [(c, plan(space, c)) for c in space.constraints]
    scales = np.ones(space.width) if cost_scales is None else np.asarray(cost_scales, float)
    for _ in range(PASSES):
        env = space.env(X)
        broken_any = False
        for c, p in plans:
            bad = ~(evaluate(c, env) | ~applicable(c, env))
            if not bad.any() or p is None:
                continue
            broken_any = True
            rows = np.flatnonzero(bad)
            X[rows] = _fix(space, p, X[rows], X0[rows], scales)
            env = space.env(X)
        if not broken_any:
            break
    return X, space.valid(X, X0)


def _fix(space: Space, p: Any, X: np.ndarray, X0: np.ndarray, scales: np.ndarray) -> np.ndarray:
    X = X.copy()
    if isinstance(p, _Member):
        allowed = np.asarray(p.allowed)
        v = X[:, p.index]
        X[:, p.index] = allowed[np.argmin(np.abs(v[:, None] - allowed[None, :]), axis=1)]
        return X
    if isinstance(p, _Assign):
        env = space.env(X)
        with np.errstate(all="ignore"):
            val = np.broadcast_to(np.asarray(eval_expr(p.expr, env), float), (len(X),))
        X[:, p.index] = _on_grid(space, p.index, val, "nearest")
        return X
    coef = np.asarray(p.coef)
    idx = np.asarray(p.index, int)
    done = np.zeros(len(X), bool)
    for r in range(len(X)):
        g = float(X[r, idx] @ coef + p.const)
        order = sorted(range(len(idx)), key=lambda k: (
            X[r, idx[k]] == X0[r, idx[k]], -abs(coef[k]) * scales[idx[k]]))
        for k in order:
            j = idx[k]
            if space.immutable[j] or space.categorical[j] or any(j in grp for grp in space.groups):
                continue
            margin = _margin(space, j) if p.strict else 0.0
            target = X[r, j] - (g + margin * np.sign(coef[k])) / coef[k]
            if p.op == "==":
                new = _on_grid(space, j, np.array([target]), "nearest")[0]
            else:  # need coef*x_j <= coef*target: round toward the feasible side
                new = _on_grid(space, j, np.array([target]), "down" if coef[k] > 0 else "up")[0]
            if space.lo[j] - 1e-9 <= new <= space.hi[j] + 1e-9:
                X[r, j] = new
                done[r] = True
                break
    return X


def _margin(space: Space, j: int) -> float:
    return float(space.step[j]) if np.isfinite(space.step[j]) else 1e-6 * max(1.0, float(abs(space.hi[j] - space.lo[j])
                                                                                        if np.isfinite(space.hi[j] - space.lo[j]) else 1.0))


def _on_grid(space: Space, j: int, v: np.ndarray, how: str) -> np.ndarray:
    if not np.isfinite(space.step[j]):
        return v
    s, a = space.step[j], space.anchor[j]
    k = (v - a) / s
    rounding: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "nearest": np.round, "down": lambda z: np.floor(z + 1e-9), "up": lambda z: np.ceil(z - 1e-9)}
    f = rounding[how]
    return a + f(k) * s
