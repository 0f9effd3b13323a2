"""Figures of an evasion run: robustness curves, robust accuracy, minimal changes, sensitivity.

Robust accuracy is computed over *all* sampled targets — a row the model already gets wrong
counts as a failure — and is reported with the clean accuracy beside it, per class and
balanced, plus a chance-corrected ``robust_skill`` = (robust balanced accuracy − 1/k) /
(1 − 1/k), floored at 0. A constant model gets the majority rate as accuracy but a balanced
accuracy of 1/k, so its robust skill is 0: it earns no robustness credit by ignoring its input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cost import CostModel, names_changed
from .space import Space


def curve(costs: np.ndarray, n: int, budgets: tuple[float, ...]) -> list[dict[str, float]]:
    """Cost budget → share of the ``n`` attacked targets flipped within it."""
    return [{"cost": b, "success_rate": round(float(np.sum(costs <= b * (1 + 1e-9)) / n), 4) if n else 0.0}
            for b in budgets]


def accuracy(y: np.ndarray, correct: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy (mean per-class recall over the classes present) and skill."""
    classes = np.unique(y)
    per = {str(c): float(np.mean(correct[y == c])) for c in classes}
    bal = float(np.mean(list(per.values()))) if per else 0.0
    k = max(2, n_classes)
    skill = max(0.0, (bal - 1 / k) / (1 - 1 / k))
    return {"accuracy": round(float(np.mean(correct)) if len(correct) else 0.0, 4), "balanced": round(bal, 4),
            "skill": round(skill, 4), "per_class": {c: round(v, 4) for c, v in per.items()}}


def robust(y: np.ndarray, clean_correct: np.ndarray, flip_cost: np.ndarray, budget: float,
           n_classes: int) -> dict[str, Any]:
    """Clean and robust accuracy over every target; ``flip_cost`` is inf where no flip was found."""
    robust_correct = clean_correct & ~(flip_cost <= budget * (1 + 1e-9))
    c, r = accuracy(y, clean_correct, n_classes), accuracy(y, robust_correct, n_classes)
    return {"cost_budget": budget, "targets": len(y),
            "clean_accuracy": c["accuracy"], "clean_balanced_accuracy": c["balanced"],
            "robust_accuracy": r["accuracy"], "robust_balanced_accuracy": r["balanced"],
            "robust_skill": r["skill"], "clean_skill": c["skill"],
            "robust_accuracy_per_class": r["per_class"]}


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def changes(space: Space, costm: CostModel, x0: np.ndarray, x1: np.ndarray) -> list[dict[str, Any]]:
    """What one adversarial example changed: feature, from → to (as the model reads it)."""
    e0, e1 = space.env(x0[None, :]), space.env(x1[None, :])
    return [{"feature": n, "from": _py(e0[n][0]), "to": _py(e1[n][0])} for n in names_changed(costm, x0, x1)]


def minimal_changes(space: Space, costm: CostModel, X0: np.ndarray, best: np.ndarray, cost: np.ndarray,
                    ids: list[Any], top: int = 10) -> list[dict[str, Any]]:
    """The cheapest flips, cheapest first."""
    order = [i for i in np.argsort(cost, kind="stable") if np.isfinite(cost[i])][:top]
    return [{"row": _py(ids[i]), "cost": round(float(cost[i]), 4), "l0": int(costm.l0(X0[i], best[i])[0]),
             "changes": changes(space, costm, X0[i], best[i])} for i in order]


def sensitivity(space: Space, costm: CostModel, X0: np.ndarray, best: np.ndarray, cost: np.ndarray) -> dict[str, Any]:
    """Per feature: how often successful examples change it, and the mean |Δ| (numbers) in raw and cost units."""
    ok = np.flatnonzero(np.isfinite(cost))
    out: dict[str, Any] = {}
    if not len(ok):
        return out
    d = np.abs(np.nan_to_num(best[ok]) - np.nan_to_num(X0[ok]))
    changed = d > 1e-12
    for j, name in enumerate(space.names):
        k = int(changed[:, j].sum())
        if not k:
            continue
        row: dict[str, Any] = {"changed_in": k, "share": round(k / len(ok), 4)}
        if costm.numeric[j]:
            row["mean_abs_change"] = round(float(d[changed[:, j], j].mean()), 6)
            row["mean_cost"] = round(float(d[changed[:, j], j].mean() / costm.scales[j]), 4)
        out[name] = row
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["changed_in"]))
