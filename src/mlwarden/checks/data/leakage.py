"""data.leakage.exact_duplicates — evaluation rows that also sit in the training data.

Rows of test, production and feedback whose normalized feature values (label and id
excluded, column order irrelevant, ``1`` = ``1.0``) equal a training row. The state is a
uint64 hash per row plus the row ids of the non-training splits: about 8–16 bytes a row,
never the data itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..common import py, shared_columns
from .rowhash import row_hashes

SAMPLE_IDS = 20

# (share threshold, severity), first match wins; per split because a duplicate means
# something different in each.
SHARE_SCALE: dict[str, list[tuple[float, Severity]]] = {
    "test": [(0.10, Severity.CRITICAL), (0.02, Severity.HIGH), (0.005, Severity.MEDIUM), (0.0, Severity.LOW)],
    "feedback": [(0.05, Severity.MEDIUM), (0.0, Severity.LOW)],
    "production": [(0.01, Severity.LOW), (0.0, Severity.INFO)],
}

_WHY = {
    "test": ("The test set no longer measures generalization: the model has seen these rows, so test "
             "metrics are inflated, and every model choice made on them is biased."),
    "feedback": ("Feedback that replays training rows adds no information and, in volume, skews "
                 "retraining toward them; replayed rows with flipped labels are a poisoning pattern."),
    "production": ("Production inputs identical to training rows get memorized answers; in volume they "
                   "can mean training data was collected from, or leaked to, production traffic."),
}

_FIX = {
    "test": ("Split before any resampling or augmentation, deduplicate across splits (group by entity "
             "with a GroupShuffleSplit), and re-evaluate the model on a clean test set."),
    "feedback": "Deduplicate feedback against training data before it enters the retraining set.",
    "production": "Check how training data was collected; no action if repeated inputs are expected.",
}


@dataclass
class DupState:
    hashes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    ids: dict[str, list[np.ndarray]] = field(default_factory=dict)


@register
class ExactDuplicates(FoldCheck):
    """Finds rows of test, production and feedback data that also occur in the training data.

    **What it finds.** Rows whose feature values equal a training row after
    normalization (numbers by value, so ``1`` and ``1.0`` match; NaN and null alike;
    column order irrelevant; the label and the id column excluded). Reports the count,
    the share of the split and sample row ids.

    **Severity.** Test: low below 0.5 %, medium below 2 %, high below 10 %, critical from
    10 %. Feedback: low, medium from 5 %. Production: info, low from 1 %.

    **Why it matters.** Duplicates between train and test inflate every metric and hide
    overfitting — a classic result of oversampling or augmenting *before* splitting.

    **How to fix.** Split first, then resample; deduplicate across splits; split by entity.
    """

    id = "data.leakage.exact_duplicates"
    title = "No evaluation rows duplicated from training data"
    needs = ("train", "eval")
    stage = "splits"
    references = ("OWASP-ML08", "AML.T0059", "NIST-MEASURE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.features = shared_columns(sources, exclude=(spec.data.label, spec.data.id))
        every = set().union(*(ds.columns for ds in sources.datasets.values()))
        self.ignored = sorted(every - set(self.features) - {spec.data.label, spec.data.id})

    def columns(self, split: str) -> list[str]:
        cols = list(self.features)
        if split != "train" and self.spec.data.id and self.spec.data.id in self.sources.columns(split):
            cols.append(self.spec.data.id)
        return cols

    def init(self) -> DupState:
        return DupState()

    def update(self, state: DupState, batch: Batch) -> DupState:
        if not self.features:
            return state
        rb = batch.data
        state.hashes.setdefault(batch.split, []).append(row_hashes(rb, self.features))
        if batch.split != "train":
            idcol = self.spec.data.id
            if idcol and idcol in rb.schema.names:
                ids = rb.column(idcol).to_numpy(zero_copy_only=False)
            else:
                ids = np.arange(batch.offset, batch.offset + rb.num_rows, dtype=np.int64)
            state.ids.setdefault(batch.split, []).append(ids)
        return state

    def merge(self, a: DupState, b: DupState) -> DupState:
        for src, dst in ((b.hashes, a.hashes), (b.ids, a.ids)):
            for split, arrays in src.items():
                dst.setdefault(split, []).extend(arrays)
        return a

    def finalize(self, state: DupState, ctx: AuditContext) -> Outcome:
        if not self.features:
            raise Skip("train and the evaluation splits share no feature columns")
        train = np.unique(np.concatenate(state.hashes.get("train", [np.empty(0, np.uint64)])))
        metrics: dict[str, Any] = {"feature_columns": len(self.features), "ignored_columns": self.ignored,
                                   "train_distinct_rows": int(train.size)}
        findings = []
        labels, shares = [], []
        for split in ("test", "production", "feedback"):
            if split not in ctx.sources.datasets:
                continue
            h = np.concatenate(state.hashes.get(split, [np.empty(0, np.uint64)]))
            ids = np.concatenate(state.ids.get(split, [np.empty(0, np.int64)]))
            hit = _member(h, train)
            count, n = int(hit.sum()), int(h.size)
            share = count / n if n else 0.0
            metrics[split] = {"rows": n, "duplicated_rows": count, "share": round(share, 6),
                              "distinct_duplicated": int(np.unique(h[hit]).size)}
            labels.append(split)
            shares.append(100.0 * share)
            if count:
                sample = [py(v) for v in ids[hit][:SAMPLE_IDS]]
                findings.append(self._finding(split, count, n, share, sample))
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Rows also in train (% of split)", labels=tuple(labels),
                                     values=tuple(shares), unit="%")])

    def _finding(self, split: str, count: int, n: int, share: float, sample: list[Any]) -> Any:
        severity = next(sev for bound, sev in SHARE_SCALE[split] if share >= bound)
        uri = self.spec.display(self.sources.datasets[split].uri)
        return self.finding(
            key=(split,), severity=severity,
            title=f"{count} of {n} {split} rows ({share:.1%}) also occur in the training data",
            description=f"{_WHY[split]} Compared over {len(self.features)} feature columns.",
            remediation=_FIX[split],
            evidence={"split": split, "duplicated_rows": count, "rows": n, "share": round(share, 6),
                      "sample_row_ids": sample, "id_column": self.spec.data.id or "(row number)"},
            location=Location(artifact=uri, rows=tuple(sample)),
        )


def _member(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted, unique haystack, without isin's temporary copies."""
    if not sorted_unique.size:
        return np.zeros(values.size, dtype=bool)
    i = np.searchsorted(sorted_unique, values)
    i[i == sorted_unique.size] = 0
    return sorted_unique[i] == values

