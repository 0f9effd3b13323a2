"""fairness.representation — who is in the data, per split, and who is missing values.

A fold of counts per (split, attribute, group): row counts and null counts per column.
Share shifts between splits are tested with :func:`mlwarden.fairness.stats.proportion_test`
(with Newcombe intervals on the differences), differential missingness with a chi-square
test; all comparisons are corrected together with Benjamini–Hochberg. The check looks
at data, before any model: stage ``data``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...fairness.groups import MISSING, group_codes
from ...fairness.stats import benjamini_hochberg, newcombe, proportion_test, z_of
from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from .counts import null_mask
from .counts import rounded as _r
from .counts import significant as _sig


def _scipy_stats():  # scipy.stats costs ~0.8 s to import (each audit worker): only finalizers need it
    from scipy import stats

    return stats

SHARE_SHIFT = {"medium": 0.10, "low": 0.03}
"""Absolute change of a group's share between train and another split."""
MISSINGNESS = {"medium": 0.10, "low": 0.05}
"""Spread (max − min across groups) of a column's null rate."""
TINY_SHARE = 0.02


def _add(a: dict, b: dict) -> dict:
    for k, v in b.items():
        a[k] = a.get(k, 0) + v
    return a


def _bincount(codes: np.ndarray, labels: list[str], weights: np.ndarray | None = None) -> dict[str, int]:
    counts = np.bincount(codes, weights=weights, minlength=len(labels))
    return {lab: int(round(c)) for lab, c in zip(labels, counts) if c}


@register
class Representation(FoldCheck):
    """Measures who is in the data: group sizes and shares per split, and missingness per group.

    **What it finds.** For every sensitive attribute (``data.sensitive``), each group's
    rows and share in every split (rows without a value form the group ``(missing)``).
    Under-represented groups: fewer training rows than ``fairness.min_group_size``
    (medium) or under 2 % of train (low). Share shifts: a group whose share in test,
    production or feedback differs from train — significant after Benjamini–Hochberg and
    by at least 10 points (medium) or 3 points (low); a group absent from train counts as
    a full shift. Differential missingness: a column whose null rate differs between groups
    by at least 10 points (medium) or 5 points (low), significant by a chi-square test
    after Benjamini–Hochberg across columns. Only groups of at least ``min_group_size``
    rows are compared.

    **Why it matters.** A model learns little about a group it rarely sees and is judged
    on too few of its rows to know; a population that shifts between training and
    production makes every fairness measurement on test stale; and values missing more
    often for one group are imputed with other groups' patterns — a quiet source of bias.

    **How to fix.** Collect more data for small groups or reweigh them (Kamiran & Calders
    reweighing); re-sample the test set to match production; find out why a column is
    missing more for one group (a form field, a data source) and fix collection rather
    than imputing.
    """

    id = "fairness.representation"
    title = "Every group is represented, consistently across splits"
    needs = ("data", "sensitive")
    stage = "data"
    references = ("NIST-MAP", "NIST-MEASURE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.attrs = list(spec.data.sensitive)
        self.skip_cols = set(self.attrs) | {spec.data.id} - {None}

    def init(self) -> dict[str, Any]:
        return {"groups": {}, "nulls": {}}

    def update(self, state: dict[str, Any], batch: Batch) -> dict[str, Any]:
        rb = batch.data
        masks = {c: null_mask(rb.column(c)) for c in rb.schema.names if c not in self.skip_cols}
        masks = {c: m for c, m in masks.items() if m.any()}
        for attr in self.attrs:
            if attr not in rb.schema.names:
                continue
            codes, labels = group_codes(rb, attr)
            key = (batch.split, attr)
            _add(state["groups"].setdefault(key, {}), _bincount(codes, labels))
            nulls = state["nulls"].setdefault(key, {})
            for col, m in masks.items():
                for lab, n in _bincount(codes, labels, m.astype(np.float64)).items():
                    nulls[(lab, col)] = nulls.get((lab, col), 0) + n
        return state

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        for part in ("groups", "nulls"):
            for key, counts in b[part].items():
                _add(a[part].setdefault(key, {}), counts)
        return a

    def finalize(self, state: dict[str, Any], ctx: AuditContext) -> Outcome:
        fair = self.spec.fairness
        alpha = 1 - fair.confidence
        z = z_of(fair.confidence)
        groups: dict[str, dict[str, dict[str, int]]] = {}
        for (split, attr), counts in state["groups"].items():
            groups.setdefault(attr, {})[split] = dict(sorted(counts.items()))
        if not groups:
            raise Skip("no split holds a sensitive attribute column")
        metrics: dict[str, Any] = {"groups": {}, "min_group_size": fair.min_group_size}
        findings, charts, tests = [], [], []
        order = [s for s in ctx.sources.datasets]
        for attr in self.attrs:
            per_split = groups.get(attr, {})
            metrics["groups"][attr] = {
                split: {g: {"rows": n, "share": _r(n / max(1, sum(c.values())))} for g, n in c.items()}
                for split, c in sorted(per_split.items(), key=lambda kv: order.index(kv[0]))}
            absent = [s for s in order if attr not in ctx.sources.columns(s)]
            if absent:
                metrics["groups"][attr]["not_recorded_in"] = absent
            train = per_split.get("train")
            if train:
                total = sum(train.values())
                charts.append(Chart(title=f"{attr}: share of train rows (%)", labels=tuple(train),
                                    values=tuple(100 * n / total for n in train.values()), unit="%"))
                findings += self._small_groups(attr, train, fair.min_group_size)
                for split in order:
                    if split != "train" and split in per_split:
                        tests += self._shift_tests(attr, split, train, per_split[split], z)
            for split, counts in per_split.items():
                tests += self._missing_tests(state["nulls"].get((split, attr), {}), split, attr, counts,
                                             fair.min_group_size)
        q = benjamini_hochberg(np.array([t["p_value"] for t in tests])) if tests else np.empty(0)
        shifts: list[dict[str, Any]] = []
        missing: list[dict[str, Any]] = []
        for t, qv in zip(tests, q):
            t["q_value"] = _sig(qv)
            t["p_value"] = _sig(t["p_value"])
            (shifts if t["kind"] == "shift" else missing).append(t)
            sev = t.pop("severity")
            if sev and qv < alpha:
                findings.append(self._shift_finding(t, sev) if t["kind"] == "shift" else self._missing_finding(t, sev))
        for t in tests:
            t.pop("kind")
        metrics["share_shifts"] = [t for t in shifts if t["q_value"] is not None and t["q_value"] < alpha]
        metrics["differential_missingness"] = [t for t in missing if t["q_value"] is not None and t["q_value"] < alpha]
        return Outcome(findings=findings, metrics=metrics, charts=charts)

    def _small_groups(self, attr: str, train: dict[str, int], min_size: int) -> list[Any]:
        total = sum(train.values())
        out = []
        for g, n in train.items():
            share = n / total
            if g == MISSING or (n >= min_size and share >= TINY_SHARE):
                continue
            sev = Severity.MEDIUM if n < min_size else Severity.LOW
            why = (f"fewer than fairness.min_group_size ({min_size}) rows" if n < min_size
                   else f"under {TINY_SHARE:.0%} of the training rows")
            out.append(self.finding(
                key=("small-group", attr, g), severity=sev,
                title=f"{attr}={g} is under-represented in train: {n} rows ({share:.1%})",
                description=(f"The group {attr}={g} has {n} of {total} training rows, {why}. The model learns "
                             "little about it, and metrics for it are too uncertain to judge."),
                remediation="Collect more data for this group, or reweigh it during training; report its metrics "
                            "with their confidence intervals.",
                evidence={"attribute": attr, "group": g, "train_rows": n, "train_share": _r(share),
                          "min_group_size": min_size},
                location=Location(artifact=self._uri("train"), column=attr)))
        return out

    def _shift_tests(self, attr: str, split: str, train: dict[str, int], other: dict[str, int],
                     z: float) -> list[dict[str, Any]]:
        n1, n2 = sum(train.values()), sum(other.values())
        out = []
        for g in sorted(set(train) | set(other)):
            k1, k2 = train.get(g, 0), other.get(g, 0)
            p, test = proportion_test(k2, n2, k1, n1)
            diff = k2 / n2 - k1 / n1
            lo, hi = newcombe(k2, n2, k1, n1, z)
            ratio = (k2 / n2) / (k1 / n1) if k1 else math.inf
            big = abs(diff) >= SHARE_SHIFT["medium"] or (k1 == 0 and k2 > 0) or (
                (ratio >= 2 or ratio <= 0.5) and max(k1 / n1, k2 / n2) >= TINY_SHARE)
            sev = Severity.MEDIUM if big else Severity.LOW if abs(diff) >= SHARE_SHIFT["low"] else None
            out.append({"kind": "shift", "attribute": attr, "group": g, "split": split,
                        "train_share": _r(k1 / n1), "share": _r(k2 / n2), "difference": _r(diff),
                        "difference_ci": [_r(lo), _r(hi)], "train_rows": k1, "rows": k2,
                        "p_value": p, "test": test, "severity": sev})
        return out

    def _missing_tests(self, nulls: dict[tuple[str, str], int], split: str, attr: str,
                       counts: dict[str, int], min_size: int) -> list[dict[str, Any]]:
        big = [g for g, n in counts.items() if n >= min_size]
        if len(big) < 2:
            return []
        out = []
        for col in sorted({c for (_g, c) in nulls}):
            k = np.array([nulls.get((g, col), 0) for g in big])
            n = np.array([counts[g] for g in big])
            rates = k / n
            if k.sum() == 0 or k.sum() == n.sum():
                continue
            spread = float(rates.max() - rates.min())
            table = np.stack([k, n - k])
            p = float(_scipy_stats().chi2_contingency(table)[1])
            sev = (Severity.MEDIUM if spread >= MISSINGNESS["medium"]
                   else Severity.LOW if spread >= MISSINGNESS["low"] else None)
            out.append({"kind": "missing", "attribute": attr, "split": split, "column": col,
                        "null_rate": {g: _r(r) for g, r in zip(big, rates)}, "nulls": dict(zip(big, k.tolist())),
                        "spread": _r(spread), "p_value": p, "test": "chi-square", "severity": sev})
        return out

    def _shift_finding(self, t: dict[str, Any], sev: Severity) -> Any:
        a, g, s = t["attribute"], t["group"], t["split"]
        return self.finding(
            key=("share-shift", s, a, g), severity=sev,
            title=f"{a}={g} is {t['share']:.1%} of {s} but {t['train_share']:.1%} of train",
            description=(f"The share of {a}={g} moved by {t['difference']:+.1%} (CI {t['difference_ci'][0]:+.1%} to "
                         f"{t['difference_ci'][1]:+.1%}) between train and {s}: the model was fitted, and judged, "
                         "on a different population than the one it faces."),
            remediation=f"Re-sample or reweigh train (and test) to match {s}'s population, or collect data for the "
                        "groups that grew; re-run the fairness checks on data like production.",
            evidence={k: v for k, v in t.items() if k != "kind"},
            location=Location(artifact=self._uri(s), column=a))

    def _missing_finding(self, t: dict[str, Any], sev: Severity) -> Any:
        a, s, col = t["attribute"], t["split"], t["column"]
        rates = t["null_rate"]
        hi, lo = max(rates, key=lambda g: rates[g]), min(rates, key=lambda g: rates[g])
        return self.finding(
            key=("missingness", s, a, col), severity=sev,
            title=f"{col} is missing for {rates[hi]:.1%} of {a}={hi} but {rates[lo]:.1%} of {a}={lo} ({s})",
            description=(f"The null rate of {col} in data.{s} differs across {a} groups by {t['spread']:.1%} "
                         f"(chi-square, BH q = {t['q_value']:.2g}). Imputation fills those gaps with other "
                         "groups' patterns, and dropping incomplete rows drops one group more than the others."),
            remediation=f"Find out why {col} is missing more for some groups and fix collection; add a "
                        "missingness indicator, and check the model's errors per group on incomplete rows.",
            evidence={k: v for k, v in t.items() if k != "kind"},
            location=Location(artifact=self._uri(s), column=col))

    def _uri(self, split: str) -> str | None:
        ds = self.sources.datasets.get(split)
        return self.spec.display(ds.uri) if ds else None
