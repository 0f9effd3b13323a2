"""data.leakage.target — a single feature that predicts the label almost perfectly.

Nothing is fitted on the whole data. Per training column the fold keeps a table of
(value × label) row counts: exact distinct values up to :data:`CAP` per column; past
that, numbers fall into log-scale bins with 7 mantissa bits (0.8 % wide; coarsened a bit
at a time until the column fits the cap) and text values into 4,096 hash buckets. So a
column's state is at most CAP × classes × 2 counts, whatever the number of rows.

From the tables, per column:

- numbers: the ROC AUC of the value order (one-vs-rest, macro-averaged over classes,
  taking each class's better direction). Binned values tie inside a bin; the exact AUC
  differs from the binned one by at most half the within-bin positive×negative pairs,
  ``0.5·Σ_b pos_b·neg_b / (P·N)``, reported as ``auc_error_bound`` (0 with exact values);
- text: a cross-fitted target encoding — rows fall in two halves by a hash of their row
  number; each half's per-value class rates (smoothed) score the other half — so a
  unique-per-row column scores AUC 0.5, not 1;
- both: the uncertainty coefficient ``U = I(feature; label) / H(label)`` (normalized
  mutual information, Miller–Madow corrected) over 32 equal-mass bins of a number, or
  over the cross-fitted predictions of a text column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from .rowhash import _mix, batch_column_hash, sort_codes

CAP = 10_000
MAX_CLASSES = 50
MIN_CLASS_ROWS = 20
NMI_BINS = 32
AUC_FLAG, AUC_CRITICAL, NMI_FLAG, NMI_CRITICAL = 0.95, 0.99, 0.8, 0.95
_SIGN = np.uint64(1 << 63)


def monotone(x: np.ndarray) -> np.ndarray:
    """uint64 codes of floats that sort like the floats (NaN above +inf)."""
    x = np.where(x == 0.0, 0.0, x)
    x = np.where(np.isnan(x), np.nan, x)
    b = x.view(np.uint64)
    return np.where((b & _SIGN) != 0, ~b, b | _SIGN)


@dataclass
class Table:
    """Counts of (value key × label × half), keys sorted; ``level`` 0 = exact values."""

    kind: str  # "num" or "cat"
    level: int = 0
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2), np.int64))


def _rekey(t: Table, level: int) -> np.ndarray:
    if t.kind == "cat":
        return t.keys & np.uint64(0xFFF) if level and not t.level else t.keys
    keys = t.keys
    if t.level == 0 and level > 0:
        keys, start = keys >> np.uint64(45), 1
    else:
        start = max(t.level, 1)
    return keys >> np.uint64(level - start) if level > start else keys


def _group(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not keys.size:
        return keys, counts
    order = np.argsort(keys)  # sum rows of equal keys with reduceat: np.add.at is ~10x slower
    ks = keys[order]
    start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    return ks[start], np.add.reduceat(counts[order], start, axis=0)


def combine(a: Table, b: Table) -> Table:
    """Sum two tables (same kind, same label axis) and coarsen until under CAP keys."""
    level = max(a.level, b.level)
    keys = np.concatenate([_rekey(a, level), _rekey(b, level)])
    k, c = _group(keys, np.concatenate([a.counts, b.counts]))
    out = Table(kind=a.kind, level=level, keys=k, counts=c)
    while out.keys.size > CAP:
        nxt = out.level + 1
        out = Table(kind=out.kind, level=nxt, keys=_rekey(out, nxt), counts=out.counts)
        out.keys, out.counts = _group(out.keys, out.counts)
    return out


def _label_key(v: Any) -> tuple[str, Any]:
    return (type(v).__name__, v)


@dataclass
class TargetState:
    labels: list[Any] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    too_many_classes: bool = False

    def realign(self, labels: list[Any]) -> None:
        """Put every table's label axis in the order of ``labels`` (a superset, sorted)."""
        if labels == self.labels:
            return
        where = [labels.index(v) for v in self.labels]
        for t in self.tables.values():
            c = np.zeros((t.counts.shape[0], len(labels), 2), np.int64)
            c[:, where, :] = t.counts
            t.counts = c
        self.labels = labels


def _numeric_keys(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Keys of a number, date or time column that sort like its values (:func:`monotone`)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_date(arr.type):
        arr = pc.cast(arr, pa.timestamp("ns"))
    if pa.types.is_timestamp(arr.type):
        arr = pc.cast(pc.cast(arr, pa.timestamp("ns", tz=arr.type.tz), safe=False), pa.int64())
    x = np.asarray(pc.cast(arr, pa.float64(), safe=False).fill_null(np.nan), dtype=np.float64)
    return monotone(x)


@register
class TargetLeakage(FoldCheck):
    """Finds features that alone predict the label almost perfectly (target leakage).

    **What it finds.** Training columns (not the label or the id) whose single-feature
    ROC AUC is at least 0.95 (or whose normalized mutual information with the label is at
    least 0.8): columns computed from the outcome, recorded after it, or copies of it.
    Each finding names the column with its AUC, the AUC's binning error bound and the NMI.
    Text columns are scored out-of-sample (cross-fitted), so ids and free text don't pass
    for leaks. Needs at least 20 training rows in every class; labels with more than 50
    classes (regression targets) are not screened.

    **Severity.** High; critical from AUC 0.99 or NMI 0.95.

    **Why it matters.** A feature that encodes the answer makes the model look perfect in
    evaluation and fail in production, where the feature is not yet known (or not known
    at all) at prediction time.

    **How to fix.** Check when each flagged column becomes known; drop the ones recorded
    at or after the decision, and rebuild the feature list from what exists at
    prediction time.
    """

    id = "data.leakage.target"
    title = "No feature encodes the label"
    needs = ("train", "label")
    stage = "training"
    splits = ("train",)
    references = ("OWASP-ML08", "NIST-MEASURE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        d = spec.data
        skip = {d.label, d.id, d.prediction, d.score} - {None}
        self.kinds: dict[str, str] = {}
        train = sources.datasets.get("train")
        for fld in (train.schema if train else []):
            t = fld.type
            if fld.name in skip:
                continue
            if pa.types.is_dictionary(t):
                t = t.value_type
            if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                    or pa.types.is_decimal(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)):
                self.kinds[fld.name] = "num"
            elif pa.types.is_string(t) or pa.types.is_large_string(t):
                self.kinds[fld.name] = "cat"

    def columns(self, split: str) -> list[str]:
        label = self.spec.data.label
        assert label is not None  # needs "label"
        return sorted(self.kinds) + [label]

    def init(self) -> TargetState:
        return TargetState()

    def update(self, state: TargetState, batch: Batch) -> TargetState:
        if state.too_many_classes:
            return state
        rb = batch.data
        # labels become Python values once per distinct value, not once per row
        lab = rb.column(self.spec.data.label)
        if isinstance(lab, pa.ChunkedArray):
            lab = lab.combine_chunks()
        if pa.types.is_dictionary(lab.type):
            lab = lab.dictionary_decode()
        enc = lab.dictionary_encode()
        values = enc.dictionary.to_pylist()
        codes = np.asarray(enc.indices.fill_null(-1), dtype=np.int64)
        seen = np.zeros(len(values) + 1, bool)
        seen[codes] = True  # -1 (null) lands on the extra last slot
        real = [not (isinstance(v, float) and math.isnan(v)) for v in values]
        present = sorted({v for v, r, s in zip(values, real, seen) if r and s}, key=_label_key)
        labels = sorted(set(state.labels) | set(present), key=_label_key)
        if len(labels) > MAX_CLASSES:
            state.too_many_classes, state.tables = True, {}
            return state
        state.realign(labels)
        index = {v: i for i, v in enumerate(labels)}
        lookup = np.array([index[v] if r else -1 for v, r in zip(values, real)] + [-1], dtype=np.int64)
        y_all = lookup[codes]
        ok = y_all >= 0
        y = y_all[ok]
        half = (_mix(np.arange(batch.offset, batch.offset + rb.num_rows, dtype=np.uint64)) & np.uint64(1)
                ).astype(np.int64)[ok]
        L = len(labels)
        for name, kind in self.kinds.items():
            prev = state.tables.get(name, Table(kind=kind, counts=np.zeros((0, L, 2), np.int64)))
            # a category's key is its value hash, shared with the other checks through the batch memo
            raw = batch_column_hash(rb, name) if kind == "cat" else _numeric_keys(rb.column(name))
            # coarsened to the table's level before counting (combine would do it after): a
            # continuous column has ~one distinct exact value a row but few binned ones
            keys = _rekey(Table(kind=kind, keys=raw if ok.all() else raw[ok]), prev.level)
            inv, u = sort_codes(*pd.factorize(keys))
            flat = (inv * L + y) * 2 + half
            counts = np.bincount(flat, minlength=u.size * L * 2).reshape(u.size, L, 2).astype(np.int64)
            mine = Table(kind=kind, level=prev.level, keys=u, counts=counts)
            state.tables[name] = combine(prev, mine)
        return state

    def merge(self, a: TargetState, b: TargetState) -> TargetState:
        if a.too_many_classes or b.too_many_classes:
            return TargetState(too_many_classes=True)
        labels = sorted(set(a.labels) | set(b.labels), key=_label_key)
        if len(labels) > MAX_CLASSES:
            return TargetState(too_many_classes=True)
        a.realign(labels)
        b.realign(labels)
        for name in sorted(b.tables):
            a.tables[name] = combine(a.tables[name], b.tables[name]) if name in a.tables else b.tables[name]
        return a

    def finalize(self, state: TargetState, ctx: AuditContext) -> Outcome:
        if state.too_many_classes:
            raise Skip(f"label {self.spec.data.label!r} has more than {MAX_CLASSES} values: "
                       "a regression target, not screened")
        if len(state.labels) < 2:
            raise Skip(f"label {self.spec.data.label!r} has fewer than two classes in train")
        if not state.tables:
            raise Skip("the training data has no numeric or text feature columns")
        per_class = next(iter(state.tables.values())).counts.sum(axis=(0, 2))
        scores = {name: score(t) for name, t in sorted(state.tables.items())}
        metrics: dict[str, Any] = {
            "columns_screened": len(scores), "classes": len(state.labels),
            "class_rows": {str(v): int(n) for v, n in zip(state.labels, per_class)},
            "binned_columns": sorted(n for n, t in state.tables.items() if t.level),
            "state_bytes": int(sum(t.keys.nbytes + t.counts.nbytes for t in state.tables.values())),
        }
        ranked = sorted(scores.items(), key=lambda kv: (-max(kv[1]["auc"], kv[1]["nmi"]), kv[0]))
        metrics["top"] = {n: s for n, s in ranked[:20]}
        findings = []
        if per_class.min() < MIN_CLASS_ROWS:
            metrics["note"] = f"a class has fewer than {MIN_CLASS_ROWS} training rows: nothing flagged"
        else:
            for name, s in ranked:
                if s["auc"] >= AUC_FLAG or s["nmi"] >= NMI_FLAG:
                    findings.append(self._finding(name, s))
        top = ranked[:10]
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Single-feature AUC (top columns)", labels=tuple(n for n, _ in top),
                                     values=tuple(s["auc"] for _, s in top))])

    def _finding(self, name: str, s: dict[str, Any]) -> Any:
        critical = s["auc"] >= AUC_CRITICAL or s["nmi"] >= NMI_CRITICAL
        return self.finding(
            key=(name,), severity=Severity.CRITICAL if critical else Severity.HIGH,
            title=f"Column {name!r} alone predicts {self.spec.data.label!r} (AUC {s['auc']:.3f}, NMI {s['nmi']:.3f})",
            description=(f"On its own, {name!r} separates the classes of {self.spec.data.label!r} almost perfectly. "
                         "Features that strong are usually derived from the outcome or recorded after it; "
                         "the model will lean on it, and it will not be there (or mean the same) at prediction time."),
            remediation=(f"Find out when {name!r} becomes known. If it is at or after the decision, drop it "
                         "and retrain; if it is legitimately available, document why it is so predictive."),
            evidence={"column": name, **s},
            location=Location(artifact=self.spec.display(self.sources.datasets["train"].uri), column=name),
        )


def _auc(scores_order_pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """AUC of groups sorted by increasing score (ties inside a group), and the tie mass."""
    pos = scores_order_pos
    P, N = pos.sum(), neg.sum()
    if not P or not N:
        return 0.5, 0.0
    below = np.cumsum(neg) - neg
    auc = float((pos * (below + 0.5 * neg)).sum() / (P * N))
    return auc, float(0.5 * (pos * neg).sum() / (P * N))


def _u(table: np.ndarray) -> float:
    """Uncertainty coefficient I(X;Y)/H(Y) of a count table (rows X, columns Y), Miller–Madow corrected."""
    n = table.sum()
    if not n:
        return 0.0
    py = table.sum(axis=0) / n
    hy = -float((py[py > 0] * np.log(py[py > 0])).sum())
    if hy <= 0:
        return 0.0
    px = table.sum(axis=1) / n
    p = table / n
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(px, py)[nz])).sum())
    rows, cols = int((px > 0).sum()), int((py > 0).sum())
    mi -= (rows - 1) * (cols - 1) / (2.0 * n)
    return max(0.0, min(1.0, mi / hy))


def score(t: Table) -> dict[str, Any]:
    """AUC (macro one-vs-rest), its binning error bound, and NMI of one column's table."""
    counts = t.counts.sum(axis=2)  # keys × labels
    L = counts.shape[1]
    classes = [c for c in range(L) if counts[:, c].sum()] if L > 2 else [L - 1]
    if t.kind == "num":
        aucs, bounds = [], []
        for c in classes:
            pos = counts[:, c]
            a, tie = _auc(pos, counts.sum(axis=1) - pos)
            aucs.append(max(a, 1.0 - a))
            bounds.append(tie if t.level else 0.0)
        cum = np.cumsum(counts.sum(axis=1))
        n = cum[-1] if cum.size else 0
        bins = ((cum - counts.sum(axis=1)) * NMI_BINS // max(n, 1)).astype(np.int64)
        binned = np.zeros((NMI_BINS, L), np.int64)
        np.add.at(binned, bins, counts)
        return {"kind": "number", "auc": round(float(np.mean(aucs)), 6),
                "auc_error_bound": round(float(np.mean(bounds)), 6), "nmi": round(_u(binned), 6),
                "distinct_or_bins": int(t.keys.size), "binned": bool(t.level)}
    aucs, confusion = [], np.zeros((L, L), np.int64)
    total = counts.sum(axis=0)
    prior = total / max(total.sum(), 1)
    for f in (0, 1):
        fit, held = t.counts[:, :, f], t.counts[:, :, 1 - f]
        rate = (fit + prior) / (fit.sum(axis=1, keepdims=True) + 1.0)
        pred = np.argmax(rate, axis=1)
        np.add.at(confusion, pred, held)
        fold = []
        for c in classes:
            u, inv = np.unique(rate[:, c], return_inverse=True)
            pos = np.bincount(inv, weights=held[:, c], minlength=u.size)
            neg = np.bincount(inv, weights=held.sum(axis=1) - held[:, c], minlength=u.size)
            fold.append(_auc(pos, neg)[0])
        aucs.append(float(np.mean(fold)))
    return {"kind": "text", "auc": round(float(np.mean(aucs)), 6), "auc_error_bound": 0.0,
            "nmi": round(_u(confusion), 6), "distinct_or_bins": int(t.keys.size), "binned": bool(t.level),
            "cross_fitted": True}
