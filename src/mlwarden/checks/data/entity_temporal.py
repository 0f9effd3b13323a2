"""data.leakage.entity and data.leakage.temporal — the same entity, or the future, on both sides of a split.

``entity``: ids (the spec's ``data.id``) of test and production rows that also occur in
the training data. Ids are compared as 64-bit hashes of their normalized value (the row
hashing of :mod:`.rowhash`: ``7`` and ``7.0`` are one id); the expected number of false
matches is about n_train·n_eval/2⁶⁴ — 5·10⁻⁸ at a million rows on each side. State: a
uint64 per training row (unique per batch) plus hash and id of every evaluation row.

``temporal``: training rows dated inside or after the test period (from the 10th percentile of
test times to the last), and test rows dated before the training data ends. Counts are exact, so the state keeps the event time of
every train and test row as an int64 (8 bytes a row, never the other columns) plus the 20
latest training rows and the 20 earliest test rows with their ids for evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..common import py, row_ids
from .leakage import SHARE_SCALE
from .rowhash import (
    batch_column_hash,
    column_hash,
    compact_sets,
    count_distinct,
    in_sorted,
    sorted_unique,
)

SAMPLE_IDS = 20
START_QUANTILE = 0.10
"""The test period starts at this quantile of test times, so a few stray early rows don't stretch it."""
REFS = ("OWASP-ML08", "AML.T0059", "NIST-MEASURE")

_ENTITY_SCALE = SHARE_SCALE["test"]  # an entity in both splits leaks like a copied row
_TRAIN_LATE_SCALE = [(0.10, Severity.CRITICAL), (0.01, Severity.HIGH), (0.0, Severity.MEDIUM)]
_TEST_EARLY_SCALE = [(0.5, Severity.MEDIUM), (0.0, Severity.LOW)]


def pick(scale: list[tuple[float, Severity]], share: float) -> Severity:
    return next(sev for bound, sev in scale if share >= bound)




@dataclass
class EntityState:
    train: list[np.ndarray] = field(default_factory=list)
    hashes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    ids: dict[str, list[np.ndarray]] = field(default_factory=dict)


@register
class EntityLeakage(FoldCheck):
    """Finds entities (the spec's ``data.id``) present in both the training and the test data.

    **What it finds.** Test and production rows whose id also occurs in the training
    data: count, share of the split, distinct entities and sample ids. Ids are compared
    by a 64-bit hash of their value (false matches ≈ n_train·n_test/2⁶⁴). Feedback rows
    about known entities are normal and only counted in the metrics.

    **Severity.** Test: low below 0.5 % of rows, medium below 2 %, high below 10 %,
    critical from 10 %. Production: info (a returning customer is expected there).

    **Why it matters.** Rows of one customer, patient or device are correlated: with some
    in train and others in test, the model is graded on people it has already seen, and
    the test score overstates how it does on new ones.

    **How to fix.** Split by entity (``GroupShuffleSplit``/``GroupKFold`` on the id), or
    drop the test rows of entities seen in training, and re-evaluate.
    """

    id = "data.leakage.entity"
    row_finalize = True
    title = "No entity in both training and test data"
    needs = ("train", "eval", "id")
    stage = "splits"
    references = REFS

    def columns(self, split: str) -> list[str]:
        return [self.spec.data.id] if self.spec.data.id in self.sources.columns(split) else []

    def init(self) -> EntityState:
        return EntityState()

    def update(self, state: EntityState, batch: Batch) -> EntityState:
        idcol = self.spec.data.id
        if idcol not in batch.data.schema.names:
            return state
        h = batch_column_hash(batch.data, idcol)
        if batch.split == "train":
            state.train.append(sorted_unique(h))
        else:
            state.hashes.setdefault(batch.split, []).append(h)
            state.ids.setdefault(batch.split, []).append(row_ids(batch, idcol))
        return state

    def merge(self, a: EntityState, b: EntityState) -> EntityState:
        a.train.extend(b.train)
        a.train = compact_sets(a.train)  # keep the state compact while merging many partitions
        for src, dst in ((b.hashes, a.hashes), (b.ids, a.ids)):
            for split, arrays in src.items():
                dst.setdefault(split, []).extend(arrays)
        return a

    def finalize(self, state: EntityState, ctx: AuditContext) -> Outcome:
        train = sorted_unique(np.concatenate(state.train or [np.empty(0, np.uint64)]))
        metrics: dict[str, Any] = {"id_column": self.spec.data.id, "train_entities": int(train.size),
                                   "id_hash_bits": 64}
        findings, labels, shares = [], [], []
        for split in ("test", "production", "feedback"):
            if split not in ctx.sources.datasets:
                continue
            h = np.concatenate(state.hashes.get(split) or [np.empty(0, np.uint64)])
            ids = np.concatenate(state.ids.get(split) or [np.empty(0, np.int64)])
            hit = in_sorted(h, train)
            rows, n = int(hit.sum()), int(h.size)
            share = rows / n if n else 0.0
            entities = count_distinct(h[hit])
            metrics[split] = {"rows": n, "entities": count_distinct(h), "rows_with_train_entity": rows,
                              "shared_entities": entities, "share": round(share, 6)}
            labels.append(split)
            shares.append(100.0 * share)
            if rows and split != "feedback":
                sample = [py(v) for v in np.unique(ids[hit])[:SAMPLE_IDS]]
                findings.append(self._finding(split, rows, n, share, entities, sample))
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Rows whose entity is in train (% of split)", labels=tuple(labels),
                                     values=tuple(shares), unit="%")])

    def _finding(self, split: str, rows: int, n: int, share: float, entities: int, sample: list[Any]) -> Any:
        test = split == "test"
        severity = pick(_ENTITY_SCALE, share) if test else Severity.INFO
        why = ("The test score overstates performance on new entities: the model was trained on other rows "
               "of the same entities." if test else
               "Production serves entities the model was trained on; expected for returning customers, "
               "but their predictions say little about new ones.")
        return self.finding(
            key=(split,), severity=severity,
            title=f"{entities} {self.spec.data.id} values in {split} also occur in train "
                  f"({rows} of {n} rows, {share:.1%})",
            description=why,
            remediation=("Split by entity (GroupShuffleSplit on the id column) and re-evaluate." if test else
                         "No action needed if returning entities are expected; track new-entity performance."),
            evidence={"split": split, "rows": rows, "split_rows": n, "share": round(share, 6),
                      "shared_entities": entities, "sample_ids": sample, "id_column": self.spec.data.id},
            location=Location(artifact=self.spec.display(self.sources.datasets[split].uri),
                              column=self.spec.data.id, rows=tuple(sample)),
        )


def time_kind(schema: pa.Schema, column: str) -> str:
    t = schema.field(column).type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "temporal"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "numeric"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return "other"


def times(arr: pa.Array | pa.ChunkedArray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Event times as int64 (ns since epoch for dates, timestamps and ISO strings) and a valid mask."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if kind == "text":
        arr = pc.cast(arr, pa.timestamp("ns"))  # ISO-8601 strings; anything else raises, and the check errors
    elif kind == "temporal":
        if pa.types.is_date(arr.type):
            arr = pc.cast(arr, pa.timestamp("ns"))
        arr = pc.cast(arr, pa.timestamp("ns", tz=arr.type.tz), safe=False)
    valid = ~np.asarray(arr.is_null(), dtype=bool)
    if kind == "numeric" and pa.types.is_floating(arr.type):
        x = np.asarray(arr.fill_null(np.nan), dtype=np.float64)
        valid &= np.isfinite(x)
        return np.where(valid, np.floor(x), 0).astype(np.int64), valid
    x = np.asarray(pc.cast(arr, pa.int64(), safe=False).fill_null(0), dtype=np.int64)
    return x, valid


def show_time(t: int, kind: str) -> Any:
    return str(np.datetime64(int(t), "ns")) if kind in ("temporal", "text") else int(t)


@dataclass
class TimeState:
    times: dict[str, list[np.ndarray]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    # (time, id hash, id) of the latest train rows and of the earliest test rows
    edge: dict[str, list[tuple[int, int, Any]]] = field(default_factory=dict)


@register
class TemporalLeakage(FoldCheck):
    """Finds training rows dated inside or after the test period.

    **What it finds.** With the test period taken from the 10th percentile to the latest
    event time (``data.time``) of the test data — a percentile, so a few stray early test
    rows (copies of training rows, typos) don't stretch it; the strict count against the
    earliest test row is in the evidence: the training rows dated at or after its start
    (split into inside the period and after it), the overlap window, and sample ids of
    the latest training rows. Also, the test rows dated before the training data ends.
    Counts are exact (the check keeps one int64 time per train and test row).

    **Severity.** Training rows in or after the test period: medium below 1 % of the
    training data, high below 10 %, critical from 10 %. Test rows before the end of the
    training data (the same overlap seen from the test side): low, medium from 50 %.

    **Why it matters.** A model deployed today only has the past to learn from. Training
    on rows from the test period lets it learn what was true then (prices, trends,
    outcomes), so the test score overstates what it will do on the future.

    **How to fix.** Split by time: train on rows before a cut-off date, test on rows after
    it (``TimeSeriesSplit``), and drop or re-date the training rows inside the test period.
    """

    id = "data.leakage.temporal"
    title = "Training data ends before the test period starts"
    needs = ("train", "test", "time")
    stage = "splits"
    splits = ("train", "test")
    references = REFS

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        train = sources.datasets.get("train")
        self.kind = time_kind(train.schema, spec.data.time) if train and spec.data.time in train.columns else "other"

    def columns(self, split: str) -> list[str]:
        time = self.spec.data.time
        assert time is not None  # needs "time"
        cols = [time]
        if self.spec.data.id and self.spec.data.id in self.sources.columns(split):
            cols.append(self.spec.data.id)
        return cols

    def init(self) -> TimeState:
        return TimeState()

    def update(self, state: TimeState, batch: Batch) -> TimeState:
        if self.kind == "other":
            return state
        rb = batch.data
        t, valid = times(rb.column(self.spec.data.time), self.kind)
        split = batch.split
        state.missing[split] = state.missing.get(split, 0) + int((~valid).sum())
        t = t[valid]
        state.times.setdefault(split, []).append(t)
        ids = row_ids(batch, self.spec.data.id)[valid]
        idh = column_hash(pa.array(ids)).view(np.int64) if ids.size else np.empty(0, np.int64)
        # the latest train rows (sort by -time) and the earliest test rows, ties broken by id hash
        order = np.lexsort((idh, -t if split == "train" else t))[:SAMPLE_IDS]
        rows = [(int(t[i]), int(idh[i]), py(ids[i])) for i in order]
        state.edge[split] = self._cut(split, state.edge.get(split, []) + rows)
        return state

    @staticmethod
    def _cut(split: str, rows: list[tuple[int, int, Any]]) -> list[tuple[int, int, Any]]:
        sign = -1 if split == "train" else 1
        return sorted(rows, key=lambda r: (sign * r[0], r[1]))[:SAMPLE_IDS]

    def merge(self, a: TimeState, b: TimeState) -> TimeState:
        for split, arrays in b.times.items():
            a.times.setdefault(split, []).extend(arrays)
        for split, n in b.missing.items():
            a.missing[split] = a.missing.get(split, 0) + n
        for split, rows in b.edge.items():
            a.edge[split] = self._cut(split, a.edge.get(split, []) + rows)
        return a

    def finalize(self, state: TimeState, ctx: AuditContext) -> Outcome:
        if self.kind == "other":
            raise Skip(f"data.time column {self.spec.data.time!r} is neither a date, a timestamp nor a number")
        train = np.concatenate(state.times.get("train") or [np.empty(0, np.int64)])
        test = np.concatenate(state.times.get("test") or [np.empty(0, np.int64)])
        if not train.size or not test.size:
            raise Skip("train or test has no dated rows")
        first, hi, train_max = int(test.min()), int(test.max()), int(train.max())
        lo = int(np.sort(test)[int(START_QUANTILE * (test.size - 1))])
        strict = int((train >= first).sum())
        inside = int(((train >= lo) & (train <= hi)).sum())
        after = int((train > hi).sum())
        late, early = inside + after, int((test < train_max).sum())
        show = lambda t: show_time(t, self.kind)  # noqa: E731
        metrics: dict[str, Any] = {
            "time_column": self.spec.data.time, "bytes_per_row": 8,
            "train": {"rows": int(train.size), "missing_time": state.missing.get("train", 0),
                      "first": show(int(train.min())), "last": show(train_max)},
            "test": {"rows": int(test.size), "missing_time": state.missing.get("test", 0),
                     "first": show(first), "last": show(hi), "period_start": show(lo)},
            "train_rows_in_test_period": inside, "train_rows_after_test_period": after,
            "test_rows_before_train_end": early, "train_rows_after_first_test_row": strict,
        }
        findings = []
        uri = lambda s: self.spec.display(self.sources.datasets[s].uri)  # noqa: E731
        if late:
            share = late / train.size
            sample = [r[2] for r in state.edge.get("train", []) if r[0] >= lo]
            findings.append(self.finding(
                key=("train", "in_test_period"), severity=pick(_TRAIN_LATE_SCALE, share),
                title=f"{late} training rows ({share:.1%}) are dated inside or after the test period",
                description=(f"The test period runs from {show(lo)} to {show(hi)}; {inside} training rows fall "
                             f"inside it and {after} after it ({strict} are later than the earliest test row). "
                             "The model learned from the period it is evaluated on, so the test score "
                             "overstates performance on future data."),
                remediation="Split by time: train strictly before the test period starts (TimeSeriesSplit).",
                evidence={"rows": late, "share": round(share, 6), "inside": inside, "after": after,
                          "test_period": [show(lo), show(hi)], "overlap": [show(lo), show(train_max)],
                          "after_first_test_row": strict,
                          "sample_latest_train_ids": sample, "id_column": self.spec.data.id or "(row number)"},
                location=Location(artifact=uri("train"), column=self.spec.data.time, rows=tuple(sample)),
            ))
        if early:
            share = early / test.size
            sample = [r[2] for r in state.edge.get("test", []) if r[0] < train_max]
            findings.append(self.finding(
                key=("test", "before_train_end"), severity=pick(_TEST_EARLY_SCALE, share),
                title=f"{early} test rows ({share:.1%}) are dated before the training data ends",
                description=(f"The training data runs until {show(train_max)}; test rows from before then do "
                             "not measure performance on the future."),
                remediation="Cut train and test at one date; keep every test row after the cut-off.",
                evidence={"rows": early, "share": round(share, 6), "train_end": show(train_max),
                          "sample_earliest_test_ids": sample, "id_column": self.spec.data.id or "(row number)"},
                location=Location(artifact=uri("test"), column=self.spec.data.time, rows=tuple(sample)),
            ))
        return Outcome(findings=findings, metrics=metrics)
