"""model.evasion.tree_bounds — how cheaply can a tree ensemble's decisions be flipped, provably?

Reads the trees of the safe-loaded model (:mod:`mlwarden.attacks.trees_read`), and for a
deterministic sample of rows of the eval split bounds the cheapest admissible change that
flips each decision from both sides (:mod:`mlwarden.attacks.trees`): a found example above,
a certified radius below. Rows fan out through ``ctx.engine.map``; the model facade answers
the queries for the original decisions and for confirming each example.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import numpy as np

from ...attacks.trees import WITHIN, as_matrix, make_problem, tree_bounds
from ...attacks.trees_grid import feature_scales
from ...attacks.trees_read import UnsupportedModel, read_ensemble
from ...errors import MlwardenError
from ...findings import Location, Severity
from ...registry import AuditContext, Chart, Outcome, Skip, register
from ..common import SAMPLE_IDS, py
from .base import Clock, ModelCheck, attack_metrics, read_split

PAYABLE_COST = 1.0
"""A change a user could pay: one IQR of one number, or one category switched (as model.evasion.*)."""
HIGH_SHARE, MEDIUM_SHARE = 0.5, 0.1
COST_GRID = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MILP_SECONDS = 1.0
"""Solver time per row at most (less when ``attacks.time_limit_s`` spread over the rows gives less, 0.1 s
at least); past it the solver's dual bound is still a valid lower bound."""
POOL_ROWS = 5000


def eval_split(ctx: AuditContext) -> str:
    for split in ("test", "production", "feedback"):
        if split in ctx.sources.datasets:
            return split
    raise Skip("needs an eval split (data.test, data.production or data.feedback)")


@register
class TreeBoundsCheck(ModelCheck):
    """Bounds, from both sides, the cheapest change that flips each decision of a tree ensemble.

    **What it finds.** For a sample of rows of the eval split (``attacks.targets``, default
    200), the cheapest change an applicant could make that flips the model's decision —
    respecting immutable features, bounds, integer steps and one-hot groups. The cost is
    Σ |Δ|/IQR over numbers plus 1 per category or one-hot group switched. Per row it gives
    an **upper bound** — an example, found by a greedy search over threshold crossings and
    a mixed-integer program, and *confirmed by the model itself* — and a **lower bound** —
    a guarantee that no admissible change cheaper than it flips the decision (the
    program's certified dual bound; when the solver closes, the two are equal and the
    answer is exact). Reports per row both bounds, the gap and the features the example
    changes (up to 20 rows), the share of rows whose bounds are within 30 % of each other,
    median bounds, time per row, and the curve of decisions flippable vs cost budget
    (found examples from below, certified limits from above).

    **Severity.** Share of decisions flipped by a confirmed example within a payable cost
    (1.0: one IQR of one number, or one category switched): ≥ 50 % high, ≥ 10 % medium,
    any low — the same thresholds as the black-box evasion check.

    **Why it matters.** A decision that flips when an applicant nudges one input by less
    than its usual spread can be gamed by anyone who probes the model (OWASP ML01). For
    tree ensembles the answer need not be a guess: the lower bound proves where the model
    is robust, the upper bound shows how it breaks.

    **How to fix.** Make the features the examples change immutable or verified at the
    source (documents, bureau data) rather than self-declared; coarsen or monotone-
    constrain them (``monotonic_cst``), train with larger leaves or robust splitting, and
    re-run this check until the certified radius exceeds the payable cost.

    Skipped for models that are not scikit-learn tree ensembles and for endpoints (their
    trees are not visible).
    """

    id = "model.evasion.tree_bounds"
    title = "Tree ensemble decisions are not flippable by cheap, admissible changes"
    needs = ("eval",)
    references = ("OWASP-ML01", "AML.T0015", "AML.T0043")

    @classmethod
    def unmet(cls, spec: Any) -> str | None:
        if not (spec.model and spec.model.artifact):
            return "needs model.artifact: an endpoint does not reveal its trees (use the black-box evasion check)"
        return super().unmet(spec)

    def run(self, ctx: AuditContext) -> Outcome:
        clock = Clock(float(self.spec.attacks.time_limit_s))
        split = eval_split(ctx)
        ref = read_split(ctx, "train" if "train" in ctx.sources.datasets else split, max_rows=POOL_ROWS)
        model = self.open(ref.frame)
        if model.estimator is None:
            raise Skip("the model's trees are not visible (endpoint)")
        names = model.schema.names
        pool = as_matrix(ref.frame[names]) if set(names) <= set(ref.frame.columns) else np.empty((0, len(names)))
        try:
            ens = read_ensemble(model.estimator, pool[:500] if len(pool) else None)
        except UnsupportedModel as e:
            raise Skip(str(e)) from None
        id_col = self.spec.data.id
        have = set(ctx.sources.columns(split))
        if not set(names) <= have:
            raise Skip(f"the {split} split lacks model features: {', '.join(sorted(set(names) - have)[:8])}")
        ev = read_split(ctx, split, [*names, *([id_col] if id_col and id_col in have and id_col not in names else [])])
        frame = ev.frame
        n = min(int(self.spec.attacks.targets), len(frame))
        pick = np.sort(self.rng().choice(len(frame), size=n, replace=False)) if n < len(frame) else np.arange(n)
        targets = frame.iloc[pick].reset_index(drop=True)
        ids = targets[id_col].tolist() if id_col and id_col in targets.columns else pick.tolist()
        budget = model.budget.child(2 * n)
        problem = make_problem(ens, model.schema, feature_scales(model.schema, ref.frame), pool,
                               milp_seconds=max(0.1, min(MILP_SECONDS, 0.5 * clock.limit_s / max(1, n))), deadline=time.time() + max(0.0, clock.limit_s - clock.elapsed))
        try:
            tb = tree_bounds(model.with_budget(budget), problem, targets, mapper=ctx.engine.map)
        except MlwardenError as e:
            raise Skip(f"the model could not be queried: {e}") from None
        return self._outcome(tb, ids, ens, budget, clock, split, ev.describe())

    def _outcome(self, tb: Any, ids: list[Any], ens: Any, budget: Any, clock: Clock, split: str,
                 sampling: dict[str, Any]) -> Outcome:
        kept = [i for i, ok in enumerate(tb.rows) if not math.isnan(tb.rows[i].lower)]
        not_run = len(tb.rows) - len(kept)
        uppers = np.array([tb.rows[i].upper if tb.confirmed[i] or tb.rows[i].example is None else math.inf
                           for i in kept])
        lowers = np.array([min(tb.rows[i].lower, u) for i, u in zip(kept, uppers)])
        n = len(kept)
        within = np.array([(np.isinf(u) and np.isinf(lo)) or (np.isfinite(u) and u <= (1 + WITHIN) * lo + 1e-12)
                           for lo, u in zip(lowers, uppers)], dtype=bool)
        fin = np.isfinite(uppers)
        gaps = (uppers[fin] - lowers[fin]) / uppers[fin] if fin.any() else np.empty(0)
        secs = np.array([tb.rows[i].seconds for i in kept])
        payable = int((uppers <= PAYABLE_COST).sum())
        share = payable / n if n else 0.0
        changed = Counter(f for i in kept if tb.confirmed[i] for f in tb.rows[i].changes)
        rows_out = [{"row": py(ids[i]), "decision": str(bool(tb.positive[i])), "lower": _r(lowers[k]),
                     "upper": _r(uppers[k]), "gap": _r(uppers[k] - lowers[k]), "exact": tb.rows[i].exact,
                     "unflippable": bool(np.isinf(lowers[k])),
                     "changes": {f: [_r(a), _r(b)] for f, (a, b) in tb.rows[i].changes.items()}}
                    for k, i in enumerate(kept[:SAMPLE_IDS])]
        found = [_r((uppers <= c).mean()) if n else None for c in COST_GRID]
        curve = {"cost": list(COST_GRID), "found_flip_share": found,
                 "possible_flip_share": [_r((lowers <= c).mean()) if n else None for c in COST_GRID]}
        metrics: dict[str, Any] = {
            "model": ens.kind, "trees": ens.n_trees, "leaves": ens.n_leaves, "split": split, **sampling,
            "rows_targeted": len(tb.rows) + tb.disagreed, "rows_bounded": n, "rows_not_run": not_run,
            "rows_trees_disagree": tb.disagreed, "flips_found": int(fin.sum()),
            "certified_unflippable": int(np.isinf(lowers).sum()),
            "share_within_30pct": _r(within.mean()) if n else None, "goal_within_30pct": 0.9,
            "exact_rows": int(sum(tb.rows[i].exact for i in kept)),
            "median_lower": _r(np.median(lowers[np.isfinite(lowers)])) if np.isfinite(lowers).any() else None,
            "median_upper": _r(np.median(uppers[fin])) if fin.any() else None,
            "median_relative_gap": _r(np.median(gaps)) if len(gaps) else None,
            "seconds_per_row_median": _r(np.median(secs)) if n else None,
            "seconds_per_row_mean": _r(secs.mean()) if n else None,
            "payable_cost": PAYABLE_COST, "flippable_within_payable": payable, "share_within_payable": _r(share),
            "features_changed": dict(changed.most_common()), "curve": curve, "rows": rows_out,
            "cost": "Σ|Δ|/IQR over numbers + 1 per category or one-hot group switched; immutables fixed",
            "bounds": "lower: certified (no cheaper admissible change flips the decision); upper: an example the "
                      "model confirmed",
            **attack_metrics(budget=budget, seed=self.seed(), clock=clock, stopped_early=not_run > 0,
                             why="time limit" if not_run else None, source="artifact"),
        }
        chart = Chart(title="Decisions flipped by a confirmed change, by cost budget",
                      labels=tuple(f"≤{c:g}" for c in COST_GRID),
                      values=tuple(100 * (v or 0.0) for v in found), unit="%")
        findings = []
        if payable:
            findings.append(self._finding(payable, n, share, changed, ids, kept, uppers, lowers))
        return Outcome(findings=findings, metrics=metrics, charts=[chart])

    def _finding(self, payable: int, n: int, share: float, changed: Counter[str], ids: list[Any], kept: list[int],
                 uppers: np.ndarray, lowers: np.ndarray) -> Any:
        sev = Severity.HIGH if share >= HIGH_SHARE else Severity.MEDIUM if share >= MEDIUM_SHARE else Severity.LOW
        top = ", ".join(f for f, _ in changed.most_common(3)) or "-"
        rows = tuple(py(ids[i]) for k, i in enumerate(kept) if uppers[k] <= PAYABLE_COST)[:SAMPLE_IDS]
        certified = int((lowers > PAYABLE_COST).sum())
        return self.finding(
            key=("payable",), severity=sev,
            title=f"{payable} of {n} decisions ({share:.0%}) flip with a change costing ≤ {PAYABLE_COST:g}",
            description=(f"For {payable} of {n} sampled rows the model itself confirmed a change of cost ≤ "
                         f"{PAYABLE_COST:g} (Σ|Δ|/IQR; one category = 1) that flips its decision, respecting "
                         f"immutables, bounds and one-hot groups; the features changed most are {top}. The upper "
                         "bound is a found example; the lower bound is a guarantee — "
                         f"{certified} rows are certified to need more than {PAYABLE_COST:g}."),
            remediation=("Verify the features the examples change at the source or make them immutable in the "
                         "product; constrain the model (monotonic_cst, larger leaves) and re-run this check."),
            evidence={"share": _r(share), "payable_cost": PAYABLE_COST, "top_features": dict(changed.most_common(5))},
            location=Location(artifact=self.spec.display(self.spec.artifact() or ""), rows=rows))


def _r(x: float, d: int = 4) -> float | None:
    """A float for the report; None for NaN and for ∞ (no flip exists / none found — the row says which)."""
    x = float(x)
    return round(x, d) if math.isfinite(x) else None
