"""fairness.base_rates — is the favorable label concentrated in some groups of the data?

A fold of counts per (split, attribute, group): rows, labelled rows and favorable rows.
Rates get Wilson intervals, differences to the reference group Newcombe's, ratios the
Katz log interval (see :mod:`mlwarden.fairness.stats`); comparisons are tested with
:func:`mlwarden.fairness.stats.proportion_test` and corrected together with
Benjamini–Hochberg. The check looks at data, before any model: stage ``data``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...fairness.groups import MISSING, group_codes
from ...fairness.predict import Predictor
from ...fairness.stats import benjamini_hochberg, katz, newcombe, proportion_test, wilson, z_of
from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from .counts import null_mask
from .counts import rounded as _r
from .counts import significant as _sig

FOUR_FIFTHS = 0.8


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
            q: np.ndarray | list[float] = (benjamini_hochberg(np.array([r.get("p_value", math.nan) for r in rows]))
                                           if rows else [])
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
