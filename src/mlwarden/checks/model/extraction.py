"""model.extraction.* — can the model be cloned through its query interface?

``model.extraction.exact`` tries exact recovery: equation solving for a logistic model
with exposed scores (d+1 queries), else path-finding for a tree. ``model.extraction.surrogate``
fits learned surrogates at growing query budgets, from in-distribution and from uniform
queries, under three output policies. Both work through the model facade only, so they
run the same against the local artifact and an endpoint; each experiment spends its own
sub-budget (``model.with_budget(budget.child(n))``). Fidelity is agreement with the target's
decisions on held-out eval rows; the target's answers on those rows are evaluation queries,
reported apart from the attacker's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...attacks.extraction import (
    perturbed_rows,
    solve_linear,
    surrogate_curve,
    uniform_rows,
)
from ...attacks.extraction_paths import path_find
from ...attacks.trees import as_matrix
from ...attacks.trees_grid import feature_scales
from ...errors import MlwardenError
from ...findings import Location, Severity
from ...registry import AuditContext, Chart, Outcome, Skip, register
from ...sources.model import Model, QueryBudget
from .base import Clock, ModelCheck, attack_metrics, read_split

HIGH_FIDELITY = 0.9
CHEAP_QUERIES = 1000
BUDGETS = (100, 1000, 10_000)
HOLDOUT = 2000
PATH_QUERIES = 5000
EXACT_TOL = 1e-6
REFS = ("OWASP-ML05", "AML.T0024.002", "AML.T0040")


class _Extraction(ModelCheck):
    references = REFS
    needs = ("eval",)

    def _setup(self, ctx: AuditContext) -> dict[str, Any]:
        split = next((s for s in ("test", "production", "feedback") if s in ctx.sources.datasets), None)
        if split is None:
            raise Skip("needs an eval split (data.test, data.production or data.feedback)")
        ref_split = "train" if "train" in ctx.sources.datasets else split
        ref = read_split(ctx, ref_split, max_rows=20_000).frame
        model = self.open(ref)
        names = model.schema.names
        label = self.spec.data.label
        have = set(ctx.sources.columns(split))
        if not set(names) <= have:
            raise Skip(f"the {split} split lacks model features: {', '.join(sorted(set(names) - have)[:8])}")
        ev = read_split(ctx, split, [*names, *([label] if label and label in have else [])], max_rows=2 * HOLDOUT).frame
        hold, pool = ev.iloc[::2].reset_index(drop=True), ev.iloc[1::2].reset_index(drop=True)
        if len(hold) < 10:
            raise Skip(f"the {split} split has too few rows to measure fidelity")
        eval_budget = QueryBudget(len(hold))  # the audit's measurement, not the attacker's: counted apart
        try:
            target = np.asarray(model.with_budget(eval_budget).predict(hold))
        except MlwardenError as e:
            raise Skip(f"the model could not be queried: {e}") from None
        truth = hold[label].to_numpy() if label and label in hold.columns else None
        return {"model": model, "ref": ref[[c for c in names if c in ref.columns]], "hold": hold, "pool": pool,
                "target": target, "truth": truth, "eval_budget": eval_budget, "split": split}

    def _metrics(self, used: int, limit: int, clock: Clock, eval_q: int, stopped: bool, why: str | None,
                 model: Model) -> dict[str, Any]:
        b = QueryBudget(limit, used)
        return {**attack_metrics(budget=b, seed=self.seed(), clock=clock, stopped_early=stopped, why=why,
                                 source=model.where), "evaluation_queries": eval_q}

    def _where(self, model: Model) -> Location:
        return Location(artifact=model.where)


@register
class ExactExtraction(_Extraction):
    """Recovers the model exactly through its queries: equation solving, then path-finding.

    **What it finds.** For a binary model that returns scores, d+1 queries (a base row and
    one step along each feature) give the logit at d+1 points; for a logistic model it is
    linear, so w and b follow exactly (Tramèr et al. 2016). The recovered model's logits
    are compared with the target's on held-out eval rows: agreement within 1e-6 means the
    model was recovered **exactly**. Otherwise path-finding explores the input box by
    axis probes and binary searches, recovering a decision tree's splits from its answers
    (scores identify leaves; labels only merge them), within 5,000 queries. Reports
    queries used, weights error where recovered, fidelity (agreement with the target's
    decisions on held-out rows) and leaves found.

    **Severity.** Exact recovery: high. Fidelity ≥ 90 % within 1,000 queries: high; within
    more queries: medium.

    **Why it matters.** A recovered model is a stolen asset (OWASP ML05) and a perfect
    white-box copy for crafting evasions offline, then replaying them at no cost.

    **How to fix.** Return labels, or scores rounded to 1–2 decimals, instead of full
    probabilities; rate-limit and monitor per-client query volume and query patterns (axis
    sweeps, binary searches) in the gateway; never return leaf identifiers.
    """

    id = "model.extraction.exact"
    title = "The model cannot be recovered exactly through its query interface"

    def run(self, ctx: AuditContext) -> Outcome:
        clock = Clock(float(self.spec.attacks.time_limit_s))
        s = self._setup(ctx)
        model, ref, hold, target = s["model"], s["ref"], s["hold"], s["target"]
        scales = feature_scales(model.schema, ref)
        Xh = as_matrix(hold[model.schema.names])
        metrics: dict[str, Any] = {"split": s["split"], "holdout_rows": len(hold), "exposes_scores": model.exposes_proba}
        used, limit, findings = 0, 0, []
        exact = False
        if model.exposes_proba and len(model.classes) == 2 and len(ref):
            b = model.budget.child(len(scales) + 1)
            limit += b.limit or 0
            base = ref.median(numeric_only=True).reindex(model.schema.names).fillna(0.0).to_frame().T
            rec = solve_linear(model.with_budget(b), base, scales)
            used += b.used
            p = model.with_budget(QueryBudget(len(hold))).predict_proba(hold)[:, 1]  # evaluation, not attack
            z = np.log(np.clip(p, 1e-12, 1)) - np.log(np.clip(1 - p, 1e-12, 1))
            err = float(np.max(np.abs(rec.logit(Xh) - z) / np.maximum(1.0, np.abs(z))))
            fid = float(np.mean(np.where(rec.logit(Xh) > 0, model.classes[1], model.classes[0]) == target))
            exact = err <= EXACT_TOL
            metrics["equation_solving"] = {"queries": rec.queries, "max_relative_logit_error": _r(err, 9),
                                           "fidelity": _r(fid), "exact": exact,
                                           "weights": dict(zip(model.schema.names, (_r(w, 9) for w in rec.weights))),
                                           "bias": _r(rec.bias, 9)}
            if exact:
                findings.append(self.finding(
                    key=("equation",), severity=Severity.HIGH,
                    title=f"The model was recovered exactly from {rec.queries} queries (equation solving)",
                    description=(f"The returned scores are a logistic function of the inputs: {rec.queries} queries "
                                 f"(d+1) gave weights and bias whose logits match the model's on {len(hold)} held-out "
                                 f"rows within {err:.1e}; decisions agree on {fid:.1%}."),
                    remediation="Return labels or rounded scores; limit and monitor query volume per client.",
                    evidence=metrics["equation_solving"], location=self._where(model)))
        if not exact and not clock.expired:
            b = model.budget.child(PATH_QUERIES)
            limit += b.limit or 0
            lo, hi = _box(model, ref)
            res = path_find(model.with_budget(b), lo, hi, hold)
            used += b.used
            got = [_decision(v, model) for v in res.tree.predict(Xh)]
            fid = float(np.mean(np.asarray(got, dtype=object) == target.astype(object)))
            metrics["path_finding"] = {"queries": res.queries, "complete": res.complete, "leaves": res.tree.leaves,
                                       "fidelity": _r(fid), "used_scores": model.exposes_proba}
            if fid >= HIGH_FIDELITY:
                sev = Severity.HIGH if res.queries <= CHEAP_QUERIES or fid == 1.0 else Severity.MEDIUM
                findings.append(self.finding(
                    key=("paths",), severity=sev,
                    title=f"Path-finding cloned the model's decisions ({fid:.1%} fidelity) with {res.queries} queries",
                    description=(f"Axis probes and binary searches recovered a tree of {res.tree.leaves} leaves whose "
                                 f"decisions agree with the model on {fid:.1%} of {len(hold)} held-out rows, from "
                                 f"{res.queries} queries{' with scores' if model.exposes_proba else ', labels only'}."),
                    remediation="Return labels only or rounded scores; detect axis-sweep query patterns at the gateway.",
                    evidence=metrics["path_finding"], location=self._where(model)))
        eval_q = len(hold) * (2 if "equation_solving" in metrics else 1)
        metrics.update(self._metrics(used, limit, clock, eval_q, clock.expired, "time limit" if clock.expired else None,
                                     model))
        return Outcome(findings=findings, metrics=metrics)


@register
class SurrogateExtraction(_Extraction):
    """Clones the model with learned surrogates: fidelity vs query budget and output policy.

    **What it finds.** Queries the model at budgets of 100, 1,000 and 10,000 rows (those the
    spec's ``attacks.queries`` allows) from two sources — eval rows perturbed by 0.1 IQR
    (in-distribution) and rows drawn uniformly within the schema's bounds — and fits the
    attacker's best (by its own cross-validation) of a linear and a boosted surrogate on the
    answers under three output policies: full scores, scores rounded to 2 decimals, and
    labels only. Reports fidelity (agreement with the target's decisions on held-out eval
    rows) and the surrogate's accuracy on the true labels per budget, source and policy;
    the points are the fidelity-vs-budget curve.

    **Severity.** Fidelity ≥ 90 % within 1,000 queries under the model's policy: high (the
    model can be cloned cheaply). Within 10,000: medium.

    **Why it matters.** A faithful surrogate is a stolen model (OWASP ML05) and a white-box
    stand-in on which evasions are crafted offline and transfer to the real model.

    **How to fix.** Expose the coarsest output the product can live with (the report shows
    how much each policy slows cloning), cap and monitor query volume per client, and flag
    query streams that look uniform or unlike real traffic.
    """

    id = "model.extraction.surrogate"
    title = "The model cannot be cloned cheaply by a learned surrogate"

    def run(self, ctx: AuditContext) -> Outcome:
        clock = Clock(float(self.spec.attacks.time_limit_s))
        s = self._setup(ctx)
        model, ref, hold, pool, target = s["model"], s["ref"], s["hold"], s["pool"], s["target"]
        scales = feature_scales(model.schema, ref)
        Xh = as_matrix(hold[model.schema.names])
        room = model.budget.remaining
        budgets = [b for b in BUDGETS if room is None or 2 * b <= room]
        skipped = [b for b in BUDGETS if b not in budgets]
        if not budgets:
            raise Skip(f"the query budget ({model.budget.limit}) is below {2 * BUDGETS[0]}; raise attacks.queries")
        top = max(budgets)
        rng = self.rng()
        sources = {"in-distribution": perturbed_rows(model.schema, pool if len(pool) else hold, scales, top, rng),
                   "uniform": uniform_rows(model.schema, hold, top, rng)}
        points, used, stopped = [], 0, False
        for name, queries in sources.items():
            if clock.expired:
                stopped = True
                break
            b = model.budget.child(top)
            points += surrogate_curve(model.with_budget(b), queries, name, budgets, Xh, target, s["truth"], self.seed())
            used += b.used
        curve = [{"source": p.source, "policy": p.policy, "queries": p.queries, "fidelity": _r(p.fidelity),
                  "accuracy": _r(p.accuracy) if p.accuracy is not None else None} for p in points]
        at = {pol: max((p.fidelity for p in points if p.policy == pol and p.queries <= CHEAP_QUERIES), default=None)
              for pol in ("scores", "rounded", "labels")}
        metrics: dict[str, Any] = {"split": s["split"], "holdout_rows": len(hold), "budgets": budgets,
                                   "budgets_not_run": skipped, "curve": curve, "exposes_scores": model.exposes_proba,
                                   "best_fidelity_within_1k": {k: _r(v) for k, v in at.items() if v is not None},
                                   "target_accuracy": _r(float(np.mean(target == s["truth"])))
                                   if s["truth"] is not None else None,
                                   **self._metrics(used, 2 * top, clock, len(hold), stopped,
                                                   "time limit" if stopped else None, model)}
        policy = "scores" if model.exposes_proba and len(model.classes) == 2 else "labels"
        cheap = at.get(policy)
        anyq = max((p.fidelity for p in points if p.policy == policy), default=0.0)
        findings = []
        if (cheap or 0.0) >= HIGH_FIDELITY or anyq >= HIGH_FIDELITY:
            sev = Severity.HIGH if (cheap or 0.0) >= HIGH_FIDELITY else Severity.MEDIUM
            best = max((p for p in points if p.policy == policy), key=lambda p: (p.fidelity, -p.queries))
            first = min((p for p in points if p.policy == policy and p.fidelity >= HIGH_FIDELITY),
                        key=lambda p: p.queries)
            helps = ", ".join(f"{k}: {v:.1%}" for k, v in at.items() if v is not None)
            findings.append(self.finding(
                key=("surrogate",), severity=sev,
                title=f"A surrogate reaches {first.fidelity:.1%} fidelity with {first.queries} queries ({first.source})",
                description=(f"Fitted on the model's answers ({policy}), a surrogate agrees with its decisions on "
                             f"{first.fidelity:.1%} of {len(hold)} held-out rows after {first.queries} "
                             f"{first.source} queries (best: {best.fidelity:.1%} at {best.queries}). Fidelity within "
                             f"1,000 queries by output policy — {helps}."),
                remediation=("Return the coarsest output the product allows, cap and monitor per-client query "
                             "volume, and flag query streams unlike real traffic."),
                evidence={"policy": policy, "fidelity_within_1k": _r(cheap) if cheap is not None else None,
                          "by_policy_within_1k": {k: _r(v) for k, v in at.items() if v is not None}},
                location=self._where(model)))
        labels = tuple(f"{p.source[:7]}/{p.policy}@{p.queries}" for p in points if p.queries == top)
        chart = Chart(title=f"Surrogate fidelity at {top} queries", labels=labels,
                      values=tuple(100 * p.fidelity for p in points if p.queries == top), unit="%")
        return Outcome(findings=findings, metrics=metrics, charts=[chart])


def _box(model: Model, ref: Any) -> tuple[np.ndarray, np.ndarray]:
    X = as_matrix(ref[model.schema.names]) if len(ref) else np.zeros((1, len(model.schema.names)))
    lo = np.array([f.min if f.min is not None else np.nanmin(X[:, i]) for i, f in enumerate(model.schema.features)])
    hi = np.array([f.max if f.max is not None else np.nanmax(X[:, i]) for i, f in enumerate(model.schema.features)])
    return np.nan_to_num(lo), np.nan_to_num(hi)


def _decision(v: Any, model: Model) -> Any:
    if isinstance(v, tuple):
        return model.classes[int(np.argmax(v))]
    return v


def _r(x: float | None, d: int = 4) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else round(float(x), d)
