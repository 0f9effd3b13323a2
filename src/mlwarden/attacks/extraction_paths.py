"""Path-finding extraction of a decision tree (Tramèr et al., USENIX Security 2016).

A tree cuts the input box into axis-aligned cells, each answering with its own leaf's
output; when the output identifies the leaf (its score vector; with labels only, cells of
one class merge) the cells can be found by queries alone. From the centre of a box the
search probes each feature's axis (ends and quarter points); where the answer differs, a
binary search finds the threshold, the box is split there and both halves are explored
the same way. A box whose probes all agree becomes a leaf. The result is a tree that
answers like the target wherever the probes reached; a cell that no axis through a box
centre crosses is missed, which the fidelity on held-out rows shows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..sources.model import BudgetExceeded, Model
from .trees import to_frame

PROBES = (0.0, 0.25, 0.75, 1.0)
"""Where along each axis of a box (0: its lower end, 1: its upper end) the search looks."""
PRECISION = 1e-5
"""Binary search stops when the interval is this fraction of the box's original width."""


@dataclass
class PathTree:
    """The recovered tree: flat nodes; ``feature`` -1 marks a leaf holding ``value``."""

    feature: list[int] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    value: list[Any] = field(default_factory=list)

    def add(self, value: Any = None) -> int:
        self.feature.append(-1)
        self.threshold.append(0.0)
        self.left.append(-1)
        self.right.append(-1)
        self.value.append(value)
        return len(self.feature) - 1

    @property
    def leaves(self) -> int:
        return sum(1 for f in self.feature if f < 0)

    def predict(self, X: np.ndarray) -> list[Any]:
        out = []
        for x in np.asarray(X, dtype=np.float64):
            n = 0
            while self.feature[n] >= 0:
                n = self.left[n] if x[self.feature[n]] <= self.threshold[n] else self.right[n]
            out.append(self.value[n])
        return out


@dataclass
class PathResult:
    tree: PathTree
    queries: int
    complete: bool
    """False when the budget ran out before every box was explored (those boxes are leaves)."""


class _Oracle:
    def __init__(self, model: Model, like: pd.DataFrame, scores: bool) -> None:
        self.model, self.like, self.scores = model, like, scores
        self.queries = 0

    def __call__(self, X: np.ndarray) -> list[Any]:
        frame = to_frame(np.atleast_2d(X), self.like)
        if self.scores:
            out = [tuple(np.round(p, 10)) for p in self.model.predict_proba(frame)]
        else:
            out = list(np.asarray(self.model.predict(frame)))
        self.queries += len(frame)  # counted once answered: a refused batch spent nothing
        return out


def path_find(model: Model, lo: np.ndarray, hi: np.ndarray, like: pd.DataFrame, *, scores: bool | None = None) -> PathResult:
    """Recover a tree answering like ``model`` over the box [lo, hi], until done or the budget ends."""
    ask = _Oracle(model, like[model.schema.names].iloc[:1], model.exposes_proba if scores is None else scores)
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    steps = np.array([f.step or (1.0 if f.kind == "bool" else 0.0) for f in model.schema.features])
    # a stepped feature's thresholds sit between grid values: a quarter step pins them down
    tol = np.maximum(np.maximum(hi - lo, 1e-12) * PRECISION, steps / 4)
    tree = PathTree()
    # breadth first: when the budget runs out, the unexplored boxes are small ones, answered by their parent
    stack = deque([(tree.add(), lo.copy(), hi.copy())])
    complete = True
    while stack:
        node, blo, bhi = stack.popleft()
        try:
            split = _explore(ask, blo, bhi, tol, steps)
        except BudgetExceeded:
            complete = False
            tree.value[node] = tree.value[node] if tree.value[node] is not None else _fallback(tree)
            for n, _a, _b in stack:
                tree.value[n] = tree.value[n] if tree.value[n] is not None else tree.value[node]
            break
        value, cut = split
        tree.value[node] = value
        if cut is None:
            continue
        f, t, t_right = cut
        tree.feature[node], tree.threshold[node] = f, t
        left, right = tree.add(value), tree.add(value)
        tree.left[node], tree.right[node] = left, right
        lhi, rlo = bhi.copy(), blo.copy()
        lhi[f], rlo[f] = t, t_right  # both halves start on their own side: no sliver of the other
        stack.extend([(left, blo, lhi), (right, rlo, bhi)])
    return PathResult(tree, ask.queries, complete)


def _fallback(tree: PathTree) -> Any:
    return next((v for v in tree.value if v is not None), None)


def _explore(ask: _Oracle, lo: np.ndarray, hi: np.ndarray, tol: np.ndarray,
             steps: np.ndarray) -> tuple[Any, tuple[int, float, float] | None]:
    """The answer at the box's centre and, if some axis probe disagrees, the nearest threshold found:
    (feature, a, b) with the answers at a and b different and b - a within the precision."""
    c = (lo + hi) / 2
    axes = [i for i in range(len(c)) if hi[i] - lo[i] > 2 * tol[i]]
    pts = [c]
    where: list[tuple[int, float]] = []
    for i in axes:
        for q in (PROBES if not steps[i] or hi[i] - lo[i] > 2 * steps[i] else (0.0, 1.0)):  # 0/1 columns: ends
            p = c.copy()
            p[i] = lo[i] + q * (hi[i] - lo[i])
            pts.append(p)
            where.append((i, p[i]))
    got = ask(np.stack(pts))
    centre, probes = got[0], got[1:]
    differ = [(i, v) for (i, v), a in zip(where, probes) if a != centre]
    if not differ:
        return centre, None
    i, v = min(differ, key=lambda iv: abs(iv[1] - c[iv[0]]) / (hi[iv[0]] - lo[iv[0]]))
    a, b = (c[i], v) if v > c[i] else (v, c[i])  # answers differ at a and b
    left_answer = centre if a == c[i] else next(x for (j, w), x in zip(where, probes) if j == i and w == v)
    while b - a > tol[i]:
        m = (a + b) / 2
        p = c.copy()
        p[i] = m
        if ask(p[None, :])[0] == left_answer:
            a = m
        else:
            b = m
    return centre, (i, float(a), float(b))
