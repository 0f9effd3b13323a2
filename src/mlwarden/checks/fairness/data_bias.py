"""fairness.representation and fairness.base_rates — bias that sits in the data itself.

Both are folds of counts per (split, attribute, group): row counts, null counts per
column, labelled and favorable rows. Proportions get Wilson score intervals (they stay
inside [0, 1] and keep their coverage for small groups and rates near 0 or 1, where the
Wald interval fails); differences of proportions get Newcombe's hybrid score interval
built from the two Wilson intervals; ratios get the Katz log interval. Comparisons are
tested with :func:`mlwarden.fairness.stats.proportion_test` and corrected together with
Benjamini–Hochberg. Both checks look at data, before any model: stage ``data``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from ...fairness.groups import MISSING, group_codes
from ...fairness.predict import Predictor
from ...fairness.stats import benjamini_hochberg, proportion_test
from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch

SHARE_SHIFT = {"medium": 0.10, "low": 0.03}
"""Absolute change of a group's share between train and another split."""
MISSINGNESS = {"medium": 0.10, "low": 0.05}
"""Spread (max − min across groups) of a column's null rate."""
TINY_SHARE = 0.02
FOUR_FIFTHS = 0.8


def z_of(confidence: float) -> float:
    return float(stats.norm.ppf(1 - (1 - confidence) / 2))


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 − p2."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, z), wilson(k2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def katz(k1: int, n1: int, k2: int, n2: int, z: float) -> tuple[float, float, float]:
    """(p1/p2, low, high): the Katz log interval, with 0.5 added to empty cells."""
    if k1 == 0 or k2 == 0:
        k1, k2, n1, n2 = k1 + 0.5, k2 + 0.5, n1 + 0.5, n2 + 0.5  # type: ignore[assignment]
    r = (k1 / n1) / (k2 / n2)
    se = math.sqrt(max(0.0, 1 / k1 - 1 / n1 + 1 / k2 - 1 / n2))
    return r, r * math.exp(-z * se), r * math.exp(z * se)


def null_mask(col: pa.Array) -> np.ndarray:
    """Null, NaN and blank text all count as missing (CSV readers turn blanks into nulls)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    mask = pc.is_null(col, nan_is_null=True)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        mask = pc.or_(mask, pc.equal(pc.utf8_trim_whitespace(col), "").fill_null(False))
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _r(x: float, d: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), d)


def _sig(x: float) -> float | None:
    """p- and q-values to three significant digits (rounding would turn 1e-12 into 0)."""
    return None if x is None or not math.isfinite(x) else float(f"{x:.3g}")


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
        shifts, missing = [], []
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
            p = float(stats.chi2_contingency(table)[1])
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


@register
class BaseRates(FoldCheck):
    """Measures the favorable-label rate of every group in the training data, with intervals.

    **What it finds.** For every sensitive attribute, the share of each group's labelled
    training rows that carry the favorable label (``fairness.favorable``), with a Wilson
    interval; the difference to the reference group (``fairness.reference``, else the
    largest group) with Newcombe's interval; the ratio (disparate impact) with the Katz
    interval; a two-proportion z-test (Fisher's exact test for small counts) with
    Benjamini–Hochberg across groups and attributes. Test-split rates are reported too.

    **Severity.** Only groups of at least ``fairness.min_group_size`` rows whose
    difference is significant after correction: high when the whole interval of the
    rate ratio lies below 0.8 (the four-fifths rule), medium when the ratio is below 0.8
    or the rates differ by 10 points or more, low from 2 points.

    **Why it matters.** A model fitted to labels that favor one group reproduces the gap:
    historical decisions (who was approved, hired, flagged) become the target. Knowing the
    gap in the data tells apart bias the model learned from bias it added.

    **How to fix.** Audit how the labels were produced; reweigh training rows so the label
    is independent of the group (Kamiran & Calders reweighing); compare the model's
    decision rates per group against these base rates (``fairness.model_disparity``); set
    group-aware decision thresholds only with legal advice.
    """

    id = "fairness.base_rates"
    title = "Favorable labels are not concentrated in some groups"
    needs = ("train", "label", "sensitive")
    stage = "data"
    references = ("NIST-MAP", "NIST-MEASURE")
    splits = ("train", "test")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.attrs = list(spec.data.sensitive)
        self.predictor = Predictor(spec)

    def columns(self, split: str) -> list[str]:
        have = set(self.sources.columns(split))
        return [c for c in [self.spec.data.label, *self.attrs] if c in have]

    def init(self) -> dict[tuple[str, str], dict[str, list[int]]]:
        return {}

    def update(self, state: dict, batch: Batch) -> dict:
        rb = batch.data
        label = self.spec.data.label
        if label not in rb.schema.names:
            return state
        col = rb.column(label)
        labelled = ~null_mask(col)
        fav = self.predictor.favorable(col.to_numpy(zero_copy_only=False)) & labelled
        for attr in self.attrs:
            if attr not in rb.schema.names:
                continue
            codes, labels = group_codes(rb, attr)
            rows = np.bincount(codes, minlength=len(labels))
            lab = np.bincount(codes, weights=labelled, minlength=len(labels))
            good = np.bincount(codes, weights=fav, minlength=len(labels))
            cell = state.setdefault((batch.split, attr), {})
            for i, g in enumerate(labels):
                if rows[i]:
                    c = cell.setdefault(g, [0, 0, 0])
                    c[0] += int(rows[i])
                    c[1] += int(lab[i])
                    c[2] += int(good[i])
        return state

    def merge(self, a: dict, b: dict) -> dict:
        for key, cells in b.items():
            mine = a.setdefault(key, {})
            for g, c in cells.items():
                m = mine.setdefault(g, [0, 0, 0])
                for i in range(3):
                    m[i] += c[i]
        return a

    def finalize(self, state: dict, ctx: AuditContext) -> Outcome:
        fair = self.spec.fairness
        z, alpha = z_of(fair.confidence), 1 - fair.confidence
        train_fav = sum(c[2] for (s, _a), cells in state.items() if s == "train" for c in cells.values())
        train_lab = sum(c[1] for (s, _a), cells in state.items() if s == "train" for c in cells.values())
        if not train_lab:
            raise Skip("no training row has a label")
        if train_fav in (0, train_lab):
            raise Skip(f"{'no' if not train_fav else 'every'} labelled training row equals fairness.favorable "
                       f"({fair.favorable!r}); set fairness.favorable to the label value of the good outcome")
        metrics: dict[str, Any] = {"favorable": fair.favorable, "confidence": fair.confidence,
                                   "interval": "Wilson (rates), Newcombe (differences), Katz (ratios)"}
        findings, charts = [], []
        for split in ("train", "test"):
            rows = []
            for attr in self.attrs:
                cells = state.get((split, attr))
                if cells:
                    rows += self._compare(split, attr, dict(sorted(cells.items())), z, fair)
            q = benjamini_hochberg(np.array([r.get("p_value", math.nan) for r in rows])) if rows else []
            for r, qv in zip(rows, q):
                if "p_value" in r:
                    r["q_value"], r["p_value"] = _sig(qv), _sig(r["p_value"])
            metrics[split] = self._nest(rows)
            if split == "train":
                for r in rows:
                    sev = self._severity(r, alpha)
                    if sev:
                        findings.append(self._finding(r, sev, state.get(("test", r["attribute"]), {})))
                for attr in self.attrs:
                    ours = [r for r in rows if r["attribute"] == attr and r["rate"] is not None]
                    if ours:
                        charts.append(Chart(title=f"{attr}: favorable-label rate in train (%)",
                                            labels=tuple(r["group"] for r in ours),
                                            values=tuple(100 * r["rate"] for r in ours), unit="%"))
        return Outcome(findings=findings, metrics=metrics, charts=charts)

    def _compare(self, split: str, attr: str, cells: dict[str, list[int]], z: float, fair: Any) -> list[dict]:
        ref = self._reference(attr, cells)
        _, n0, k0 = cells[ref] if ref else (0, 0, 0)
        out = []
        for g, (rows, n, k) in cells.items():
            r: dict[str, Any] = {"attribute": attr, "group": g, "reference": ref, "rows": rows, "labelled": n,
                                 "favorable": k, "rate": _r(k / n) if n else None,
                                 "rate_ci": [_r(x) for x in wilson(k, n, z)] if n else None,
                                 "too_small": n < fair.min_group_size}
            if ref and g != ref and n and n0:
                lo, hi = newcombe(k, n, k0, n0, z)
                ratio, rlo, rhi = katz(k, n, k0, n0, z)
                p, test = proportion_test(k, n, k0, n0)
                r.update({"reference_rate": _r(k0 / n0), "reference_rate_ci": [_r(x) for x in wilson(k0, n0, z)],
                          "difference": _r(k / n - k0 / n0), "difference_ci": [_r(lo), _r(hi)],
                          "ratio": _r(ratio), "ratio_ci": [_r(rlo), _r(rhi)], "p_value": p, "test": test})
            out.append(r)
        return out

    def _reference(self, attr: str, cells: dict[str, list[int]]) -> str | None:
        want = self.spec.fairness.reference.get(attr)
        if want is not None and str(want) in cells:
            return str(want)
        real = {g: c for g, c in cells.items() if g != MISSING and c[1]}
        return max(real, key=lambda g: (real[g][1], g)) if real else None

    @staticmethod
    def _nest(rows: list[dict]) -> dict[str, dict[str, dict]]:
        out: dict[str, dict[str, dict]] = {}
        for r in rows:
            out.setdefault(r["attribute"], {})[r["group"]] = {k: v for k, v in r.items()
                                                             if k not in ("attribute", "group")}
        return out

    @staticmethod
    def _severity(r: dict, alpha: float) -> Severity | None:
        q = r.get("q_value")
        if r["too_small"] or q is None or q >= alpha:
            return None
        ratio, (rlo, rhi) = r["ratio"], r["ratio_ci"]
        # the impact ratio is the disadvantaged group's rate over the other's, whichever that is
        impact, upper = (ratio, rhi) if ratio <= 1 else (1 / ratio, 1 / rlo if rlo else math.inf)
        if upper < FOUR_FIFTHS:
            return Severity.HIGH
        if impact < FOUR_FIFTHS or abs(r["difference"]) >= 0.10:
            return Severity.MEDIUM
        return Severity.LOW if abs(r["difference"]) >= 0.02 else None

    def _finding(self, r: dict, sev: Severity, test_cells: dict[str, list[int]]) -> Any:
        a, g, ref = r["attribute"], r["group"], r["reference"]
        low, high = (g, ref) if r["difference"] < 0 else (ref, g)
        ev = {k: v for k, v in r.items() if k != "too_small"}
        if g in test_cells and ref in test_cells and test_cells[g][1] and test_cells[ref][1]:
            ev["test_rate"] = _r(test_cells[g][2] / test_cells[g][1])
            ev["test_reference_rate"] = _r(test_cells[ref][2] / test_cells[ref][1])
        ci, dci, rci = r["rate_ci"], r["difference_ci"], r["ratio_ci"]
        return self.finding(
            key=("base-rate", a, g), severity=sev,
            title=(f"{a}={g}: {r['rate']:.1%} favorable labels in train vs {r['reference_rate']:.1%} for {a}={ref} "
                   f"(ratio {r['ratio']:.2f})"),
            description=(f"{r['favorable']} of {r['labelled']} labelled training rows of {a}={g} carry the favorable "
                         f"label ({r['rate']:.1%}, {self.spec.fairness.confidence:.0%} CI {ci[0]:.1%}–{ci[1]:.1%}), "
                         f"against {r['reference_rate']:.1%} for the reference group {a}={ref}: a difference of "
                         f"{r['difference']:+.1%} (CI {dci[0]:+.1%} to {dci[1]:+.1%}) and a ratio of "
                         f"{r['ratio']:.2f} (CI {rci[0]:.2f}–{rci[1]:.2f}; the four-fifths rule asks for 0.8 or "
                         f"more); {r['test']} test, BH q = {r['q_value']:.2g}. A model fitted to these labels "
                         f"learns to favor {a}={high} over {a}={low}."),
            remediation=(f"Check how the labels were produced for {a}={low}; reweigh training rows so the label is "
                         "independent of the group (Kamiran & Calders), and compare the model's decision rates "
                         "per group with these base rates (fairness.model_disparity)."),
            evidence=ev, location=Location(artifact=self.spec.display(self.sources.datasets["train"].uri), column=a))
