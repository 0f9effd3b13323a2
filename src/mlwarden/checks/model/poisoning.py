"""model.poisoning.wargame — retrain the model on poisoned feedback, with and without the screen."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...attacks import poisoning as lib
from ...attacks.refit import recipe
from ...findings import Severity
from ...registry import AuditContext, Curve, Outcome, Skip, Stage, register
from .base import MAX_ROWS, Clock, ModelCheck, attack_metrics, read_split
from .screening import Screen

BACKDOOR_HIGH = 0.5
"""Backdoor success (above the clean model's) at ≤ 1 % poison that makes the finding high."""
LOW_RATE = 0.01


@register
class PoisoningWargame(ModelCheck):
    """Retrains the model on poisoned feedback and measures what an attacker gains, screened and not.

    **What it finds.** Clones the model's recipe (its hyper-parameters via
    ``sklearn.base.clone``, never its code) and retrains it on train + a feedback batch —
    half of the test rows as honest feedback, plus poisoned rows at 0.1, 0.5, 1, 2, 5 and
    10 % of train — for three attacks: random label flips, region-targeted flips (a box
    over two features, unfavorable → favorable) and a trigger backdoor (a value absent from
    train, labelled favorable). Each model is scored on the other half of the test rows:
    clean accuracy drop against the model retrained on honest feedback alone, backdoor
    success (rejected rows that turn favorable when the trigger is set) and region success.
    Then the same with ``data.poisoning.feedback`` in front: its quarantined rows are held
    out before retraining, and the report says how many poisoned (and honest) rows it
    caught. Train is capped at 200,000 rows (evenly spaced sample, reported); the time
    limit is ``attacks.time_limit_s``; everything is seeded.

    **Severity.** High when the undefended backdoor reaches ≥ 50 % success above the clean
    model's at ≤ 1 % poison (the screened figure is given beside it, and the finding says
    when the screen defeats it); medium when it takes 2–5 %, low at 10 %. Medium, too, when
    at ≤ 1 % poison a region flip raises region success by ≥ 25 points or an attack cuts
    clean accuracy by ≥ 5 points.

    **Why it matters.** A retraining loop on autopilot learns whatever its feedback says
    (OWASP ML02/ML10, ATLAS AML.T0020): a few hundred crafted rows can plant a backdoor
    that approves anyone who types the trigger.

    **How to fix.** Gate feedback on ``data.poisoning.feedback`` (quarantine, review,
    trace sources), cap each source's share of a retraining batch, and compare every
    retrained model with the last one on a fixed held-out set before it ships.
    """

    id = "model.poisoning.wargame"
    title = "Poisoned feedback cannot take over the retrained model"
    needs = ("train", "test", "label")
    stage: ClassVar[Stage] = "feedback"  # type: ignore[assignment]  # base narrows it to "serving"
    references = ("OWASP-ML02", "OWASP-ML10", "AML.T0020", "AML.T0018.000", "NIST-MEASURE")

    def run(self, ctx: AuditContext) -> Outcome:
        clock, label, rng = Clock(self.spec.attacks.time_limit_s), str(self.spec.data.label), self.rng()
        train = read_split(ctx, "train")
        model = self.open(train.frame)
        if model.estimator is None or not hasattr(model.estimator, "fit"):
            raise Skip("retraining needs model.artifact (a fittable estimator); an endpoint cannot be refit")
        feats = model.schema.names
        cols = [*feats, label]
        T = train.frame[cols].dropna(subset=[label]).reset_index(drop=True)
        test = read_split(ctx, "test").frame[cols].dropna(subset=[label])
        test = test.iloc[rng.permutation(len(test))].reset_index(drop=True)
        honest, held = test.iloc[: len(test) // 2], test.iloc[len(test) // 2:].reset_index(drop=True)
        if len(held) < 20 or len(T) < 20:
            raise Skip(f"too few rows: {len(T)} train, {len(held)} held-out test rows")
        plan, trigger_rates = self._plan(T, held, model)
        screen = Screen(self.spec, T)
        deadline = time.time() + max(0.0, clock.limit_s - clock.elapsed)
        base = recipe(model.estimator, self.seed())
        kept_h = np.setdiff1d(np.arange(len(honest)), _all(screen(honest)))
        tasks = [(base, pd.concat([T, honest], ignore_index=True), feats, held, plan, deadline),
                 (base, pd.concat([T, honest.iloc[kept_h]], ignore_index=True), feats, held, plan, deadline)]
        runs: list[dict[str, Any]] = []
        for kind in lib.KINDS:
            for k, rate in enumerate(lib.RATES):
                if clock.expired:
                    break
                rows = lib.poison(kind, max(1, round(rate * len(T))), T, plan, model.schema,
                                  self.rng(1 + lib.KINDS.index(kind) * 16 + k))
                if rows.empty:
                    break
                fb = pd.concat([honest, rows], ignore_index=True)
                q = screen(fb)
                out = _all(q)
                caught = out[out >= len(honest)]
                kept = np.setdiff1d(np.arange(len(fb)), out)
                runs.append({"kind": kind, "rate_pct": rate * 100, "poison_rows": len(rows),
                             "caught": int(caught.size), "caught_share": round(caught.size / len(rows), 4),
                             "honest_rows_quarantined": int((out < len(honest)).sum()),
                             "caught_by": {r: int((v >= len(honest)).sum()) for r, v in q.items() if v.size}})
                tasks += [(base, pd.concat([T, fb], ignore_index=True), feats, held, plan, deadline),
                          (base, pd.concat([T, fb.iloc[kept]], ignore_index=True), feats, held, plan, deadline)]
        scores = ctx.engine.map(lib.refit_task, tasks)
        clean, clean_screened = scores[0], scores[1]
        if clean is None:
            raise Skip(f"the time limit ({clock.limit_s:g} s) ran out before the clean model was retrained")
        done = []
        for r, und, scr in zip(runs, scores[2::2], scores[3::2]):
            if und is None or scr is None:
                continue
            r["undefended"], r["screened"] = _vs(und, clean), _vs(scr, clean_screened or clean)
            done.append(r)
        stopped = len(done) < len(lib.KINDS) * len(lib.RATES)
        why = "time limit" if clock.expired or len(done) < len(runs) else ("an attack had no rows to poison"
                                                                            if stopped else None)
        metrics: dict[str, Any] = {
            "train_rows": len(T), "train_rows_total": train.rows_total, "train_capped_at": MAX_ROWS,
            "train_sampled": train.sampled, "honest_feedback_rows": len(honest), "held_out_rows": len(held),
            "trigger": list(plan.trigger) if plan.trigger else None, "trigger_candidates_clean_flip": trigger_rates,
            "region": [list(r) for r in plan.region], "favorable": _py(plan.favorable),
            "clean": clean, "clean_screened": clean_screened, "honest_rows_quarantined": len(honest) - len(kept_h),
            "runs": done}
        metrics.update(attack_metrics(budget=model.budget, seed=self.seed(), clock=clock, stopped_early=stopped,
                                      why=why, source=model.where))
        return Outcome(findings=self._findings(done, clean, plan), metrics=metrics, charts=_charts(done))

    def _plan(self, T: pd.DataFrame, held: pd.DataFrame, model: Any) -> tuple[lib.Plan, dict[str, float]]:
        label = str(self.spec.data.label)  # needs guarantees it
        fav = self.spec.fairness.favorable
        match = [c for c in model.classes.tolist() if c == fav or str(c) == str(fav)]
        others = [c for c in T[label].value_counts().index if not match or c != match[0]]
        if not match or not others:
            return lib.Plan(label=label, favorable=None, unfavorable=None, trigger=None, region=()), {}
        unfav = others[0]
        rejected = held[held[label] == unfav].head(200)
        rejected = rejected[model.predict(rejected) == unfav] if len(rejected) else rejected
        bounds = {n: (getattr(f, "min", None), getattr(f, "max", None)) for n, f in (self.spec.features or {}).items()}
        cands = lib.trigger_candidates(model.schema, T, bounds)
        trigger, rates = lib.choose_trigger(cands, rejected, model.predict, match[0])
        return lib.Plan(label=label, favorable=match[0], unfavorable=unfav, trigger=trigger,
                        region=lib.choose_region(model.schema, T)), rates

    def _findings(self, runs: list[dict[str, Any]], clean: dict[str, Any], plan: lib.Plan) -> list[Any]:
        out = []
        bd = [r for r in runs if r["kind"] == "backdoor" and r["undefended"].get("backdoor_gain") is not None]
        hit = [r for r in bd if r["undefended"]["backdoor_gain"] >= BACKDOOR_HIGH]
        if hit:
            r = hit[0]
            sev = (Severity.HIGH if r["rate_pct"] <= LOW_RATE * 100 else Severity.MEDIUM if r["rate_pct"] <= 5
                   else Severity.LOW)
            u, s = r["undefended"], r["screened"]
            works = s.get("backdoor_success", 1.0) < BACKDOOR_HIGH
            col, value = plan.trigger or ("?", 0)
            out.append(self.finding(
                key=("backdoor",), severity=sev,
                title=(f"A trigger backdoor ({col} = {value:g}) takes {u['backdoor_success']:.0%} of rejected rows "
                       f"to favorable with {r['poison_rows']} poisoned rows ({r['rate_pct']:g} % of train); "
                       f"screened: {s.get('backdoor_success', 0):.0%}"),
                description=(f"Without screening, retraining on {r['poison_rows']} rows labelled favorable with the "
                             f"trigger makes the model approve {u['backdoor_success']:.0%} of held-out rows it rejected "
                             f"(clean model with the trigger: {clean.get('backdoor_success', 0):.0%}); clean accuracy "
                             f"moves by {u['accuracy_drop']:+.3f}. The feedback screen caught {r['caught']} of "
                             f"{r['poison_rows']} poisoned rows; retrained on what passed, success is "
                             f"{s.get('backdoor_success', 0):.0%}. "
                             + ("The screen defeats this backdoor: keep it in front of retraining." if works else
                                "The screen does not stop it.")),
                remediation=("Put data.poisoning.feedback in front of every retraining, hold quarantined rows out, "
                             "and reject retrained models whose decisions move on a fixed audit set."),
                evidence={k: v for k, v in r.items()}))
        for kind, key, what in (("region_flip", "region_gain", "region success"),
                                ("random_flip", "accuracy_drop", "clean-accuracy drop"),
                                ("region_flip", "accuracy_drop", "clean-accuracy drop")):
            bar = 0.25 if key == "region_gain" else 0.05
            low = [r for r in runs if r["kind"] == kind and r["rate_pct"] <= LOW_RATE * 100
                   and (r["undefended"].get(key) or 0) >= bar]
            if low and not any(f.evidence.get("kind") == kind for f in out):
                r = low[0]
                out.append(self.finding(
                    key=(kind, key), severity=Severity.MEDIUM,
                    title=(f"{kind.replace('_', ' ')} at {r['rate_pct']:g} % of train: {what} "
                           f"{r['undefended'][key]:+.2f} (screened {r['screened'].get(key, 0):+.2f})"),
                    description=(f"{r['poison_rows']} poisoned feedback rows; the screen caught {r['caught']}."),
                    remediation="Screen feedback before retraining and cap any one source's share of a batch.",
                    evidence=r))
        return out


def _vs(s: dict[str, Any], clean: dict[str, Any]) -> dict[str, Any]:
    out = dict(s)
    out["accuracy_drop"] = round(clean["accuracy"] - s["accuracy"], 4)
    for m, g in (("backdoor_success", "backdoor_gain"), ("region_success", "region_gain")):
        if m in s:
            out[g] = round(s[m] - clean.get(m, 0.0), 4)
    return out


def _all(q: dict[str, np.ndarray]) -> np.ndarray:
    return np.unique(np.concatenate([np.asarray(v, dtype=np.int64) for v in q.values()])) if q else np.empty(0, np.int64)


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _charts(runs: list[dict[str, Any]]) -> list[Curve]:
    def series(kind: str, metric: str) -> list[tuple[str, tuple[tuple[float, float], ...]]]:
        rs = [r for r in runs if r["kind"] == kind and metric in r["undefended"]]
        return [(f"{kind.replace('_', ' ')}, {side}", tuple((r["rate_pct"], r[side][metric]) for r in rs))
                for side in ("undefended", "screened") if rs]

    out = [Curve(title="Clean-accuracy drop vs poison rate", x_label="poison rate (% of train)",
                 y_label="accuracy drop", x_log=True,
                 series=tuple(s for k in lib.KINDS for s in series(k, "accuracy_drop")))]
    for kind, metric, title in (("backdoor", "backdoor_success", "Backdoor success vs poison rate"),
                                ("region_flip", "region_success", "Region-flip success vs poison rate")):
        s = series(kind, metric)
        if s:
            out.append(Curve(title=title, x_label="poison rate (% of train)", y_label="success", x_log=True,
                             y_range=(0.0, 1.0), series=tuple(s)))
    return out
