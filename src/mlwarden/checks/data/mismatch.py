"""data.leakage.label_mismatch and data.leakage.category_mismatch — values the training data never had.

Both keep, per split and column, the distinct values with their row counts, capped at
:data:`CAP` distinct values; a column past the cap in train is high-cardinality (an id,
free text, a continuous label) and is skipped with a note in the metrics. The state is
therefore at most CAP values per column and split, whatever the number of rows.
Values shown in reports are cut to 40 characters, and values that look like personal
data (an e-mail address, a long run of digits) are never shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...findings import Location, Severity
from ...registry import AuditContext, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from .rowhash import value_counts as shared_value_counts

CAP = 10_000
SAMPLE_VALUES = 10
ID_LIKE = 0.5  # a train column whose distinct values exceed this share of its rows is not categorical
REFS = ("OWASP-ML08", "AML.T0059", "NIST-MEASURE")
_PII = re.compile(r"[^@\s]+@[^@\s]+\.\w+|\d[\d\s().+-]{7,}\d")

_LABEL_SCALE = {"test": [(0.01, Severity.HIGH), (0.0, Severity.MEDIUM)],
                "feedback": [(0.01, Severity.MEDIUM), (0.0, Severity.LOW)]}
_CAT_SCALE = [(0.20, Severity.HIGH), (0.02, Severity.MEDIUM), (0.0, Severity.LOW)]


def show(v: Any) -> str:
    """A value as the report may show it: at most 40 characters, never PII-looking."""
    text = str(v)
    if _PII.search(text):
        return "<redacted: looks like personal data>"
    return text if len(text) <= 40 else text[:39] + "…"


def _key(v: Any) -> Any:
    """Sort key for mixed values (sorted output makes reports deterministic)."""
    return (type(v).__name__, v)


@dataclass
class Counts:
    """Distinct values → rows, capped: past CAP distinct values only the row count is kept."""

    values: dict[Any, int] | None = field(default_factory=dict)
    rows: int = 0

    def add(self, values: dict[Any, int], rows: int) -> None:
        self.rows += rows
        if self.values is None:
            return
        for v, n in values.items():
            self.values[v] = self.values.get(v, 0) + n
        if len(self.values) > CAP:
            self.values = None


def value_counts(arr: pa.Array | pa.ChunkedArray) -> dict[Any, int]:
    """Non-null values → counts; numbers that are equal (1, 1.0, True) are one key."""
    vc = shared_value_counts(arr, nulls=False)
    out: dict[Any, int] = {}
    for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
        if isinstance(v, float) and v != v:  # NaN is missing, not a class
            continue
        out[v] = out.get(v, 0) + n
    return out


@dataclass
class MismatchState:
    counts: dict[tuple[str, str], Counts] = field(default_factory=dict)

    def add(self, split: str, column: str, values: dict[Any, int], rows: int) -> None:
        self.counts.setdefault((split, column), Counts()).add(values, rows)


class _Mismatch(FoldCheck):
    eval_splits: tuple[str, ...] = ()

    def targets(self) -> list[str]:
        raise NotImplementedError

    def columns(self, split: str) -> list[str]:
        have = set(self.sources.columns(split))
        return [c for c in self.targets() if c in have]

    def init(self) -> MismatchState:
        return MismatchState()

    def update(self, state: MismatchState, batch: Batch) -> MismatchState:
        rb = batch.data
        for col in self.columns(batch.split):
            arr = rb.column(col)
            state.add(batch.split, col, value_counts(arr), rb.num_rows - arr.null_count)
        return state

    def merge(self, a: MismatchState, b: MismatchState) -> MismatchState:
        for (split, col), c in sorted(b.counts.items()):
            acc = a.counts.setdefault((split, col), Counts())
            if c.values is None:
                acc.rows += c.rows
                acc.values = None
            else:
                acc.add(c.values, c.rows)
        return a

    def unseen(self, state: MismatchState, split: str, col: str) -> dict[str, Any] | None:
        """Rows and values of ``split``/``col`` never seen in train, or None when not comparable."""
        train, other = state.counts.get(("train", col)), state.counts.get((split, col))
        if train is None or other is None or train.values is None:
            return None
        if other.values is None:
            return {"rows": None, "values": None, "split_rows": other.rows}
        new = {v: n for v, n in other.values.items() if v not in train.values}
        folded = {str(v).strip().casefold() for v in train.values}
        variants = sum(n for v, n in new.items() if str(v).strip().casefold() in folded)
        top = sorted(new.items(), key=lambda vn: (-vn[1], _key(vn[0])))[:SAMPLE_VALUES]
        return {"rows": sum(new.values()), "distinct": len(new), "split_rows": other.rows,
                "values": [[show(v), n] for v, n in top], "formatting_variant_rows": variants}


@register
class LabelMismatch(_Mismatch):
    """Finds labels in the test or feedback data that the training data never had.

    **What it finds.** Per split, the rows whose label value never occurs in the
    training labels, with their count and the values (cut to 40 characters). A label
    with more than 10,000 distinct values in train (a continuous target) is skipped.

    **Severity.** Test: medium, high from 1 % of rows. Feedback: low, medium from 1 %.

    **Why it matters.** A classifier cannot predict a class it never saw: such test rows
    are scored as errors nobody can fix, and a new label in feedback is either a changed
    labelling process or someone injecting data into the retraining loop.

    **How to fix.** Map the value to a known class or drop the rows; if the class is real,
    collect training data for it; find where the feedback labels come from.
    """

    id = "data.leakage.label_mismatch"
    title = "Evaluation labels are classes the training data has"
    needs = ("train", "label")
    stage = "splits"
    splits = ("train", "test", "feedback")
    references = REFS

    def targets(self) -> list[str]:
        label = self.spec.data.label
        assert label is not None  # needs "label"
        return [label]

    def finalize(self, state: MismatchState, ctx: AuditContext) -> Outcome:
        label = self.spec.data.label
        assert label is not None  # needs "label"
        present = [s for s in ("test", "feedback") if s in ctx.sources.datasets and label in ctx.sources.columns(s)]
        if not present:
            raise Skip("needs data.test or data.feedback with the label column")
        train = state.counts.get(("train", label), Counts())
        if train.values is None:
            raise Skip(f"label {label!r} has more than {CAP} distinct values in train: not a class label")
        metrics: dict[str, Any] = {"train_classes": sorted((show(v) for v in train.values), key=str)}
        findings = []
        for split in present:
            u = self.unseen(state, split, label)
            if u is None:
                continue
            metrics[split] = {k: u[k] for k in ("rows", "split_rows") if k in u} | {"distinct": u.get("distinct")}
            if u["rows"] is None or not u["rows"]:
                continue
            share = u["rows"] / u["split_rows"] if u["split_rows"] else 0.0
            sev = next(s for b, s in _LABEL_SCALE[split] if share >= b)
            findings.append(self.finding(
                key=(split, label), severity=sev,
                title=f"{u['rows']} {split} rows ({share:.1%}) carry labels never seen in training",
                description=(f"Label values of {split} absent from the training labels: "
                             f"{', '.join(v for v, _ in u['values'])}."),
                remediation=("Map these values to known classes or drop the rows; if the class is real, "
                             "collect training data for it. For feedback, trace where the labels come from."),
                evidence={"split": split, "column": label, "rows": u["rows"], "share": round(share, 6),
                          "unseen_values": u["values"], "distinct_unseen": u["distinct"]},
                location=Location(artifact=self.spec.display(self.sources.datasets[split].uri), column=label),
            ))
        return Outcome(findings=findings, metrics=metrics)


@register
class CategoryMismatch(_Mismatch):
    """Finds categorical values in test, production or feedback data never seen in training.

    **What it finds.** For every categorical column (text, dictionary or boolean columns,
    and those the spec declares ``type: category``; not the label, id or time): the rows
    of each evaluation split whose value never occurs in the training data, with the
    values (cut to 40 characters, personal-looking values withheld) and how many of them
    differ from a known value only by case or surrounding spaces. Columns with more than
    10,000 distinct training values, or with distinct values for over half of the rows,
    are identifiers or free text: skipped and listed in the metrics.

    **Severity.** Per split and column: low, medium from 2 % of rows, high from 20 %.

    **Why it matters.** Encoders map unseen categories to "unknown" (or fail); the model
    never learned what to do with them, so predictions there are guesses, and a test set
    full of them measures something else than training did. Case variants ("NORTH" vs
    "north") are a preprocessing mismatch between pipelines.

    **How to fix.** Normalize categories the same way everywhere (one shared
    preprocessing step), map unknown values explicitly, and validate inputs against the
    training vocabulary (``features: {col: {type: category, values: [...]}}``).
    """

    id = "data.leakage.category_mismatch"
    title = "Evaluation categories are ones the training data has"
    needs = ("train", "eval")
    stage = "splits"
    references = REFS

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        train = sources.datasets.get("train")
        skip = {spec.data.label, spec.data.id, spec.data.time} - {None}
        declared = {name for name, f in spec.features.items() if f.type == "category"}
        cats = []
        for fld in (train.schema if train else []):
            t = fld.type
            if fld.name in skip:
                continue
            if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)
                    or pa.types.is_boolean(t) or fld.name in declared):
                cats.append(fld.name)
        self.cats = sorted(cats)

    def targets(self) -> list[str]:
        return self.cats

    def finalize(self, state: MismatchState, ctx: AuditContext) -> Outcome:
        if not self.cats:
            raise Skip("the training data has no categorical columns")
        metrics: dict[str, Any] = {"columns": [], "high_cardinality": [], "cap": CAP}
        findings = []
        for col in self.cats:
            train = state.counts.get(("train", col), Counts())
            if train.values is None or (len(train.values) > 100 and len(train.values) > ID_LIKE * train.rows):
                metrics["high_cardinality"].append(col)
                continue
            metrics["columns"].append(col)
            for split in ("test", "production", "feedback"):
                if split not in ctx.sources.datasets or col not in ctx.sources.columns(split):
                    continue
                u = self.unseen(state, split, col)
                if u is None or not u["rows"]:
                    continue
                share = u["rows"] / u["split_rows"] if u["split_rows"] else 0.0
                metrics.setdefault(split, {})[col] = {"rows": u["rows"], "distinct": u["distinct"],
                                                      "share": round(share, 6)}
                findings.append(self._finding(split, col, u, share))
        return Outcome(findings=findings, metrics=metrics)

    def _finding(self, split: str, col: str, u: dict[str, Any], share: float) -> Any:
        variants = u["formatting_variant_rows"]
        extra = (f" {variants} of these rows differ from a training value only by case or spaces."
                 if variants else "")
        return self.finding(
            key=(split, col), severity=next(s for b, s in _CAT_SCALE if share >= b),
            title=f"{u['rows']} {split} rows ({share:.1%}) have a {col!r} value never seen in training",
            description=(f"{u['distinct']} distinct values of {col!r} in {split} are absent from the training "
                         f"data, e.g. {', '.join(v for v, _ in u['values'][:5])}.{extra}"),
            remediation=("Apply the same category normalization in every pipeline, map unknown values "
                         "explicitly, and validate inputs against the training vocabulary."),
            evidence={"split": split, "column": col, "rows": u["rows"], "share": round(share, 6),
                      "distinct_unseen": u["distinct"], "unseen_values": u["values"],
                      "formatting_variant_rows": variants},
            location=Location(artifact=self.spec.display(self.sources.datasets[split].uri), column=col),
        )
