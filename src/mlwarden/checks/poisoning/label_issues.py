"""data.poisoning.label_issues — training rows whose label a cross-validated model doubts.

Confident learning (Northcutt et al., 2021) through cleanlab's ``find_label_issues`` on
out-of-fold predicted probabilities of a seeded 5-fold HistGradientBoosting model.

Fitting needs rows, so this check is not a pure fold: it gathers a bounded, deterministic
sample — the ``SAMPLE_ROWS`` rows with the smallest priority hash (a hash of the row's
values and its ordinal). Bottom-k is mergeable and identical whatever the partitioning;
state is at most ~2k rows of the used columns. The report says when a sample was used.
"""

from __future__ import annotations

import os
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
from .conflicts import feature_columns, py, show

SAMPLE_ROWS = 200_000
FOLDS = 5
SEED = 0
SAMPLE_IDS = 20
MAX_CATEGORIES = 255  # HistGradientBoosting's limit; more distinct strings = free text or identifiers
MAX_CLASSES = 50
_ORD = "__mlwarden_ordinal"
_PRIO = "__mlwarden_priority"
_SCALE = [(0.05, Severity.HIGH), (0.01, Severity.MEDIUM), (0.0, Severity.LOW)]


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


def _bottom_k(parts: list[pa.Table], k: int) -> pa.Table:
    t = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    t = t.sort_by(_PRIO)
    return t.slice(0, k)


@register
class LabelIssues(FoldCheck):
    """Finds training rows whose label is probably wrong, by cross-validated confident learning.

    **What it finds.** Rows whose given label a model trained on the *other* rows finds
    implausible, by confident learning (cleanlab's ``find_label_issues``) over
    out-of-fold probabilities of a seeded 5-fold HistGradientBoosting classifier.
    Numeric columns are used as they are, string columns with at most 255 values as
    categories; the id, time and high-cardinality text columns are left out. Reports
    the count and share of suspected label issues, sample ids with their given label,
    the suggested label and the model's confidence in the given one, and which label
    flips into which. Above 200,000 rows it uses a deterministic sample (the rows with
    the smallest row hash) and says so.

    **Severity.** By the share of suspected issues: low below 1 %, medium below 5 %,
    high from 5 %.

    **Why it matters.** Flipped labels are the classic poisoning attack (OWASP ML02,
    ATLAS AML.T0020) and the commonest data-quality defect; clusters of flips in one
    class pair or one region bend the decision boundary exactly there.

    **How to fix.** Have the flagged rows relabelled by a reviewer (start with the lowest
    confidence); if flips cluster in one class pair or one data source, trace that
    source; retrain without the confirmed bad labels.
    """

    id = "data.poisoning.label_issues"
    title = "Training labels agree with what the data predicts"
    needs = ("train", "label")
    stage = "data"
    references = ("OWASP-ML02", "AML.T0020", "AML.M0007", "NIST-MEASURE")
    splits = ("train",)
    sample_rows: int = SAMPLE_ROWS

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        schema = sources.datasets["train"].schema if "train" in sources.datasets else pa.schema([])
        self.features = [c for c in feature_columns(spec, sources, ("train",)) if _usable(schema.field(c).type)]
        self.ignored = sorted(set(feature_columns(spec, sources, ("train",))) - set(self.features))

    def columns(self, split: str) -> list[str]:
        idcol, label = self.spec.data.id, self.spec.data.label
        assert label is not None  # needs "label"
        return sorted(set(self.features) | {label} | ({idcol} if idcol is not None else set()))

    def init(self) -> SampleState:
        return SampleState()

    def update(self, state: SampleState, batch: Batch) -> SampleState:
        rb = batch.data
        label = self.spec.data.label
        assert label is not None  # needs "label"
        state.rows += rb.num_rows
        ords = np.arange(batch.offset, batch.offset + rb.num_rows, dtype=np.int64)
        with np.errstate(over="ignore"):
            prio = _mix(row_hashes(rb, self.features + [label])
                        ^ (ords.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
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

    def finalize(self, state: SampleState, ctx: AuditContext) -> Outcome:
        if not state.parts:
            raise Skip("the training data is empty")
        table = _bottom_k(state.parts, self.sample_rows).sort_by(_ORD)
        label = self.spec.data.label
        table = table.filter(pc.is_valid(table.column(label)))
        x, used, dropped = _design(table, self.features)
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
        x = x[mask]
        ids = _ids(table, self.spec.data.id)[mask]
        pred = _oof_probabilities(x, y, used)
        try:
            from cleanlab.filter import find_label_issues  # heavy: load only when the check runs
        except ImportError:
            raise Skip("needs the cleanlab package: pip install cleanlab") from None

        found = find_label_issues(labels=y, pred_probs=pred, return_indices_ranked_by="self_confidence")
        suggested = pred.argmax(axis=1)
        conf = pred[np.arange(y.size), y]
        # least confident first; ties (and float noise below 1e-6) broken by row order
        ranked = found[np.lexsort((found, np.round(conf[found], 6)))]
        n, issues = int(y.size), int(ranked.size)
        share = issues / n if n else 0.0
        pairs = Counter(f"{kept[y[i]]} → {kept[suggested[i]]}" for i in ranked.tolist())
        sampled = state.rows > self.sample_rows
        sample = [{"id": py(ids[i]), "given": kept[y[i]], "suggested": kept[suggested[i]],
                   "self_confidence": round(float(conf[i]), 4)} for i in ranked[:SAMPLE_IDS].tolist()]
        metrics: dict[str, Any] = {
            "rows_total": state.rows, "rows_used": n, "sampled": bool(sampled),
            "sample_method": f"bottom-{self.sample_rows} rows by row hash" if sampled else "all rows",
            "features": used, "dropped_columns": sorted(dropped + self.ignored),
            "excluded_classes": [c for c in classes if c not in code],
            "model": f"HistGradientBoostingClassifier, {FOLDS}-fold out-of-fold, seed {SEED}",
            "cv_accuracy": round(float((suggested == y).mean()), 4),
            "issues": issues, "share": round(share, 6),
            "class_pairs": dict(sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))),
            "sample": sample,
        }
        findings = [self._finding(metrics, sample)] if issues else []
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Suspected label issues by class pair", labels=tuple(pairs),
                                     values=tuple(float(v) for v in pairs.values()))] if pairs else [])

    def _finding(self, m: dict[str, Any], sample: list[dict[str, Any]]) -> Any:
        severity = next(sev for bound, sev in _SCALE if m["share"] >= bound)
        of = (f" (on a deterministic sample of {m['rows_used']} of {m['rows_total']} rows)"
              if m["sampled"] else "")
        top = ", ".join(f"{k}: {v}" for k, v in list(m["class_pairs"].items())[:3])
        rows = tuple(s["id"] for s in sample)
        return self.finding(
            key=("train",), severity=severity,
            title=f"{m['issues']} training rows ({m['share']:.2%}) look mislabelled{of}",
            description=("Confident learning over out-of-fold probabilities of a cross-validated model "
                         f"flags these labels as unlikely given the features (model accuracy out of fold "
                         f"{m['cv_accuracy']:.1%}). Most frequent flips: {top}."),
            remediation=("Have the flagged rows relabelled, lowest self-confidence first; if the flips cluster "
                         "in one class pair or source, trace that source; retrain without confirmed bad labels."),
            evidence={"issues": m["issues"], "rows_used": m["rows_used"], "rows_total": m["rows_total"],
                      "sampled": m["sampled"], "share": m["share"], "class_pairs": m["class_pairs"],
                      "sample": sample, "id_column": self.spec.data.id or "(row number)"},
            location=Location(artifact=self.spec.display(self.sources.datasets["train"].uri), rows=rows),
        )


def _usable(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_string(t) or pa.types.is_large_string(t))


def _design(table: pa.Table, features: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Feature matrix: numbers as float, text columns with ≤ 255 values as sorted category codes."""
    cols, used, dropped = [], [], []
    limit = max(20, min(MAX_CATEGORIES, table.num_rows // 20))
    for name in features:
        arr = table.column(name).combine_chunks()
        t = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            values = np.asarray(arr.cast(pa.large_string()).to_pylist(), dtype=object)
            present = sorted({v for v in values if v is not None})
            if len(present) > limit:
                dropped.append(name)
                continue
            index = {v: float(i) for i, v in enumerate(present)}
            cols.append(np.array([np.nan if v is None else index[v] for v in values], dtype=np.float64))
            used.append(f"{name} (category)")
        else:
            cols.append(np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64))
            used.append(name)
    x = np.column_stack(cols) if cols else np.empty((table.num_rows, 0))
    return x, used, dropped


def _ids(table: pa.Table, idcol: str | None) -> np.ndarray:
    col = idcol if idcol and idcol in table.column_names else _ORD
    return table.column(col).to_numpy(zero_copy_only=False)


def _oof_probabilities(x: np.ndarray, y: np.ndarray, used: list[str]) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    categorical = np.array([u.endswith("(category)") for u in used])
    model = HistGradientBoostingClassifier(categorical_features=categorical if categorical.any() else None,
                                           random_state=SEED)
    cv = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    # OpenMP threads that spin-wait on a busy machine made one fit 30x slower than a single
    # thread: large data runs the folds in parallel processes; small data stays in this
    # process on one thread, where starting workers would cost more than the fits
    if len(y) >= 20_000:
        jobs = min(FOLDS, os.cpu_count() or 1)
        return cross_val_predict(model, x, y, cv=cv, method="predict_proba", n_jobs=jobs)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return cross_val_predict(model, x, y, cv=cv, method="predict_proba")
