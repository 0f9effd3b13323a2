"""data.poisoning.label_issues — training rows whose label a cross-validated model doubts.

Confident learning (Northcutt et al., 2021) on out-of-fold predicted probabilities of a
seeded 5-fold (3-fold past 50,000 rows) HistGradientBoosting model, judged against a noise null: the issues honest
labels drawn from the model's calibrated probabilities give (:mod:`.label_noise`), overall
and slice by slice (:mod:`.label_scan`). Severity follows the excess, not the raw count.

Fitting needs rows, so this check is not a pure fold: it gathers a bounded, deterministic
sample — the ``SAMPLE_ROWS`` rows with the smallest priority hash (a hash of the row's
values and its ordinal). Bottom-k is mergeable and identical whatever the partitioning;
state is at most ~2k rows of the used columns. The report says when a sample was used.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..data.rowhash import row_hashes
from . import label_scan
from .conflicts import feature_columns, py, show
from .label_model import CATEGORY, FOLDS, SEED, design, folds, n_folds, usable
from .label_model import oof_probabilities as _oof_probabilities
from .label_noise import calibrate, confident_issues, simulate

SAMPLE_ROWS = 100_000  # 5 boosted fits on 80k rows: ~6 CPU-s; the report states the sample
SAMPLE_IDS = 20
MAX_CLASSES = 50
_ORD = "__mlwarden_ordinal"
_PRIO = "__mlwarden_priority"
EXCESS_HIGH = 0.05  # share of rows above the noise null, overall, that is high on its own
EXCESS_MEDIUM = 0.01
P_EXCESS = 0.01


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclass
class SampleState:
    """Bottom-k rows by priority; ``rows`` counts every row seen."""

    parts: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    pending: int = 0
    cutoff: np.uint64 | None = None  # largest priority in a full bottom-k: what an update may add
    k: int = 0

    def __getstate__(self) -> dict[str, Any]:
        # A worker's state goes to the main process as a pickle: up to 2k rows are pending
        # between compactions, and only the bottom k can ever be in the sample.
        if self.k and self.pending > self.k:
            self.parts = [_bottom_k(self.parts, self.k)]
            self.pending = self.parts[0].num_rows
        return self.__dict__


def _bottom_k(parts: list[pa.Table], k: int) -> pa.Table:
    t = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    # take, not sort and slice: a slice pickles with its whole buffers (2k rows sent for k)
    return t.take(pc.sort_indices(t, sort_keys=[(_PRIO, "ascending")])[:k])


@register
class LabelIssues(FoldCheck):
    """Finds training rows whose label is probably wrong, by cross-validated confident learning.

    **What it finds.** Rows whose given label a model trained on the *other* rows finds
    implausible, by confident learning (the rule of cleanlab's ``confident_learning``
    filter) over out-of-fold probabilities of a seeded 5-fold (3-fold past 50,000 rows) HistGradientBoosting
    classifier. Numeric columns are used as they are, string columns with at most 255
    values as categories; the id, time and high-cardinality text columns are left out.
    Above 100,000 rows it uses a deterministic sample (the rows with the smallest row hash)
    and says so.

    **Noise is not mislabelling.** Where the features don't decide the label, honest labels
    disagree with the likeliest class too. So the check recalibrates the out-of-fold
    probabilities (cross-fitted matrix scaling), draws labels from them 200 times (seeded) and
    counts issues the same way: the expected count with its 95 % interval is what the task's
    own noise explains. It then tests every slice — each value of a categorical feature, each
    decile of a numeric feature, of the time column and of the row order (delivery batches) —
    for more issues than the null predicts there (overdispersion-corrected, Benjamini–Hochberg).

    **Severity.** High when issues concentrate in a slice (q < 0.001, at least 25 % above the
    null there and an excess of at least 0.5 % of all rows), or when the overall excess over
    the null is significant and at least 5 % of rows; medium for a significant overall excess
    of at least 1 % of rows, or a concentration of that size at q < 0.01; low when the issues are within
    what label noise explains (the finding says how many are expected).

    **Why it matters.** Flipped labels are the classic poisoning attack (OWASP ML02,
    ATLAS AML.T0020) and the commonest data-quality defect; clusters of flips in one
    class pair or one region bend the decision boundary exactly there.

    **How to fix.** Have the flagged rows relabelled by a reviewer (start with the lowest
    confidence, and with the slice the check names); if flips cluster in one region, time
    window or batch, trace that source; retrain without the confirmed bad labels.
    """

    id = "data.poisoning.label_issues"
    title = "Training labels agree with what the data predicts"
    needs = ("train", "label")
    stage = "data"
    references = ("OWASP-ML02", "AML.T0020", "AML.M0007", "NIST-MEASURE")
    splits = ("train",)
    long_finalize = True  # five boosted fits
    sample_rows: int = SAMPLE_ROWS

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        schema = sources.datasets["train"].schema if "train" in sources.datasets else pa.schema([])
        self.features = [c for c in feature_columns(spec, sources, ("train",)) if usable(schema.field(c).type)]
        self.ignored = sorted(set(feature_columns(spec, sources, ("train",))) - set(self.features))

    def columns(self, split: str) -> list[str]:
        idcol, label, time = self.spec.data.id, self.spec.data.label, self.spec.data.time
        assert label is not None  # needs "label"
        extra = {c for c in (idcol, time) if c is not None and c in self.sources.columns(split)}
        return sorted(set(self.features) | {label} | extra)

    def init(self) -> SampleState:
        return SampleState(k=self.sample_rows)

    def update(self, state: SampleState, batch: Batch) -> SampleState:
        rb = batch.data
        label = self.spec.data.label
        assert label is not None  # needs "label"
        state.rows += rb.num_rows
        ords = np.arange(batch.offset, batch.offset + rb.num_rows, dtype=np.int64)
        with np.errstate(over="ignore"):
            prio = _mix(row_hashes(rb, self.features + [label])
                        ^ (ords.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
        if state.cutoff is not None:  # rows above the current bottom-k's largest priority can't enter it
            keep = prio <= state.cutoff
            rb, ords, prio = rb.filter(pa.array(keep)), ords[keep], prio[keep]
        t = pa.Table.from_batches([rb]).append_column(_ORD, pa.array(ords)).append_column(_PRIO, pa.array(prio))
        self._add(state, [t])
        return state

    def merge(self, a: SampleState, b: SampleState) -> SampleState:
        a.rows += b.rows
        self._add(a, b.parts)
        return a

    def _add(self, state: SampleState, parts: list[pa.Table]) -> None:
        state.parts.extend(p for p in parts if p.num_rows)
        state.pending += sum(p.num_rows for p in parts)
        if state.pending > 2 * self.sample_rows:
            state.parts = [_bottom_k(state.parts, self.sample_rows)]
            state.pending = state.parts[0].num_rows
            if state.pending >= self.sample_rows:
                state.cutoff = np.uint64(state.parts[0].column(_PRIO)[-1].as_py())

    def finalize(self, state: SampleState, ctx: AuditContext) -> Outcome:
        if not state.parts:
            raise Skip("the training data is empty")
        table = _bottom_k(state.parts, self.sample_rows).sort_by(_ORD)
        label = self.spec.data.label
        table = table.filter(pc.is_valid(table.column(label)))
        x, used, dropped, categories = design(table, self.features)
        if not used:
            raise Skip("no usable feature columns (numeric, or text with at most 255 values)")
        labels = [show(v) for v in table.column(label).to_pylist()]
        classes = sorted(set(labels), key=lambda v: (type(v).__name__, v))
        if len(classes) > MAX_CLASSES:
            raise Skip(f"the label has {len(classes)} distinct values: label issues applies to classification")
        counts = Counter(labels)
        kept = [c for c in classes if counts[c] >= FOLDS]
        if len(kept) < 2:
            raise Skip(f"fewer than two classes with at least {FOLDS} rows")
        code = {c: i for i, c in enumerate(kept)}
        mask = np.array([v in code for v in labels])
        y = np.array([code[v] for v in labels if v in code], dtype=np.int64)
        x, table = x[mask], table.filter(pa.array(mask))
        ids = _ids(table, self.spec.data.id)
        pred = _oof_probabilities(x, y, used)
        issue = confident_issues(y, pred)
        calibrated = calibrate(pred, y, folds(y))
        null = simulate(int(issue.sum()), pred, calibrated, seed=SEED)
        dims = _dimensions(table, x, used, categories, self.spec.data.time)
        slices = label_scan.scan(issue, null.row_rate, dims)
        slices["noisy"] = label_scan.noise_concentration(1.0 - calibrated.max(axis=1), dims)

        found = np.flatnonzero(issue)
        suggested = pred.argmax(axis=1)
        conf = pred[np.arange(y.size), y]
        # least confident first; ties (and float noise below 1e-6) broken by row order
        ranked = found[np.lexsort((found, np.round(conf[found], 6)))]
        n, issues = int(y.size), int(ranked.size)
        pairs = Counter(f"{kept[y[i]]} → {kept[suggested[i]]}" for i in ranked.tolist())
        sampled = state.rows > self.sample_rows

        def rows_of(picked: np.ndarray) -> list[dict[str, Any]]:
            return [{"id": py(ids[i]), "given": kept[y[i]], "suggested": kept[suggested[i]],
                     "self_confidence": round(float(conf[i]), 4)} for i in picked[:SAMPLE_IDS].tolist()]

        for s in slices["concentrated"]:
            d = next(d for d in dims if d.name == s["dimension"])
            s["sample"] = rows_of(ranked[d.codes[ranked] == d.labels.index(s["slice"])])
        for s in slices["noisy"]:  # the group's rows least sure of their own label: the flips, if any
            d = next(d for d in dims if d.name == s["dimension"])
            inside = np.flatnonzero(d.codes == d.labels.index(s["slice"]))
            s["sample"] = rows_of(inside[np.lexsort((inside, np.round(conf[inside], 6)))])
        excess = issues - null.expected
        metrics: dict[str, Any] = {
            "rows_total": state.rows, "rows_used": n, "sampled": bool(sampled),
            "sample_method": f"bottom-{self.sample_rows} rows by row hash" if sampled else "all rows",
            "features": used, "dropped_columns": sorted(dropped + self.ignored),
            "excluded_classes": [c for c in classes if c not in code],
            "model": f"HistGradientBoostingClassifier, {n_folds(n)}-fold out-of-fold, seed {SEED}",
            "rule": "confident learning (off-diagonal of the confident joint)",
            "cv_accuracy": round(float((suggested == y).mean()), 4),
            "issues": issues, "share": round(issues / n, 6),
            "noise_null": {"calibration": f"matrix scaling, cross-fitted on the {n_folds(n)} folds",
                           "simulations": null.simulations, "seed": null.seed,
                           "expected": round(null.expected, 2), "interval_95": [null.low, null.high],
                           "excess": round(excess, 2), "excess_share": round(excess / n, 6),
                           "excess_interval_95": [round(issues - null.high, 2), round(issues - null.low, 2)],
                           "p_value": round(null.p_value, 6)},
            "slices": slices,
            "class_pairs": dict(sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))),
            "sample": rows_of(ranked),
        }
        findings = [self._finding(metrics)] if issues or slices["noisy"] else []
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Suspected label issues by class pair", labels=tuple(pairs),
                                     values=tuple(float(v) for v in pairs.values()))] if pairs else [])

    def _finding(self, m: dict[str, Any]) -> Any:
        severity, verdict = _judge(m)
        null = m["noise_null"]
        of = (f" (on a deterministic sample of {m['rows_used']} of {m['rows_total']} rows)"
              if m["sampled"] else "")
        top = ", ".join(f"{k}: {v}" for k, v in list(m["class_pairs"].items())[:3])
        expected = (f"{null['expected']:.0f} (95 % {null['interval_95'][0]:.0f}–{null['interval_95'][1]:.0f}) "
                    "expected from label noise")
        hot, noisy = m["slices"]["concentrated"], m["slices"]["noisy"]
        sample = hot[0]["sample"] if hot else noisy[0]["sample"] if noisy and severity is not Severity.LOW \
            else m["sample"]
        return self.finding(
            key=("train",), severity=severity,
            title=f"{m['issues']} training rows ({m['share']:.2%}) look mislabelled{of}; {expected}{verdict}",
            description=("Confident learning over out-of-fold probabilities of a cross-validated model "
                         f"flags these labels as unlikely given the features (model accuracy out of fold "
                         f"{m['cv_accuracy']:.1%}). Labels drawn from the model's calibrated probabilities "
                         f"{null['simulations']} times give {expected.replace(' expected from label noise', '')} "
                         f"issues by the same rule: that much is the task's own noise, not mislabelling. "
                         + _excess_text(null) + " "
                         + _slices_text(m["slices"]) + f" Most frequent flips: {top}."),
            remediation=("Have the flagged rows relabelled, lowest self-confidence first and the named slice "
                         "first; if the flips cluster in one region, time window or batch, trace that source; "
                         "retrain without confirmed bad labels."),
            evidence={"issues": m["issues"], "rows_used": m["rows_used"], "rows_total": m["rows_total"],
                      "sampled": m["sampled"], "share": m["share"], "noise_null": null,
                      "concentrated": hot, "noisy": noisy, "class_pairs": m["class_pairs"],
                      "sample": sample, "id_column": self.spec.data.id or "(row number)"},
            location=Location(artifact=self.spec.display(self.sources.datasets["train"].uri),
                              rows=tuple(s["id"] for s in sample)),
        )


def _judge(m: dict[str, Any]) -> tuple[Severity, str]:
    """Severity from the excess over the noise null and its concentration, never the raw count."""
    null, sl = m["noise_null"], m["slices"]
    overall = null["p_value"] < P_EXCESS and null["excess_interval_95"][0] > 0
    if sl["concentrated"]:
        s = sl["concentrated"][0]
        return Severity.HIGH, (f"; concentrated in {s['slice']} ({s['observed']} vs {s['expected']:.0f} "
                               f"expected, q = {s['q_value']:.2g})")
    if overall and null["excess_share"] >= EXCESS_HIGH:
        return Severity.HIGH, f"; {null['excess']:.0f} more than noise explains"
    if overall and null["excess_share"] >= EXCESS_MEDIUM:
        return Severity.MEDIUM, f"; {null['excess']:.0f} more than noise explains"
    sizable = [s for s in sl["significant"] if s["ratio"] >= label_scan.MIN_RATIO and s["excess"] >= sl["excess_floor"]]
    if sizable:
        s = sizable[0]
        return Severity.MEDIUM, f"; more than expected in {s['slice']} (q = {s['q_value']:.2g})"
    if sl.get("noisy"):
        s = sl["noisy"][0]
        return Severity.MEDIUM, (f"; label noise piles up in {s['slice']} ({s['noise']:.1%} expected disagreement "
                                 f"vs {s['noise_elsewhere']:.1%} elsewhere, {s['ratio']:.1f}×)")
    return Severity.LOW, ""


def _excess_text(null: dict[str, Any]) -> str:
    lo, hi = null["excess_interval_95"]
    if null["excess"] <= 0:
        return f"No excess over it overall (observed minus expected: {null['excess']:.0f}, 95 % {lo:.0f} to {hi:.0f})."
    return f"Excess over it: {null['excess']:.0f} rows (95 % {lo:.0f} to {hi:.0f}, p = {null['p_value']:.3g})."


def _slices_text(sl: dict[str, Any]) -> str:
    if not sl["significant"]:
        text = (f"No slice of the {sl['slices_tested']} tested (feature values and deciles, time and row-order "
                "windows) has more issues than the null predicts.")
    else:
        s = sl["significant"][0]
        text = (f"The slice most above the null is {s['slice']}: {s['observed']} issues where {s['expected']:.0f} "
                f"are expected ({s['ratio']:.2f}×, q = {s['q_value']:.2g}, {sl['slices_tested']} slices tested).")
    for s in sl.get("noisy", [])[:1]:
        text += (f" Label noise piles up in {s['slice']}: its rows disagree with their likeliest class "
                 f"{s['noise']:.1%} of the time against {s['noise_elsewhere']:.1%} elsewhere ({s['ratio']:.1f}×, "
                 f"{s['rows']} rows) — a cell of flipped labels looks like this (the model learns the mix and "
                 "calls the flips noise), as does a group the features do not decide; compare its labels "
                 "with held-out ones.")
    return text


def _dimensions(table: pa.Table, x: np.ndarray, used: list[str], categories: dict[str, list[str]],
                time: str | None) -> list[label_scan.Dimension]:
    """Slices of the rows: each feature's values or deciles, the time column's and the row order's deciles."""
    dims = []
    for j, name in enumerate(used):
        base = name.removesuffix(CATEGORY)
        dims.append(label_scan.categorical(base, x[:, j], categories[base]) if name.endswith(CATEGORY)
                    else label_scan.quantiles(base, x[:, j]))
    if time and time in table.column_names:
        t = _as_seconds(table.column(time))
        if t is not None:
            dims.append(label_scan.quantiles(time, t, show=lambda v: str(np.datetime64(int(v), "s"))))
    order = table.column(_ORD).to_numpy().astype(np.float64)
    dims.append(label_scan.quantiles("row order", order, show=lambda v: f"{int(v)}"))
    return dims


def _as_seconds(col: pa.ChunkedArray) -> np.ndarray | None:
    """Seconds since the epoch of a timestamp or date column (None for other types)."""
    t = col.type
    if pa.types.is_timestamp(t):
        col = col.cast(pa.timestamp("s", tz=t.tz), safe=False)
    elif pa.types.is_date(t):
        col = col.cast(pa.timestamp("s"))
    else:
        return None
    return col.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _ids(table: pa.Table, idcol: str | None) -> np.ndarray:
    col = idcol if idcol and idcol in table.column_names else _ORD
    return table.column(col).to_numpy(zero_copy_only=False)
