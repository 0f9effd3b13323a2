"""data.leakage.exact_duplicates — evaluation rows that also sit in the training data.

Rows of test, production and feedback whose normalized feature values (label and id
excluded, column order irrelevant, ``1`` = ``1.0``) equal a training row. The state is the
distinct training-row hashes (8 bytes a distinct row) and, per evaluation row, its hash, ordinal
and id (24 bytes), never the data itself; each in a :class:`~.keyruns.KeyRuns` that spills
to disk by hash range past its limit (64 MB), so the main process holds that much plus one bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..common import py, shared_columns
from .keyruns import Columns, KeyRuns, spilled
from .rowhash import in_sorted, row_hashes, sorted_unique

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
class _Tally:
    """One evaluation split's matches, summed over key buckets."""

    rows: int = 0
    hits: int = 0
    distinct: int = 0
    sample: list[tuple[int, Any]] = field(default_factory=list)  # (ordinal, id) of the first hits


def distinct_keys(c: Columns) -> Columns:
    return {"key": sorted_unique(c["key"])}


@dataclass
class DupState:
    train: KeyRuns = field(default_factory=lambda: KeyRuns(distinct_keys))
    rows: dict[str, KeyRuns] = field(default_factory=dict)  # evaluation split → (key, ord, id) per row


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
    row_finalize = True
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
        h = row_hashes(rb, self.features)
        if batch.split == "train":
            state.train.add({"key": h})
            return state
        ords = np.arange(batch.offset, batch.offset + rb.num_rows, dtype=np.int64)
        idcol = self.spec.data.id
        ids = rb.column(idcol).to_numpy(zero_copy_only=False) if idcol and idcol in rb.schema.names else ords
        state.rows.setdefault(batch.split, KeyRuns()).add({"key": h, "ord": ords, "id": ids})
        return state

    def merge(self, a: DupState, b: DupState) -> DupState:
        a.train.merge(b.train)
        for split, runs in b.rows.items():
            a.rows.setdefault(split, KeyRuns()).merge(runs)
        return a

    def finalize(self, state: DupState, ctx: AuditContext) -> Outcome:
        if not self.features:
            raise Skip("train and the evaluation splits share no feature columns")
        splits = [s for s in ("test", "production", "feedback") if s in ctx.sources.datasets]
        tally = {s: _Tally() for s in splits}
        train_distinct = 0
        for b in spilled(state.train, *state.rows.values()):  # a hash is in the same bucket everywhere
            cols = state.train.bucket(b)
            train = cols["key"] if cols is not None else np.empty(0, np.uint64)
            train_distinct += int(train.size)
            for split in splits:
                c = state.rows[split].bucket(b) if split in state.rows else None
                if c is None:
                    continue
                hit = in_sorted(c["key"], train)
                t = tally[split]
                t.rows += int(hit.size)
                t.hits += int(hit.sum())
                t.distinct += int(sorted_unique(c["key"][hit]).size)
                first = np.flatnonzero(hit)
                first = first[np.argsort(c["ord"][first], kind="stable")[:SAMPLE_IDS]]
                t.sample = sorted(t.sample + list(zip(c["ord"][first].tolist(), c["id"][first].tolist())),
                                  key=lambda r: r[0])[:SAMPLE_IDS]
        for runs in (state.train, *state.rows.values()):
            runs.close()
        metrics: dict[str, Any] = {"feature_columns": len(self.features), "ignored_columns": self.ignored,
                                   "train_distinct_rows": train_distinct}
        findings = []
        labels, shares = [], []
        for split in splits:
            t = tally[split]
            count, n = t.hits, t.rows
            share = count / n if n else 0.0
            metrics[split] = {"rows": n, "duplicated_rows": count, "share": round(share, 6),
                              "distinct_duplicated": t.distinct}
            labels.append(split)
            shares.append(100.0 * share)
            if count:
                sample = [py(v) for _, v in t.sample]
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

