"""fairness.counterfactual — does the model's decision change when only the group changes?

Two passes through the engine, both folds of counts: the first over train finds the
proxies of each sensitive attribute among the model's features (the same binned counts
as ``fairness.proxies``); the second over the test split predicts every row as it is and
again moved to each other group, counting the rows whose decision changes. The check is
about what training produced — the model's decision function — so its stage is
``training``, like ``fairness.model_disparity``.

Moving a row to group *t*:

- **attribute** (when the model reads the attribute itself): set it to *t*;
- **proxies** (the model's features that predict the attribute with AUC ≥ 0.8, the five
  strongest): an indicator column (0/1, where 1 marks one group in ≥ 90 % of its rows)
  becomes 1 when it marks *t* and 0 otherwise — for a one-hot family like
  white/black/hispan the 1 moves to *t*'s column; any other proxy takes *t*'s typical
  value in train: the median for numbers (from the binned counts: exact for columns with
  at most 128 distinct values, else a bin edge within 12.5 %), the most frequent value for
  text. Text columns past 128 distinct values are hashed and cannot be set; they are left
  as they are, and the report says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from ...errors import MlwardenError
from ...fairness.groups import MISSING, group_codes
from ...fairness.predict import Predictor
from ...fairness.stats import wilson, z_of
from ...findings import Location, Severity
from ...registry import AuditContext, Check, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..common import SAMPLE_IDS, py, row_ids
from .bins import bin_value, table
from .proxies import BinFold, proxy_severity

MAX_PROXIES = 5
MAX_TARGETS = 10
INDICATOR_PURITY = 0.9
HIGH_RATE = 0.01

Plan = dict[str, dict[str, Any]]
"""Target group → {column: value to set} for the rows moved there."""


@register
class Counterfactual(Check):
    """Flips each row's protected attribute (or its proxies) and counts changed decisions.

    **What it finds.** For every row of the test split and every other group of each
    sensitive attribute, the model's decision on the row as it is and on the row moved
    to that group — by setting the attribute itself when the model reads it, and, as a
    second probe, by setting its strongest proxies among the model's features to the
    other group's values (the indicator of a one-hot family moves to the other group's
    column; other proxies take the other group's median or most frequent value in train).
    Reports, per probe and per group, the rows whose decision changed with a Wilson
    interval, the direction (favorable → unfavorable and back) per pair of groups, the
    substitutions made and up to 20 row ids.

    **Severity.** Any changed decision: medium. Changed decisions for 1 % of rows or more:
    high — the decision depends on the protected attribute or its stand-in.

    **Why it matters.** Two applicants who differ only in race or sex should get the same
    decision. A model that changes its answer when only the attribute (or a copy of it)
    changes uses the attribute directly, which disparity metrics alone cannot show.

    **How to fix.** Remove the attribute and its near-perfect proxies from the model's
    features and retrain; where a proxy carries legitimate information, constrain the
    model (counterfactual fairness, adversarial debiasing) and re-run this probe.
    """

    id = "fairness.counterfactual"
    title = "Decisions do not change when only the protected attribute changes"
    needs = ("test", "sensitive", "predictions")
    stage = "training"
    references = ("NIST-MEASURE", "NIST-MANAGE")

    def run(self, ctx: AuditContext) -> Outcome:
        if not (self.spec.model and self.spec.model.artifact):
            raise Skip("re-predicting rows with the attribute changed needs model.artifact; data.prediction only "
                       "holds the decisions that were made")
        data = self.spec.data.model_copy(update={"prediction": None, "score": None})
        spec = self.spec.model_copy(update={"data": data})
        predictor = Predictor(spec)
        try:
            features = predictor.feature_columns(list(ctx.sources.columns("test")))
        except MlwardenError as e:
            raise Skip(f"the model could not be loaded safely: {e}") from None
        split = "train" if "train" in ctx.sources.datasets else "test"
        bins = BinFold(spec, ctx.sources, features=features, split=split)
        state = ctx.engine.fold([bins], list(ctx.sources.datasets[split].partitions))[bins.id].state
        if not hasattr(state, "counts"):
            raise RuntimeError(f"counting proxies failed: {getattr(state, 'message', state)}")
        plans, notes = self._plans(spec, bins, state, features)
        if not plans:
            raise Skip("; ".join(notes.values()) + ": nothing to flip")
        flips = Flips(spec, ctx.sources, predictor=predictor, plans=plans, features=features)
        folded = ctx.engine.fold([flips], list(ctx.sources.datasets["test"].partitions))[flips.id].state
        if not isinstance(folded, dict):
            raise RuntimeError(getattr(folded, "message", str(folded)))
        return self._outcome(spec, plans, notes, folded, features)

    def _plans(self, spec: Any, bins: BinFold, state: Any, features: list[str]) -> tuple[dict, dict[str, str]]:
        """(attribute, probe) → plan; and, per attribute, why a probe was not possible."""
        leaks = bins.leaks(state)
        test_cols = set(self.sources.columns("test"))
        plans: dict[tuple[str, str], Plan] = {}
        notes: dict[str, str] = {}
        for attr in bins.attrs:
            sizes = state.groups.get(attr, {})
            targets = sorted((g for g in sizes if g != MISSING), key=lambda g: (-sizes[g], g))[:MAX_TARGETS]
            if attr not in test_cols or len(targets) < 2:
                notes[attr] = f"{attr} is not in the test data or has fewer than two groups"
                continue
            if attr in features:
                typ = self.sources.datasets["test"].schema.field(attr).type
                plans[(attr, "attribute")] = {t: {attr: _raw(t, typ)} for t in targets}
            strong = [r for r in leaks.get(attr, []) if proxy_severity(r["auc"], r["nmi"])][:MAX_PROXIES]
            plan: Plan = {t: {} for t in targets}
            for r in strong:
                for t, v in _substitute(state.counts[(r["column"], attr)], targets).items():
                    plan[t][r["column"]] = v
            if any(plan.values()):
                plans[(attr, "proxies")] = plan
            if (attr, "attribute") not in plans and (attr, "proxies") not in plans:
                notes[attr] = f"{attr} is not a model feature and no model feature is a proxy for it"
        return plans, notes

    def _outcome(self, spec: Any, plans: dict, notes: dict[str, str], state: dict, features: list[str]) -> Outcome:
        z = z_of(spec.fairness.confidence)
        metrics: dict[str, Any] = {"model_features": len(features), "not_probed": notes, "probes": {}}
        findings = []
        for (attr, probe), plan in plans.items():
            counts = state.get((attr, probe), {"rows": {}, "changed": {}, "dirs": {}, "ids": []})
            n, k = sum(counts["rows"].values()), sum(counts["changed"].values())
            lo, hi = wilson(k, n, z) if n else (math.nan, math.nan)
            groups = {g: {"rows": counts["rows"][g], "changed": counts["changed"].get(g, 0),
                          "rate": _r(counts["changed"].get(g, 0) / counts["rows"][g]),
                          "rate_ci": [_r(x) for x in wilson(counts["changed"].get(g, 0), counts["rows"][g], z)]}
                      for g in sorted(counts["rows"])}
            dirs = {f"{a} → {b}": {"favorable_to_unfavorable": d[0], "unfavorable_to_favorable": d[1]}
                    for (a, b), d in sorted(counts["dirs"].items())}
            m = {"rows": n, "changed": k, "rate": _r(k / n) if n else None, "rate_ci": [_r(lo), _r(hi)],
                 "groups": groups, "directions": dirs,
                 "substitutions": {t: {c: py(v) for c, v in sorted(s.items())} for t, s in plan.items()},
                 "sample_row_ids": counts["ids"]}
            metrics["probes"][f"{attr}/{probe}"] = m
            if k:
                findings.append(self._finding(attr, probe, m))
        return Outcome(findings=findings, metrics=metrics)

    def _finding(self, attr: str, probe: str, m: dict[str, Any]) -> Any:
        sev = Severity.HIGH if m["rate"] >= HIGH_RATE else Severity.MEDIUM
        how = (f"only {attr} changed" if probe == "attribute"
               else f"only the proxies of {attr} changed ({', '.join(sorted({c for s in m['substitutions'].values() for c in s}))})")
        ci = m["rate_ci"]
        worst = max(m["groups"], key=lambda g: (m["groups"][g]["rate"] or 0, g))
        return self.finding(
            key=("flips", attr, probe), severity=sev,
            title=f"{m['changed']} of {m['rows']} test decisions ({m['rate']:.1%}) change when {how}",
            description=(f"Moving each test row to another {attr} group, with {how}, changed the model's decision for "
                         f"{m['changed']} of {m['rows']} rows ({m['rate']:.2%}, CI {ci[0]:.2%}–{ci[1]:.2%}); most "
                         f"often for rows of {attr}={worst} ({m['groups'][worst]['rate']:.1%}). The decision depends "
                         f"on {attr} {'directly' if probe == 'attribute' else 'through its stand-ins'}."),
            remediation=(f"Remove {attr} {'' if probe == 'attribute' else 'and its near-perfect proxies '}from the "
                         "model's features and retrain; then re-run this probe and fairness.model_disparity."),
            evidence={"attribute": attr, "probe": probe, **m},
            location=Location(artifact=self.spec.display(self.sources.datasets["test"].uri),
                              column=attr if probe == "attribute" else None, rows=tuple(m["sample_row_ids"])))


class Flips(FoldCheck):
    """The test-split fold of :class:`Counterfactual` (not registered): predictions inside update."""

    id = "fairness.counterfactual.flips"
    title = "Counterfactual predictions"
    stage = "training"
    splits = ("test",)

    def __init__(self, spec: Any, sources: Any, *, predictor: Predictor, plans: dict, features: list[str]) -> None:
        super().__init__(spec, sources)
        self.predictor, self.plans, self.features = predictor, plans, features

    def columns(self, split: str) -> list[str]:
        extra = [*(a for a, _p in self.plans), self.spec.data.id]
        have = set(self.sources.columns(split))
        return sorted({c for c in [*self.features, *extra] if c and c in have})

    def init(self) -> dict:
        return {}

    def update(self, state: dict, batch: Batch) -> dict:
        rb = batch.data
        X = rb.select(self.features).to_pandas()
        pred, _ = self.predictor.predict(X)
        fav = self.predictor.favorable(pred)
        ids = row_ids(batch, self.spec.data.id)
        for (attr, probe), plan in self.plans.items():
            codes, labels = group_codes(rb, attr)
            groups = np.array(labels, dtype=object)[codes] if labels else np.empty(0, dtype=object)
            cell = state.setdefault((attr, probe), {"rows": {}, "changed": {}, "dirs": {}, "ids": []})
            any_change = np.zeros(rb.num_rows, dtype=bool)
            for target, sets in plan.items():
                mask = groups != target
                if not sets or not mask.any():
                    continue
                X2 = X[mask].copy()
                for col, value in sets.items():
                    X2[col] = value
                p2 = np.asarray(self.predictor.predict(X2)[0])
                changed = p2 != np.asarray(pred)[mask]
                any_change[np.flatnonzero(mask)[changed]] = True
                f2 = self.predictor.favorable(p2)
                for g in np.unique(groups[mask]).tolist():
                    sel = groups[mask] == g
                    down = int((fav[mask][sel] & ~f2[sel]).sum())
                    up = int((~fav[mask][sel] & f2[sel]).sum())
                    if down or up:
                        d = cell["dirs"].setdefault((g, target), [0, 0])
                        d[0] += down
                        d[1] += up
            for g in np.unique(groups).tolist():
                sel = groups == g
                cell["rows"][g] = cell["rows"].get(g, 0) + int(sel.sum())
                cell["changed"][g] = cell["changed"].get(g, 0) + int((any_change & sel).sum())
            room = SAMPLE_IDS - len(cell["ids"])
            if room > 0:
                cell["ids"].extend(py(v) for v in ids[any_change][:room])
        return state

    def merge(self, a: dict, b: dict) -> dict:
        for key, cell in b.items():
            mine = a.setdefault(key, {"rows": {}, "changed": {}, "dirs": {}, "ids": []})
            for part in ("rows", "changed"):
                for g, n in cell[part].items():
                    mine[part][g] = mine[part].get(g, 0) + n
            for pair, d in cell["dirs"].items():
                m = mine["dirs"].setdefault(pair, [0, 0])
                m[0] += d[0]
                m[1] += d[1]
            mine["ids"] = (mine["ids"] + cell["ids"])[:SAMPLE_IDS]
        return a

    def finalize(self, state: dict, ctx: AuditContext) -> Outcome:
        raise NotImplementedError  # folded through Counterfactual.run


def _raw(label: str, typ: pa.DataType) -> Any:
    """The column value whose group label is ``label`` (labels are Arrow's text of the value)."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return label
    return pa.scalar(label).cast(typ).as_py()


def _substitute(cell: Any, targets: list[str]) -> dict[str, Any]:
    """Per target group, the value a proxy column takes for rows moved there (empty: can't set)."""
    keys, groups, m = table(cell)
    m = m.sum(axis=2)
    real = [i for i, k in enumerate(keys) if k is not None]
    if {keys[i] for i in real} <= {0.0, 1.0} and 1.0 in keys:
        ones = m[keys.index(1.0)]
        if ones.sum() and ones.max() / ones.sum() >= INDICATOR_PURITY:
            marked = groups[int(ones.argmax())]
            return {t: 1.0 if t == marked else 0.0 for t in targets}
    out: dict[str, Any] = {}
    for t in targets:
        if t not in groups:
            continue
        counts = m[real, groups.index(t)]
        if not counts.sum():
            continue
        ks = [keys[i] for i in real]
        if all(isinstance(k, float) for k in ks):
            out[t] = ks[int(np.searchsorted(np.cumsum(counts), counts.sum() / 2))]
        elif all(isinstance(k, tuple) and k[0] == "n" for k in ks):
            out[t] = bin_value(ks[int(np.searchsorted(np.cumsum(counts), counts.sum() / 2))][1])
        elif all(isinstance(k, str) for k in ks):
            out[t] = ks[int(np.argmax(counts))]
    return out


def _r(x: float, d: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), d)
