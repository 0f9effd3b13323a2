"""model.evasion.* — can an end user flip the model's decisions with small, realistic changes?

``model.evasion.constrained`` is the black-box, constraint-aware search of
:mod:`mlwarden.attacks.evasion` (any model with ``predict_proba`` or ``predict``, local or
behind an endpoint); ``model.evasion.gradient`` runs ART's gradient attacks on differentiable
models (:mod:`mlwarden.attacks.evasion_gradient`). Both report in the same units — the cost of
:mod:`mlwarden.attacks.cost` — so their curves can be read side by side.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ...attacks import evasion_report as rep
from ...attacks.evasion import ChunkResult, Config, Task, attack_chunk, nearest_seeds
from ...findings import Location, Severity
from ...registry import AuditContext, Chart, Outcome, register
from .base import Clock, ModelCheck, attack_metrics
from .evasion_setup import Setup, clean_predictions, prepare

COST_BUDGET = 1.0
"""A cost a user could pay: one feature moved by its whole interquartile range (or one category changed)."""
HIGH, MEDIUM = 0.5, 0.1
CHUNK = 25


@register
class ConstrainedEvasion(ModelCheck):
    """Flips the model's correct decisions with the cheapest changes a real input can make.

    **What it finds.** For a deterministic sample of ``attacks.targets`` rows of the eval
    split that the model classifies correctly, a gradient-free search (seeded from the
    nearest real rows of another class, repaired onto the spec's ``features:`` and
    ``constraints:`` at every step — immutables, bounds, steps, categories, one-hot groups,
    relations) for the cheapest change that flips the decision. Reports the robustness curve
    (share flipped at 10 cost budgets) beside a random-noise baseline of the same costs, the
    cheapest flips (features, from → to, cost), per-feature sensitivity, queries per success,
    and clean vs robust accuracy (over all targets, misclassified ones counting as failures;
    balanced and chance-corrected, so a constant model earns no credit).

    **Severity.** Of the decisions the model gets right, the share flipped within cost ≤ 1.0
    (one feature moved by its whole interquartile range in the training data, or one
    category or one-hot group changed; immutable features never change): ≥ 50 % high,
    ≥ 10 % medium, above 0 info; none: pass.

    **Why it matters.** An applicant who can move a decision by nudging one or two values
    they control will find it (OWASP ML01, ATLAS AML.T0043/AML.T0015); the cheapest flips
    show which features an adversary would use, and the noise baseline shows whether the
    model is fragile everywhere or only to a targeted search.

    **How to fix.** Verify the sensitive features at the source (documents, bureau data)
    instead of trusting user input; make them immutable for users in the product; train
    with constraint-aware adversarial examples or monotonic constraints; reduce reliance on
    the features the sensitivity table ranks first; re-run this check.
    """

    id = "model.evasion.constrained"
    title = "Decisions resist small, realistic changes of the input"
    needs = ("eval", "label")
    references = ("OWASP-ML01", "AML.T0043", "AML.T0015", "NIST-MEASURE")

    def run(self, ctx: AuditContext) -> Outcome:
        clock = Clock(self.spec.attacks.time_limit_s)
        s = prepare(self, ctx)
        pred = clean_predictions(s)
        correct = (pred == s.y) & (s.y >= 0)
        attacked = np.flatnonzero(correct)
        cfg = Config()
        per_target = (s.model.budget.remaining or 0) // max(1, len(attacked)) if s.model.budget.limit else 200
        chunks = [attacked[i:i + CHUNK] for i in range(0, len(attacked), CHUNK)]
        seeds = nearest_seeds(s.costm, s.X[attacked], s.y[attacked], s.pool, s.pool_y, cfg.seeds)
        pos = {t: k for k, t in enumerate(attacked)}
        tasks = [Task(X0=s.X[c], y=s.y[c], seeds=seeds[[pos[t] for t in c]], queries=int(per_target * len(c)),
                      seed=int(self.rng(2 + k).integers(2**31)), seconds=max(0.0, clock.limit_s - clock.elapsed))
                 for k, c in enumerate(chunks)]
        results: list[ChunkResult] = ctx.engine.map(partial(attack_chunk, s.model, s.space, s.costm, cfg), tasks)
        used = sum(r.queries_used for r in results)
        s.model.budget.charge(used)
        cost = np.full(len(s.X), np.inf)
        best = np.full_like(s.X, np.nan)
        noise = np.full(len(s.X), np.inf)
        queries = np.zeros(len(s.X), int)
        to_success = np.full(len(s.X), -1)
        for c, r in zip(chunks, results):
            cost[c], best[c], noise[c], queries[c], to_success[c] = r.cost, r.best, r.noise_cost, r.queries, r.to_success
        stopped = [r for r in results if r.stopped_early]
        return self._outcome(s, correct, attacked, cost, best, noise, queries, to_success, clock, stopped, cfg)

    def _outcome(self, s: Setup, correct: np.ndarray, attacked: np.ndarray, cost: np.ndarray, best: np.ndarray,
                 noise: np.ndarray, queries: np.ndarray, to_success: np.ndarray, clock: Clock,
                 stopped: list[ChunkResult], cfg: Config) -> Outcome:
        n_att = len(attacked)
        flipped = attacked[np.isfinite(cost[attacked])]
        within = int(np.sum(cost[attacked] <= COST_BUDGET * (1 + 1e-9)))
        rate = within / n_att if n_att else 0.0
        known = s.y >= 0
        metrics: dict[str, Any] = {
            **attack_metrics(budget=s.model.budget, seed=self.seed(), clock=clock, stopped_early=bool(stopped),
                             why=stopped[0].reason if stopped else None, source=s.model.where),
            "split": s.split, "targets": len(s.X), "eval_rows": s.rows_total, "attacked": n_att,
            "cost_budget": COST_BUDGET, "flipped_within_budget": within, "flip_rate_within_budget": round(rate, 4),
            "flipped_any_cost": len(flipped),
            "median_cost": _r(np.median(cost[flipped])) if len(flipped) else None,
            "median_l0": _r(np.median(s.costm.l0(s.X[flipped], best[flipped]))) if len(flipped) else None,
            "robustness_curve": rep.curve(cost[attacked], n_att, cfg.budgets),
            "noise_curve": rep.curve(noise[attacked], n_att, cfg.budgets),
            "queries_per_success": _r(float(queries[attacked].sum()) / len(flipped)) if len(flipped) else None,
            "median_queries_to_success": _r(np.median(to_success[flipped])) if len(flipped) else None,
            **rep.robust(s.y[known], correct[known], cost[known], COST_BUDGET, len(s.model.classes)),
            "minimal_changes": rep.minimal_changes(s.space, s.costm, s.X, best, cost, s.ids),
            "sensitivity": rep.sensitivity(s.space, s.costm, s.X, best, cost),
            "cost_units": {n: sc for n, sc in zip(s.costm.names, s.costm.scales) if sc != 1.0},
            "immutable": [n for n, m in zip(s.space.names, s.space.immutable) if m],
            "constraints_enforced": [c.text for c in s.space.constraints],
            "constraints_not_enforced": list(s.space.ignored),
        }
        charts = [Chart(title="Decisions flipped vs cost budget (search)", unit="%",
                        labels=tuple(f"≤{b:g}" for b in cfg.budgets),
                        values=tuple(100 * p["success_rate"] for p in metrics["robustness_curve"])),
                  Chart(title="Decisions flipped vs cost budget (random noise)", unit="%",
                        labels=tuple(f"≤{b:g}" for b in cfg.budgets),
                        values=tuple(100 * p["success_rate"] for p in metrics["noise_curve"]))]
        findings = []
        if within:
            sev = Severity.HIGH if rate >= HIGH else Severity.MEDIUM if rate >= MEDIUM else Severity.INFO
            top = metrics["minimal_changes"][:3]
            example = "; ".join(", ".join(f"{c['feature']} {c['from']}→{c['to']}" for c in m["changes"])
                                + f" (cost {m['cost']})" for m in top)
            noise_rate = next(p["success_rate"] for p in metrics["noise_curve"] if p["cost"] == COST_BUDGET)
            findings.append(self.finding(
                key=("flippable",), severity=sev,
                title=f"{within} of {n_att} correct decisions ({rate:.0%}) flip with a change of cost ≤ {COST_BUDGET:g}",
                description=(f"A constraint-respecting search flipped {rate:.0%} of the model's correct decisions on "
                             f"data.{s.split} within cost {COST_BUDGET:g} (random changes of the same cost: "
                             f"{noise_rate:.0%}). Robust accuracy {metrics['robust_accuracy']:.0%} vs clean "
                             f"{metrics['clean_accuracy']:.0%} (balanced: {metrics['robust_balanced_accuracy']:.0%} vs "
                             f"{metrics['clean_balanced_accuracy']:.0%}). Cheapest flips: {example}."),
                remediation=("Verify the features the sensitivity table ranks first at their source, mark what users "
                             "cannot change as immutable in the product, train with constraint-aware adversarial "
                             "examples or monotonic constraints, and re-run this check."),
                evidence={k: metrics[k] for k in ("flip_rate_within_budget", "cost_budget", "robustness_curve",
                                                  "noise_curve", "robust_accuracy", "clean_accuracy",
                                                  "robust_balanced_accuracy", "queries_per_success")}
                | {"minimal_changes": metrics["minimal_changes"][:5],
                   "sensitivity": dict(list(metrics["sensitivity"].items())[:8])},
                location=Location(artifact=s.model.where, rows=tuple(m["row"] for m in metrics["minimal_changes"][:20]))))
        return Outcome(findings=findings, metrics=metrics, charts=charts)


def _r(x: float) -> float | None:
    x = float(x)
    return round(x, 4) if np.isfinite(x) else None


from .evasion_gradient import GradientEvasion  # noqa: F401  (registers model.evasion.gradient)
