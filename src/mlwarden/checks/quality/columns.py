"""data.quality.columns — missing values, constant and mixed-type columns, in one fold.

One fold collects, per split and column: rows, nulls, null-marker strings, numeric-looking
and other strings, and exact value counts up to ``MAX_DISTINCT`` distinct values (past it
the column is "high-cardinality": counts are dropped, so the state stays bounded, and the
result is the same whatever the batching, because the cap is on the union).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, register
from ...sources.datasets import Batch
from ..data.rowhash import value_counts

MAX_DISTINCT = 5_000
NULL_MARKERS = ("", "na", "n/a", "nan", "null", "none", "nil", "-", "?", "missing", "#n/a", "undefined")
_NUMERIC = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"


@dataclass
class ColumnProfile:
    rows: int = 0
    nulls: int = 0
    markers: dict[str, int] = field(default_factory=dict)  # null-marker string (as written) → count
    numeric_strings: int = 0
    other_strings: int = 0
    counts: dict[Any, int] | None = field(default_factory=dict)  # None once past MAX_DISTINCT

    def add(self, other: ColumnProfile) -> ColumnProfile:
        self.rows += other.rows
        self.nulls += other.nulls
        for k, v in other.markers.items():
            self.markers[k] = self.markers.get(k, 0) + v
        self.numeric_strings += other.numeric_strings
        self.other_strings += other.other_strings
        if self.counts is None or other.counts is None:
            self.counts = None
        else:
            for k, v in other.counts.items():
                self.counts[k] = self.counts.get(k, 0) + v
            if len(self.counts) > MAX_DISTINCT:
                self.counts = None
        return self


def profile(arr: pa.Array, *, counts: bool = True) -> ColumnProfile:
    """The profile of one batch of a column; ``counts=False`` (the column is already past
    MAX_DISTINCT) skips the value counts.

    Text is tested per distinct value, weighted by its count, not per row: trimming,
    lower-casing and the numeric regex on every row cost ~90 % of the check's time."""
    p = ColumnProfile(rows=len(arr), nulls=arr.null_count)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    text = pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    if not text and not counts:
        p.counts = None
        return p
    vc = value_counts(arr, nulls=False)
    values, n = vc.field("values"), vc.field("counts")
    if text:
        stripped = pc.utf8_trim_whitespace(values)
        is_marker = pc.is_in(pc.utf8_lower(stripped), value_set=pa.array(NULL_MARKERS))
        if pc.any(is_marker).as_py():
            p.markers = dict(zip(pc.filter(values, is_marker).to_pylist(), pc.filter(n, is_marker).to_pylist()))
        real = pc.invert(is_marker)
        numeric = pc.and_(real, pc.match_substring_regex(stripped, _NUMERIC))
        p.numeric_strings = pc.sum(pc.filter(n, numeric)).as_py() or 0
        p.other_strings = (pc.sum(pc.filter(n, real)).as_py() or 0) - p.numeric_strings
    if not counts or len(vc) > MAX_DISTINCT:
        p.counts = None
    elif pa.types.is_floating(values.type):
        p.counts = {_key(v): c for v, c in zip(values.to_pylist(), n.to_pylist())}
    else:  # _key is the identity on everything but floats
        p.counts = dict(zip(values.to_pylist(), n.to_pylist()))
    return p


def _key(v: Any) -> Any:
    """Value-count keys: numbers by value (1 == 1.0), NaN as one key, others as they are."""
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


@register
class ColumnHealth(FoldCheck):
    """Finds columns with many or inconsistently written missing values, constant and
    near-constant columns, and columns that mix types.

    **What it finds.** Per split and column: the share of nulls plus null-marker strings
    (``""``, ``NA``, ``N/A``, ``null``, ``None``, ``-``, ``?`` …) and columns that spell
    missing more than one way; training columns with one distinct value (constant) or
    whose most common value covers ≥ 99 % of rows (near-constant; columns with more than
    5,000 distinct values are reported as high-cardinality instead); text columns mixing
    numeric-looking values and words (minority ≥ 0.1 %); columns typed differently across
    splits.

    **Severity.** Missing: medium when over half of a training column is missing, low from
    20 %; mixed null markers medium (a marker string is read as a real category), low when
    only nulls and one other form. Constant and near-constant: low. Mixed types: medium.

    **Why it matters.** Markers the pipeline does not recognise become categories or
    zeros; mixed types and markers mean sources were merged carelessly, and that is where
    corrupt or injected rows hide; constant columns hide schema bugs, and a near-constant
    column's rare values are a classic backdoor trigger.

    **How to fix.** Normalise missing values to nulls and parse each column to one type at
    ingestion, sending rows that fail to a quarantine table; drop constant columns and
    review the rare values of near-constant ones.
    """

    id = "data.quality.columns"
    title = "Columns are complete, informative and of one type"
    stage = "data"
    needs = ("data",)
    references = ("OWASP-ML08", "OWASP-ML02", "NIST-MEASURE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.skip_columns = {spec.data.id} - {None}

    def init(self) -> dict[tuple[str, str], ColumnProfile]:
        return {}

    def update(self, state: dict, batch: Batch) -> dict:
        rb = batch.data
        for name in rb.schema.names:
            if name in self.skip_columns:
                continue
            key = (batch.split, name)
            p = profile(rb.column(name), counts=key not in state or state[key].counts is not None)
            state[key] = state[key].add(p) if key in state else p
        return state

    def merge(self, a: dict, b: dict) -> dict:
        for k, v in b.items():
            a[k] = a[k].add(v) if k in a else v
        return a

    def finalize(self, state: dict, ctx: AuditContext) -> Outcome:
        missing = _missing(self, state)
        constant = _constant(self, state)
        mixed = _mixed(self, state, ctx)
        return Outcome(findings=missing.findings + constant.findings + mixed.findings,
                       metrics={**missing.metrics, **constant.metrics, **mixed.metrics}, charts=missing.charts)


def _where(check: FoldCheck, split: str) -> str:
    return check.spec.display(check.sources.datasets[split].uri)


def _missing(self: ColumnHealth, state: dict) -> Outcome:
    findings: list[Any] = []
    table: dict[str, Any] = {}
    for (split, col), p in sorted(state.items()):
        missing = p.nulls + sum(p.markers.values())
        share = missing / p.rows if p.rows else 0.0
        table.setdefault(split, {})[col] = {"missing": missing, "share": round(share, 6),
                                            "markers": dict(sorted(p.markers.items()))}
        sev = Severity.MEDIUM if share > 0.5 else Severity.LOW if share > 0.2 else None
        if sev and split == "train":
            findings.append(self.finding(
                key=("mostly-missing", split, col), severity=sev,
                title=f"{col}: {share:.0%} of data.{split} is missing",
                description=f"{missing} of {p.rows} values of {col} in data.{split} are null or a null marker.",
                remediation="Drop the column, or impute it and record the rule; check why it is empty.",
                evidence={"split": split, "missing": missing, "rows": p.rows, "share": round(share, 6)},
                location=Location(artifact=_where(self, split), column=col)))
        kinds = len(p.markers) + (1 if p.nulls else 0)
        if kinds >= 2:
            findings.append(self.finding(
                key=("mixed-markers", split, col),
                severity=Severity.LOW if set(p.markers) <= {""} else Severity.MEDIUM,
                title=f"{col}: missing values written {kinds} ways in data.{split}",
                description=("Missing values appear as " + ", ".join(
                    [f"null ×{p.nulls}"] * bool(p.nulls) + [f"{k!r} ×{v}" for k, v in sorted(p.markers.items())])
                    + "; markers other than null are read as real values."),
                remediation="Map every marker to null when the data is ingested.",
                evidence={"split": split, "nulls": p.nulls, "markers": dict(sorted(p.markers.items()))},
                location=Location(artifact=_where(self, split), column=col)))
    worst = sorted(((v["share"], f"{s}.{c}") for s, cols in table.items() for c, v in cols.items()), reverse=True)[:10]
    return Outcome(findings=findings, metrics={"columns": table},
                   charts=[Chart(title="Most-missing columns (% of split)", labels=tuple(n for _, n in worst),
                                 values=tuple(100 * s for s, _ in worst), unit="%")])


def _constant(self: ColumnHealth, state: dict) -> Outcome:
    findings: list[Any] = []
    metrics: dict[str, Any] = {"high_cardinality": []}
    for (split, col), p in sorted(state.items()):
        if split != "train":
            continue
        if p.counts is None:
            metrics["high_cardinality"].append(col)
            continue
        present = p.rows - p.nulls
        if not p.counts or not present:
            continue
        top_value, top = max(p.counts.items(), key=lambda kv: (kv[1], str(kv[0])))
        share = top / present
        if len(p.counts) == 1 or share >= 0.99:
            constant = len(p.counts) == 1
            findings.append(self.finding(
                key=("constant" if constant else "near-constant", col), severity=Severity.LOW,
                title=f"{col} is {'constant' if constant else 'near-constant'} in data.train ({share:.2%} one value)",
                description=(f"{col} takes {len(p.counts)} distinct value(s); the most common covers "
                             f"{top} of {present} non-null rows."),
                remediation="Drop the column if it carries no information; review the rare values if not.",
                evidence={"distinct": len(p.counts), "top_share": round(share, 6),
                          "top_value": str(top_value)[:40]},
                location=Location(artifact=_where(self, split), column=col)))
    return Outcome(findings=findings, metrics=metrics)


def _mixed(self: ColumnHealth, state: dict, ctx: AuditContext) -> Outcome:
    findings = []
    for (split, col), p in sorted(state.items()):
        total = p.numeric_strings + p.other_strings
        minority = min(p.numeric_strings, p.other_strings)
        if total and minority and minority / total >= 0.001:
            findings.append(self.finding(
                key=("mixed", split, col), severity=Severity.MEDIUM,
                title=f"{col} mixes numbers and text in data.{split}",
                description=f"{p.numeric_strings} values look numeric and {p.other_strings} do not.",
                remediation="Parse the column to one type when the data is ingested; quarantine rows that fail.",
                evidence={"split": split, "numeric": p.numeric_strings, "text": p.other_strings},
                location=Location(artifact=_where(self, split), column=col)))
    types: dict[str, dict[str, str]] = {}
    for split, ds in ctx.sources.datasets.items():
        for f in ds.schema:
            types.setdefault(f.name, {})[split] = _family(f.type)
    for col, by_split in sorted(types.items()):
        if len(set(by_split.values()) - {"null"}) > 1:  # an all-null column has no type to clash
            findings.append(self.finding(
                key=("split-types", col), severity=Severity.MEDIUM,
                title=f"{col} has different types across splits: {by_split}",
                description="The same column is stored with different types in different splits.",
                remediation="Cast the column to one type in every split before training and evaluation.",
                evidence={"types": by_split}, location=Location(column=col)))
    return Outcome(findings=findings, metrics={"types": types})


def _family(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "text"
    if pa.types.is_temporal(t):
        return "time"
    if pa.types.is_null(t):
        return "null"
    return str(t)
