"""model.privacy.* — what the model's answers reveal about the people it was trained on.

``model.privacy.membership`` tells training rows from held-out rows (threshold baseline and
offline RMIA, :mod:`mlwarden.attacks.membership`); ``model.privacy.attribute_inference``
measures how much the model's output helps guess a sensitive attribute
(:mod:`mlwarden.attacks.attribute`). Both query the model through the facade, within the
spec's ``attacks:`` bounds.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from ...attacks import attribute as attr_lib
from ...attacks import membership as mia
from ...attacks.refit import fit_score_task, recipe, true_label_proba
from ...findings import Severity
from ...registry import AuditContext, Curve, Outcome, Skip, register
from .base import Clock, ModelCheck, attack_metrics, read_split

REFERENCE_MODELS = 2
"""Reference models RMIA refits (1–4 reach LiRA-level power in the paper; 2 cover every row once)."""
ATTRIBUTE_ROWS = 5_000


@register
class MembershipInference(ModelCheck):
    """Tells whether a row was in the training data from the model's answers (membership inference).

    **What it finds.** Training rows are the members; test rows the non-members, after
    dropping every test row whose model inputs equal a training row's (oversampling before
    splitting leaves such copies, and they are members in all but name — the count is
    reported). Two attacks: a **threshold** on the model's confidence in the true label
    (with labels only: whether the model is right), and **RMIA** (Zarifzadeh et al., ICML
    2024, offline) with reference models refit from the model's hyper-parameters
    (``sklearn.base.clone``) on random halves of members ∪ non-members, each row judged only
    by the models that did not train on it. Reports AUC and TPR at 0.1 % and 1 % FPR with
    bootstrap 95 % intervals, the number of non-members (TPR at 0.1 % FPR needs at least
    1,000 to mean anything; fewer is said) and the ROC curve on a log FPR axis. Endpoints
    get the threshold attack only (no refits).

    **Severity.** High when an attack's TPR is at least 10× its FPR with the interval's
    lower end above the FPR: TPR ≥ 1 % at 0.1 % FPR (over ≥ 1,000 non-members), or
    TPR ≥ 10 % at 1 % FPR (over ≥ 100 non-members; with a few thousand non-members the
    0.1 % interval is too wide to clear its bar). Medium when the best AUC is ≥ 0.6 with
    its interval above 0.5.

    **Why it matters.** Knowing that someone's record trained a loan or health model
    discloses that they applied or were treated (OWASP ML04, ATLAS AML.T0024.000). Low-FPR
    power is what matters: an attack that is sure about a few people is a breach even when
    its average accuracy looks harmless (Carlini et al., S&P 2022).

    **How to fix.** Regularise (shallower trees, fewer leaves, min samples per leaf, L2),
    stop training earlier, train with differential privacy (e.g. DP-SGD, diffprivlib), and
    serve labels or coarsely rounded scores instead of full probabilities.
    """

    id = "model.privacy.membership"
    title = "The model does not reveal who was in its training data"
    needs = ("train", "test", "label")
    references = ("OWASP-ML04", "AML.T0024.000", "NIST-MEASURE")

    def run(self, ctx: AuditContext) -> Outcome:
        clock, label, rng = Clock(self.spec.attacks.time_limit_s), self.spec.data.label, self.rng()
        train = read_split(ctx, "train")
        model = self.open(train.frame)
        budget = model.budget.child(None)
        model = model.with_budget(budget)
        feats = model.schema.names
        test = read_split(ctx, "test")
        members = train.frame.dropna(subset=[label]).reset_index(drop=True)
        non = test.frame.dropna(subset=[label])
        seen = set(pd.util.hash_pandas_object(members[feats], index=False).tolist())
        copies = pd.util.hash_pandas_object(non[feats], index=False).isin(seen).to_numpy()
        non = non[~copies].reset_index(drop=True)
        if len(non) < 20 or len(members) < 20:
            raise Skip(f"too few rows to judge: {len(members)} members, {len(non)} non-members "
                       f"after dropping {int(copies.sum())} test rows that copy training rows")
        cap = 10**9 if budget.remaining is None else budget.remaining
        n_non = min(len(non), cap // 2)
        n_mem = min(len(members), cap - n_non)
        mi = np.sort(rng.choice(len(members), n_mem, replace=False))
        ni = np.sort(rng.choice(len(non), n_non, replace=False))
        ev = pd.concat([members.iloc[mi], non.iloc[ni]], ignore_index=True)
        is_mem = np.r_[np.ones(n_mem, bool), np.zeros(n_non, bool)]
        y = ev[label].to_numpy()
        metrics: dict[str, Any] = {"train": train.describe(), "test": test.describe(),
                                   "test_rows_dropped_as_train_copies": int(copies.sum()),
                                   "members_scored": n_mem, "nonmembers_scored": n_non}
        attacks: dict[str, dict[str, Any]] = {}
        if model.exposes_proba:
            p = true_label_proba(model.predict_proba(ev), model.classes, y)
            attacks["threshold (confidence)"] = mia.evaluate(p[is_mem], p[~is_mem], rng)
        else:
            p = (model.predict(ev) == y).astype(float)
            attacks["threshold (correctness, labels only)"] = mia.evaluate(p[is_mem], p[~is_mem], rng)
        stopped, why = False, None
        if model.estimator is None or not model.exposes_proba:
            metrics["rmia"] = "not run: needs the model artifact (refits) and its scores"
        else:
            pool = pd.concat([members, non], ignore_index=True)
            plan = mia.reference_plan(len(pool), REFERENCE_MODELS, self.rng(1))
            rows = np.r_[mi, len(members) + ni]
            deadline = time.time() + max(0.0, clock.limit_s - clock.elapsed)
            tasks = [(recipe(model.estimator, self.seed()), pool.loc[plan[:, k], feats],
                      pool.loc[plan[:, k], label].to_numpy(), ev[feats], y, deadline) for k in range(plan.shape[1])]
            done = [(k, r) for k, r in enumerate(ctx.engine.map(fit_score_task, tasks)) if r is not None]
            if len(done) < len(tasks):
                stopped, why = True, f"time limit: {len(done)} of {len(tasks)} reference models fitted"
            if done:
                ref_plan = plan[rows][:, [k for k, _ in done]]
                out = mia.out_mean(np.stack([r for _, r in done], axis=1), ref_plan)
                ok = ~np.isnan(out)
                z = ok & ~is_mem
                s = mia.rmia_scores(p[ok], out[ok], p[z], out[z])
                if (is_mem[ok]).sum() and (~is_mem[ok]).sum():
                    attacks[f"RMIA ({len(done)} reference models)"] = mia.evaluate(s[is_mem[ok]], s[~is_mem[ok]], rng)
                metrics["rmia"] = {"reference_models": len(done), "offline_a": mia.OFFLINE_A, "gamma": mia.GAMMA,
                                   "reference_training_rows": int(plan[:, 0].sum()), "population_z": int(z.sum())}
        metrics["attacks"] = attacks
        metrics.update(attack_metrics(budget=budget, seed=self.seed(), clock=clock, stopped_early=stopped,
                                      why=why, source=model.where))
        return Outcome(findings=self._findings(attacks, metrics), metrics=metrics, charts=[_roc_chart(attacks)])

    def _findings(self, attacks: dict[str, dict[str, Any]], metrics: dict[str, Any]) -> list[Any]:
        judged = [(name, a, membership_severity(a)) for name, a in attacks.items()]
        worst = max(judged, key=lambda t: (t[2].rank if t[2] else -1, t[1]["auc"]))
        name, a, sev = worst
        if sev is None:
            return []
        t1, t0 = a["tpr_at_fpr"]["1%"], a["tpr_at_fpr"]["0.1%"]
        note = "" if t0["meaningful"] else f" (only {a['nonmembers']:,} non-members: TPR at 0.1 % FPR is not meaningful)"
        return [self.finding(
            key=("membership",), severity=sev,
            title=(f"Membership inference ({name}): AUC {a['auc']:.2f}, TPR {t0['tpr']:.1%} at 0.1 % FPR, "
                   f"{t1['tpr']:.1%} at 1 % FPR"),
            description=(f"{a['members']:,} training rows against {a['nonmembers']:,} held-out rows{note}. "
                         f"AUC 95 % CI {a['auc_ci']}; TPR at 0.1 % FPR CI {t0['ci']}, at 1 % FPR CI {t1['ci']}. "
                         f"{metrics['test_rows_dropped_as_train_copies']:,} test rows were copies of training "
                         "rows and were not counted as non-members."),
            remediation=("Regularise the model (limit depth/leaves, raise min samples per leaf, add L2), train "
                         "with differential privacy, and return labels or rounded scores from the endpoint."),
            evidence={"attack": name, **{k: v for k, v in a.items() if k != "roc"},
                      "all_attacks": {n: {"auc": x["auc"], "tpr_at_fpr": x["tpr_at_fpr"]} for n, x in attacks.items()}})]


def membership_severity(a: dict[str, Any]) -> Severity | None:
    """The documented thresholds (see the check's docstring)."""
    t0, t1 = a["tpr_at_fpr"]["0.1%"], a["tpr_at_fpr"]["1%"]
    if t0["meaningful"] and t0["tpr"] >= 0.01 and t0["ci"][0] > 0.001:
        return Severity.HIGH
    if t1["meaningful"] and t1["tpr"] >= 0.10 and t1["ci"][0] > 0.01:
        return Severity.HIGH
    if a["auc"] >= 0.6 and a["auc_ci"][0] > 0.5:
        return Severity.MEDIUM
    return None


def _roc_chart(attacks: dict[str, dict[str, Any]]) -> Curve:
    grid = next(iter(attacks.values()))["roc"]
    series = [(name, tuple((f, t) for f, t, *_ in a["roc"])) for name, a in attacks.items()]
    series.append(("chance", tuple((f, f) for f, *_ in grid)))
    bands = tuple((name, tuple((f, lo, hi) for f, _, lo, hi in a["roc"])) for name, a in attacks.items())
    return Curve(title="Membership inference ROC (bands: bootstrap 95 %)", x_label="false-positive rate",
                 y_label="true-positive rate", series=tuple(series), bands=bands, x_log=True, y_range=(0.0, 1.0))


@register
class AttributeInference(ModelCheck):
    """Measures how much the model's output helps an attacker guess a sensitive attribute.

    **What it finds.** For each ``data.sensitive`` attribute, on up to 5,000 training rows
    (the people the model was fitted on): an attacker who knows the other features trains
    a small gradient-boosting classifier for the attribute, once with the features alone
    and once with the model's output added (its scores, or its decision when only labels
    are exposed). Model features that merely encode the attribute (its indicator columns:
    one value per group) are left out of what the attacker knows. Reports both out-of-fold
    AUCs (one-vs-rest, weighted) and the gain with a paired bootstrap 95 % interval.

    **Severity.** High when the AUC gain is ≥ 0.10 with the interval's lower end ≥ 0.05;
    medium when it is ≥ 0.02 with the interval above 0. What the other features reveal on
    their own is a data matter (see ``fairness.proxies``), not counted here.

    **Why it matters.** A model whose output carries a protected attribute lets anyone who
    sees its answers infer race, sex or health from otherwise harmless data (OWASP ML03,
    ATLAS AML.T0024.001).

    **How to fix.** Remove the attribute and its proxies from the features, return
    decisions instead of scores, round scores, or train with an adversary penalising
    attribute leakage.
    """

    id = "model.privacy.attribute_inference"
    title = "The model's output does not reveal sensitive attributes"
    needs = ("train", "sensitive")
    references = ("OWASP-ML03", "AML.T0024.001", "NIST-MEASURE")

    def run(self, ctx: AuditContext) -> Outcome:
        clock, rng = Clock(self.spec.attacks.time_limit_s), self.rng()
        train = read_split(ctx, "train")
        model = self.open(train.frame)
        budget = model.budget.child(None)
        model = model.with_budget(budget)
        attrs = [a for a in self.spec.data.sensitive if a in train.frame.columns]
        if not attrs:
            raise Skip("no data.sensitive attribute is a column of the training data")
        n = min(len(train.frame), ATTRIBUTE_ROWS, ATTRIBUTE_ROWS if budget.remaining is None else budget.remaining)
        if n < 50:
            raise Skip(f"too few rows or queries left to judge: {n}")
        rows = train.frame.iloc[np.sort(rng.choice(len(train.frame), n, replace=False))].reset_index(drop=True)
        feats = model.schema.names
        if model.exposes_proba:
            out = model.predict_proba(rows)
            output = pd.DataFrame(out, columns=[f"\x1fscore:{c}" for c in model.classes])
        else:
            output = pd.DataFrame({"\x1fdecision": pd.Series(model.predict(rows)).astype("category").cat.codes})
        tasks: list[Any] = []
        plans: dict[str, Any] = {}
        for a in attrs:
            groups = attr_lib.target_groups(rows[a])
            if np.unique(groups).size < 2 or np.unique(groups, return_counts=True)[1].min() < attr_lib.FOLDS:
                plans[a] = "fewer than two groups with enough rows"
                continue
            dropped = attr_lib.encodings(rows, groups, [f for f in feats if f != a])
            known = attr_lib.numeric(rows[[f for f in feats if f != a and f not in dropped]])
            plans[a] = {"groups": np.unique(groups), "y": groups, "dropped": ([a] if a in feats else []) + dropped}
            tasks += [(known, groups, self.seed()), (pd.concat([known, output], axis=1), groups, self.seed())]
        probas = iter(ctx.engine.map(attr_lib.oof_proba_task, tasks))
        results: dict[str, Any] = {}
        findings: list[Any] = []
        for a, plan in plans.items():
            if isinstance(plan, str):
                results[a] = plan
                continue
            r = attr_lib.gain(plan["y"], next(probas), next(probas), rng)
            r.update({"rows": n, "groups": [str(g) for g in plan["groups"]],
                      "left_out_as_encodings": plan["dropped"]})
            results[a] = r
            sev = attribute_severity(r)
            if sev:
                findings.append(self.finding(
                    key=("attribute", a), severity=sev,
                    title=(f"The model's output helps infer {a}: AUC {r['auc_features_only']:.2f} → "
                           f"{r['auc_with_model_output']:.2f} (gain {r['auc_gain']:+.2f})"),
                    description=(f"An attacker knowing the other features guesses {a} with AUC "
                                 f"{r['auc_features_only']:.3f}; adding the model's output raises it to "
                                 f"{r['auc_with_model_output']:.3f} (gain 95 % CI {r['auc_gain_ci']}), on {n:,} "
                                 "training rows."),
                    remediation=(f"Remove {a} and its proxies from the model's features; serve decisions or rounded "
                                 "scores rather than probabilities."),
                    evidence=r))
        metrics = {"attributes": results, "train": train.describe(),
                   **attack_metrics(budget=budget, seed=self.seed(), clock=clock, stopped_early=False,
                                    source=model.where)}
        return Outcome(findings=findings, metrics=metrics)


def attribute_severity(r: dict[str, Any]) -> Severity | None:
    g, lo = r["auc_gain"], r["auc_gain_ci"][0]
    if g >= 0.10 and lo >= 0.05:
        return Severity.HIGH
    if g >= 0.02 and lo > 0:
        return Severity.MEDIUM
    return None
