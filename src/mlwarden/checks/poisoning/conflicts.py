"""data.poisoning.conflicting_labels — identical feature rows that carry different labels.

Also home of the small helpers the poisoning family shares (feature columns, row ids,
label hashing). The state is, per scope, one record per distinct (feature-row hash, label)
pair: hash, label hash, first row ordinal and its id, row count, feedback-row count —
40 bytes per distinct pair, O(distinct rows), which is what the definition needs (a
conflict can pair any row with any other). When train and feedback share their features
(the usual case) the train scope is read from the train+feedback records, not kept twice.
The records live in a :class:`~mlwarden.checks.data.keyruns.KeyRuns`: reduced lazily (sort
+ reduce when the chunks double), spilled to disk by hash range past 64 MB, and read back one
bucket at a time — a group's records share a hash, so each bucket is complete — so merging
stays O(n log n), the main process holds a bounded part of it, and the result is the same
whatever the partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..common import py, row_ids, shared_columns
from ..data.keyruns import Columns, KeyRuns, key_order
from ..data.rowhash import column_hash, row_hashes

SAMPLE_IDS = 20
SAMPLE_GROUPS = 20
MAX_LABELS = 1_000
"""Distinct labels whose display values are kept; more means a regression target."""

_SPLIT_RANK = {"train": 0, "feedback": 1}
_ORD_BITS = 48


def feature_columns(spec: Any, sources: Any, splits: tuple[str, ...]) -> list[str]:
    """Columns every one of ``splits`` holds, minus the label, id and time columns."""
    return shared_columns(sources, splits, (spec.data.label, spec.data.id, spec.data.time))




def show(v: Any) -> Any:
    """A value as a report shows it: JSON-friendly, dates as ISO text."""
    v = py(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def label_hashes(arr: pa.Array | pa.ChunkedArray, names: dict[int, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(label hash per row, valid mask); records each new label's display value in ``names``."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    valid = ~np.asarray(arr.is_null(), dtype=bool)
    h = column_hash(arr)
    if len(names) <= MAX_LABELS:
        uniq, idx = np.unique(h[valid], return_index=True)
        values = arr.filter(pa.array(valid)) if not valid.all() else arr
        for u, i in zip(uniq.tolist(), idx.tolist()):
            v = show(values[i].as_py())
            if u not in names or _order(v) < _order(names[u]):
                names[u] = v  # 1 and 1.0 hash alike: keep one display value, whatever the batch order
    return h, valid


def _order(v: Any) -> tuple[str, str]:
    return type(v).__name__, repr(v)


def merge_names(a: dict[int, Any], b: dict[int, Any]) -> dict[int, Any]:
    for k, v in b.items():
        if k not in a or _order(v) < _order(a[k]):
            a[k] = v
    return a


def reduce_pairs(c: Columns) -> Columns:
    """One record per (row hash, label), sorted by (hash, label): first row (smallest ordinal), summed counts."""
    order = key_order(c, ("lab", "ord"))
    c = {n: a[order] for n, a in c.items()}
    h, lab = c["key"], c["lab"]
    start = np.r_[True, (h[1:] != h[:-1]) | (lab[1:] != lab[:-1])] if h.size else np.empty(0, bool)
    first = np.flatnonzero(start)
    out = {n: c[n][first] for n in ("key", "lab", "ord", "id")}
    for n in ("cnt", "fb"):
        out[n] = np.add.reduceat(c[n], first) if first.size else c[n]
    return out


def train_only(c: Columns) -> Columns:
    """The train rows of a shared train+feedback store: train ordinals sort first, so a record
    with any train row keeps its first row; only its counts change."""
    keep = c["cnt"] > c["fb"]
    out = {n: a[keep] for n, a in c.items()}
    out["cnt"] = out["cnt"] - out["fb"]
    out["fb"] = np.zeros_like(out["fb"])
    return out


@dataclass
class ConflictState:
    scopes: dict[str, KeyRuns] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    names: dict[int, Any] = field(default_factory=dict)


@register
class ConflictingLabels(FoldCheck):
    """Finds rows with identical features but different labels, in train and in train ∪ feedback.

    **What it finds.** Groups of rows whose normalized feature values (every column but
    the label, id and time; numbers by value, column order irrelevant) are equal while
    their labels differ. Reports the number of groups, the rows involved, the label mix
    of each sample group and sample row ids — first within the training data, then for
    training and feedback together (groups that involve a feedback row).

    **Severity.** By the share of rows involved: low below 0.1 %, medium below 1 %, high
    from 1 %. Low whatever the share when most rows are duplicates anyway (coarse
    features, where conflicts are natural noise rather than tampering).

    **Why it matters.** A copy of a row with the opposite label is the simplest poisoning
    move (OWASP ML02, ATLAS AML.T0020) and a symptom of careless labelling: the model is
    asked to learn two answers for one input.

    **How to fix.** Review the groups; keep one label per identical row (the reviewed or
    majority one) and trace where the others came from; reject feedback rows that
    contradict training data before retraining.
    """

    id = "data.poisoning.conflicting_labels"
    row_finalize = True
    title = "No identical rows with different labels"
    needs = ("train", "label")
    stage = "data"
    references = ("OWASP-ML02", "AML.T0020", "AML.M0007", "NIST-MEASURE")
    splits = ("train", "feedback")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.train_features = feature_columns(spec, sources, ("train",))
        self.has_feedback = "feedback" in sources.datasets and spec.data.label in sources.columns("feedback")
        self.union_features = (feature_columns(spec, sources, ("train", "feedback")) if self.has_feedback else [])
        # same features: the train scope is the train rows of the train+feedback store, kept once
        self.shared = bool(self.union_features) and self.union_features == self.train_features

    def columns(self, split: str) -> list[str]:
        cols = set(self.train_features if split == "train" else self.union_features)
        if split == "train":
            cols |= set(self.union_features)
        label = self.spec.data.label
        assert label is not None  # needs "label"
        cols |= {label} | {c for c in {self.spec.data.id} & set(self.sources.columns(split)) if c is not None}
        return sorted(cols)

    def init(self) -> ConflictState:
        return ConflictState()

    def update(self, state: ConflictState, batch: Batch) -> ConflictState:
        rb = batch.data
        if not self.train_features or (batch.split == "feedback" and not self.has_feedback):
            return state
        state.rows[batch.split] = state.rows.get(batch.split, 0) + rb.num_rows
        lab, valid = label_hashes(rb.column(self.spec.data.label), state.names)
        ids = row_ids(batch, self.spec.data.id)[valid]
        ords = (np.arange(batch.offset, batch.offset + rb.num_rows, dtype=np.int64)[valid]
                | np.int64(_SPLIT_RANK[batch.split] << _ORD_BITS))
        ones = np.ones(int(valid.sum()), np.uint32)
        fb = ones if batch.split == "feedback" else np.zeros_like(ones)
        scopes = [("train", self.train_features)] if batch.split == "train" and not self.shared else []
        if self.has_feedback and self.union_features:
            scopes.append(("train+feedback", self.union_features))
        for scope, feats in scopes:
            h = row_hashes(rb, feats)[valid]
            state.scopes.setdefault(scope, KeyRuns(reduce_pairs)).add(
                {"key": h, "lab": lab[valid], "ord": ords, "id": ids, "cnt": ones, "fb": fb})
        return state

    def merge(self, a: ConflictState, b: ConflictState) -> ConflictState:
        for scope, pairs in b.scopes.items():
            a.scopes.setdefault(scope, KeyRuns(reduce_pairs)).merge(pairs)
        for split, n in b.rows.items():
            a.rows[split] = a.rows.get(split, 0) + n
        merge_names(a.names, b.names)
        return a

    def finalize(self, state: ConflictState, ctx: AuditContext) -> Outcome:
        if not self.train_features:
            raise Skip("the training data has no feature columns besides the label, id and time")
        if len(state.names) > MAX_LABELS:
            raise Skip(f"the label has more than {MAX_LABELS} distinct values: conflicting labels "
                       "applies to classification labels")
        metrics: dict[str, Any] = {"feature_columns": len(self.train_features)}
        findings, labels, values = [], [], []
        for scope in ("train", "train+feedback"):
            store = state.scopes.get("train+feedback" if scope == "train" and self.shared else scope)
            if store is None:
                continue
            rows = state.rows.get("train", 0) + (state.rows.get("feedback", 0) if scope != "train" else 0)
            view = train_only if scope == "train" and self.shared else None
            m, sample, groups = self._scope(store, view, state.names, scope, rows)
            metrics[scope] = m
            labels.append(scope)
            values.append(100.0 * m["share"])
            if m["groups"]:
                findings.append(self._finding(scope, m, sample, groups))
        for store in state.scopes.values():
            store.close()
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Rows in conflicting-label groups (%)", labels=tuple(labels),
                                     values=tuple(values), unit="%")])

    def _scope(self, store: KeyRuns, view: Any, names: dict[int, Any], scope: str,
               rows: int) -> tuple[dict[str, Any], list[Any], list[dict[str, Any]]]:
        distinct = groups_n = involved = fb_involved = 0
        found: list[tuple[int, dict[str, Any]]] = []  # (first ordinal, group): the earliest groups
        for bucket in store.buckets():  # a group's records share a hash, so a bucket holds it whole
            c = view(bucket) if view else bucket
            d, g, inv, fbi, cand = _bucket_groups(c, names, scope != "train")
            distinct, groups_n, involved, fb_involved = distinct + d, groups_n + g, involved + inv, fb_involved + fbi
            found = sorted(found + cand, key=lambda t: t[0])[:SAMPLE_GROUPS]
        share = involved / rows if rows else 0.0
        m: dict[str, Any] = {"rows": rows, "distinct_rows": distinct, "groups": groups_n,
                             "rows_involved": involved, "share": round(share, 6)}
        if scope != "train":
            m["feedback_rows_involved"] = fb_involved
        groups = [g for _, g in found]
        sample = [i for g in groups for i in g["ids"]]
        return m, sample[:SAMPLE_IDS], groups

    def _finding(self, scope: str, m: dict[str, Any], sample: list[Any], groups: list[dict[str, Any]]) -> Any:
        share = m["share"]
        coarse = m["rows"] and m["distinct_rows"] / m["rows"] < 0.5
        severity = (Severity.LOW if coarse or share < 0.001 else Severity.MEDIUM if share < 0.01
                    else Severity.HIGH)
        where = "training data" if scope == "train" else "training and feedback data together"
        note = (" Most rows are duplicates of each other (coarse features), so some conflicts are natural."
                if coarse else "")
        split = "train" if scope == "train" else "feedback"
        return self.finding(
            key=(scope,), severity=severity,
            title=(f"{m['groups']} groups of identical rows carry different labels in the {where} "
                   f"({m['rows_involved']} rows, {share:.2%})"),
            description=("Rows with the same feature values but different labels: a copy with a flipped "
                         "label is the simplest poisoning move, and a sign of careless labelling. "
                         f"Compared over {len(self.train_features if scope == 'train' else self.union_features)} "
                         f"feature columns (label, id and time excluded).{note}"),
            remediation=("Review the groups, keep one label per identical row and trace where the others "
                         "came from; reject feedback rows that contradict the training data."),
            evidence={"scope": scope, "groups": m["groups"], "rows_involved": m["rows_involved"],
                      "share": share, "sample_groups": groups, "sample_row_ids": sample,
                      "id_column": self.spec.data.id or "(row number)"},
            location=Location(artifact=self.spec.display(self.sources.datasets[split].uri), rows=tuple(sample)),
        )


def _bucket_groups(c: Columns, names: dict[int, Any], feedback_only: bool) -> tuple[int, int, int, int, list]:
    """Distinct rows, conflict groups, rows and feedback rows involved, and the earliest
    SAMPLE_GROUPS groups (first ordinal, labels and ids) of records sorted by (hash, label)."""
    h, lab, ords, ids, cnt, fb = (c[n] for n in ("key", "lab", "ord", "id", "cnt", "fb"))
    if not h.size:
        return 0, 0, 0, 0, []
    start = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
    nlab = np.diff(np.r_[start, h.size])
    bad = nlab > 1
    if feedback_only:  # only what feedback adds: groups with at least one feedback row
        bad &= np.add.reduceat(fb.astype(np.int64), start) > 0
    conflict = np.repeat(bad, nlab)
    group_starts = start[bad]
    first_ord = np.minimum.reduceat(ords, start)[bad]
    found = []
    for i in np.argsort(first_ord, kind="stable")[:SAMPLE_GROUPS].tolist():
        s = int(group_starts[i])
        e = s + int(nlab[bad][i])
        members = sorted(range(s, e), key=lambda j: int(ords[j]))
        found.append((int(first_ord[i]), {"labels": {str(names.get(int(lab[j]), "?")): int(cnt[j]) for j in members},
                                          "ids": [py(ids[j]) for j in members]}))
    return (int(start.size), int(group_starts.size), int(cnt[conflict].sum()),
            int(fb[conflict].sum()) if feedback_only else 0, found)
