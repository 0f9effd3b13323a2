"""model.evasion.gradient — ART's gradient attacks (FGSM/PGD) with the spec's constraints enforced."""

from __future__ import annotations

import time

import numpy as np

from ...attacks import evasion_report as rep
from ...attacks.evasion import BUDGETS
from ...findings import Location, Severity
from ...registry import AuditContext, Outcome, Skip, register
from .base import Clock, ModelCheck, attack_metrics
from .evasion_setup import clean_predictions, prepare

COST_BUDGET, HIGH, MEDIUM = 1.0, 0.5, 0.1


@register
class GradientEvasion(ModelCheck):
    """Flips correct decisions of a differentiable model along its gradient, within the constraints.

    **What it finds.** For a differentiable local model (scikit-learn LogisticRegression,
    SVC, LinearSVC, SGDClassifier on numeric features), projected gradient descent built from
    ART's FGSM (adversarial-robustness-toolbox): each step moves only mutable numeric
    features, stays inside an L∞ ball of growing radius (in each feature's cost unit) and is
    repaired onto the spec's ``features:`` and ``constraints:``. Reports the robustness curve
    (share of correct decisions flipped per cost budget, same cost as
    ``model.evasion.constrained``), robust vs clean accuracy and the cheapest flips.

    **Severity.** Share of correct decisions flipped within cost ≤ 1.0 (one feature moved by
    its whole interquartile range): ≥ 50 % high, ≥ 10 % medium, above 0 info; none: pass.
    Skipped when ART (``pip install mlwarden[attacks]``) is missing, the model is served only
    by an endpoint, or it is not differentiable (trees: see ``model.evasion.constrained``).

    **Why it matters.** Gradients are the white-box adversary's shortest path; an insider
    or anyone who obtains the model file finds these flips in milliseconds (OWASP ML01,
    ATLAS AML.T0043).

    **How to fix.** As for ``model.evasion.constrained``: verify the features the flips use,
    make them immutable to users, train adversarially, re-run.
    """

    id = "model.evasion.gradient"
    title = "Decisions resist gradient attacks within the constraints"
    needs = ("eval", "label", "artifact")
    references = ("OWASP-ML01", "AML.T0043", "AML.T0015", "NIST-MEASURE")

    def run(self, ctx: AuditContext) -> Outcome:
        try:
            import art  # noqa: F401
        except ImportError:
            raise Skip("needs ART: pip install 'mlwarden[attacks]' (adversarial-robustness-toolbox)") from None
        from ...attacks.evasion_gradient import NotDifferentiable, pgd

        clock = Clock(self.spec.attacks.time_limit_s)
        s = prepare(self, ctx)
        if s.model.estimator is None:
            raise Skip("gradient attacks need the model file (model.artifact), not only an endpoint")
        pred = clean_predictions(s)
        correct = (pred == s.y) & (s.y >= 0)
        attacked = np.flatnonzero(correct)
        try:
            res = pgd(s.model, s.space, s.costm, s.X[attacked], s.y[attacked],
                      deadline=time.perf_counter() + clock.limit_s - clock.elapsed)
        except NotDifferentiable as e:
            raise Skip(str(e)) from None
        cost = np.full(len(s.X), np.inf)
        best = np.full_like(s.X, np.nan)
        cost[attacked], best[attacked] = res.cost, res.best
        within = int(np.sum(res.cost <= COST_BUDGET * (1 + 1e-9)))
        rate = within / len(attacked) if len(attacked) else 0.0
        known = s.y >= 0
        metrics = {**attack_metrics(budget=s.model.budget, seed=self.seed(), clock=clock,
                                    stopped_early=res.stopped_early, why=res.reason, source=s.model.where),
                   "split": s.split, "targets": len(s.X), "attacked": len(attacked),
                   "gradient_calls": res.gradient_calls, "cost_budget": COST_BUDGET,
                   "flipped_within_budget": within, "flip_rate_within_budget": round(rate, 4),
                   "robustness_curve": rep.curve(res.cost, len(attacked), BUDGETS),
                   **rep.robust(s.y[known], correct[known], cost[known], COST_BUDGET, len(s.model.classes)),
                   "minimal_changes": rep.minimal_changes(s.space, s.costm, s.X, best, cost, s.ids)}
        findings = []
        if within:
            sev = Severity.HIGH if rate >= HIGH else Severity.MEDIUM if rate >= MEDIUM else Severity.INFO
            findings.append(self.finding(
                key=("flippable",), severity=sev,
                title=f"Gradient steps flip {within} of {len(attacked)} correct decisions ({rate:.0%}) within cost ≤ 1",
                description=(f"PGD (ART FGSM steps, repaired onto the spec's constraints) flipped {rate:.0%} of the "
                             f"correct decisions on data.{s.split}; robust accuracy {metrics['robust_accuracy']:.0%} "
                             f"vs clean {metrics['clean_accuracy']:.0%}."),
                remediation="Verify the features the flips use at their source, make them immutable to users, "
                            "train adversarially, and re-run.",
                evidence={k: metrics[k] for k in ("flip_rate_within_budget", "robustness_curve", "robust_accuracy",
                                                  "clean_accuracy", "robust_balanced_accuracy")}
                | {"minimal_changes": metrics["minimal_changes"][:5]},
                location=Location(artifact=s.model.where)))
        return Outcome(findings=findings, metrics=metrics)
