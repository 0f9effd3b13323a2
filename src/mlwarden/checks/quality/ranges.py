"""data.quality.out_of_range — values that break the spec's feature constraints and relations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...constraints import Constraint, ConstraintError, applicable, evaluate, parse_all
from ...findings import Location, Severity
from ...registry import AuditContext, FoldCheck, Outcome, register
from ...sources.datasets import Batch
from ..common import SAMPLE_IDS, py, row_ids


@register
class OutOfRange(FoldCheck):
    """Finds values outside the constraints the spec's ``features:`` and ``constraints:`` declare.

    **What it finds.** Per split and constrained feature: values below ``min`` or above
    ``max``, values outside ``values`` (categories), values that do not parse as the
    declared ``type``, values off their ``step`` grid, and rows of a one-hot ``group`` that do
    not have exactly one column set. Per split and relational constraint (``open_acc <=
    total_acc``): the rows that break it (rows with a missing value it reads are counted as
    not applicable, not as violations), and constraints naming columns the split lacks.
    Reports counts, the observed range and sample row ids.

    **Severity.** Medium in training and feedback data (out-of-range rows are corrupt or
    injected, and the model learns from them), low in test and production data.

    **Why it matters.** Constraints are the contract between data producers and the
    model; rows that break them are the first thing an attacker or a broken upstream job
    produces, and adversarial inputs often live just outside the valid range.

    **How to fix.** Reject or quarantine violating rows at ingestion and find their
    source; if the constraint is wrong, fix the spec.
    """

    id = "data.quality.out_of_range"
    title = "Values respect the declared feature constraints"
    needs = ("data",)
    stage = "data"
    references = ("OWASP-ML02", "OWASP-ML01", "NIST-MEASURE")

    @classmethod
    def unmet(cls, spec: Any) -> str | None:
        return super().unmet(spec) or (None if spec.features or spec.constraints
                                       else "needs constraints under `features:` or `constraints:` in the spec")

    def _relations(self) -> list[Constraint]:
        return parse_all(self.spec.constraints)

    def columns(self, split: str) -> list[str]:
        wanted = list(self.spec.features) + [c for r in self._relations() for c in r.columns]
        cols = list(dict.fromkeys(c for c in wanted if c in self.sources.columns(split)))
        if self.spec.data.id and self.spec.data.id in self.sources.columns(split):
            cols.append(self.spec.data.id)
        return cols

    def init(self) -> dict:
        return {}

    def update(self, state: dict, batch: Batch) -> dict:
        rb = batch.data
        self._update_relations(state, batch)
        self._update_groups(state, batch)
        for col, rule in self.spec.features.items():
            if col not in rb.schema.names:
                continue
            arr = rb.column(col)
            bad, kind = _violations(arr, rule)
            entry = state.setdefault((batch.split, col), {"rows": 0, "bad": 0, "kinds": {}, "ids": [],
                                                          "min": None, "max": None})
            entry["rows"] += len(arr)
            _observed(entry, arr)
            n = int(bad.sum())
            if n:
                entry["bad"] += n
                for k in np.unique(kind[bad]):
                    entry["kinds"][str(k)] = entry["kinds"].get(str(k), 0) + int((kind[bad] == k).sum())
                if len(entry["ids"]) < SAMPLE_IDS:
                    ids = row_ids(batch, self.spec.data.id)[bad]
                    entry["ids"].extend(py(v) for v in ids[: SAMPLE_IDS - len(entry["ids"])])
        return state

    def merge(self, a: dict, b: dict) -> dict:
        for key, e in b.items():
            if key not in a:
                a[key] = e
                continue
            m = a[key]
            m["rows"] += e["rows"]
            m["bad"] += e["bad"]
            for k, v in e["kinds"].items():
                m["kinds"][k] = m["kinds"].get(k, 0) + v
            m["ids"] = (m["ids"] + e["ids"])[:SAMPLE_IDS]
            if "not_applicable" in m:
                m["not_applicable"] += e["not_applicable"]
                continue
            for f, pick in (("min", min), ("max", max)):
                vals = [v for v in (m[f], e[f]) if v is not None]
                m[f] = pick(vals) if vals else None
        return a

    def finalize(self, state: dict, ctx: AuditContext) -> Outcome:
        findings: list[Any] = []
        metrics: dict[str, Any] = {}
        for (split, col), e in sorted(state.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            if isinstance(col, tuple):
                metrics.setdefault(split, {}).setdefault("constraints", {})[col[1]] = {
                    k: e[k] for k in ("rows", "bad", "not_applicable", "missing_columns")}
            else:
                metrics.setdefault(split, {})[col] = {k: e[k] for k in ("rows", "bad", "kinds", "min", "max")}
            if isinstance(col, tuple):
                if e["bad"] or (e["missing_columns"] and not e["rows"]):
                    findings.append(self._relation_finding(split, col[1], e))
                continue
            if not e["bad"]:
                continue
            rule = self.spec.features[col]
            findings.append(self.finding(
                key=(split, col), severity=Severity.MEDIUM if split in ("train", "feedback") else Severity.LOW,
                title=f"{col}: {e['bad']} of {e['rows']} values in data.{split} break the spec's constraints",
                description=(f"The spec declares {col} as {rule.model_dump(exclude_defaults=True)}; observed "
                             f"{e['kinds']} (range seen: {e['min']} to {e['max']})."),
                remediation="Quarantine the violating rows and trace their source; fix the spec if it is wrong.",
                evidence={"split": split, "violations": e["bad"], "rows": e["rows"], "by_kind": e["kinds"],
                          "sample_row_ids": e["ids"], "observed_min": e["min"], "observed_max": e["max"]},
                location=Location(artifact=self.spec.display(self.sources.datasets[split].uri), column=col,
                                  rows=tuple(e["ids"]))))
        return Outcome(findings=findings, metrics=metrics)


    def _update_relations(self, state: dict, batch: Batch) -> None:
        try:
            relations = self._relations()
        except ConstraintError:  # the spec validated them; kept for specs built in code
            return
        rb = batch.data
        for r in relations:
            key = (batch.split, ("constraint", r.text))
            entry = state.setdefault(key, {"rows": 0, "bad": 0, "not_applicable": 0, "ids": [],
                                           "missing_columns": [], "kinds": {}})
            missing = [c for c in r.columns if c not in rb.schema.names]
            if missing:
                entry["missing_columns"] = missing
                continue
            env = {c: rb.column(c).to_numpy(zero_copy_only=False) for c in r.columns}
            try:
                ok, app = evaluate(r, env), applicable(r, env)
            except ConstraintError as e:  # text where the constraint does arithmetic: say so once
                entry["missing_columns"] = [str(e)]
                continue
            bad = app & ~ok
            entry["rows"] += rb.num_rows
            entry["not_applicable"] += int((~app).sum())
            self._count(entry, batch, bad)

    def _update_groups(self, state: dict, batch: Batch) -> None:
        rb = batch.data
        groups: dict[str, list[str]] = {}
        for name, f in self.spec.features.items():
            if f.group:
                groups.setdefault(f.group, []).append(name)
        for g, cols in groups.items():
            if not all(c in rb.schema.names for c in cols):
                continue
            text = f"one-hot group {g}: exactly one of {', '.join(cols)} is 1"
            entry = state.setdefault((batch.split, ("constraint", text)),
                                     {"rows": 0, "bad": 0, "not_applicable": 0, "ids": [], "missing_columns": [],
                                      "kinds": {}})
            block = np.column_stack([np.asarray(pc.cast(rb.column(c), pa.float64()).fill_null(np.nan)) for c in cols])
            app = ~np.isnan(block).any(axis=1)
            onehot = np.all((block == 0) | (block == 1), axis=1) & (block.sum(axis=1) == 1)
            entry["rows"] += rb.num_rows
            entry["not_applicable"] += int((~app).sum())
            self._count(entry, batch, app & ~onehot)

    def _count(self, entry: dict, batch: Batch, bad: np.ndarray) -> None:
        n = int(bad.sum())
        if n:
            entry["bad"] += n
            if len(entry["ids"]) < SAMPLE_IDS:
                ids = row_ids(batch, self.spec.data.id)[bad]
                entry["ids"].extend(py(v) for v in ids[: SAMPLE_IDS - len(entry["ids"])])

    def _relation_finding(self, split: str, text: str, e: dict) -> Any:
        where = self.spec.display(self.sources.datasets[split].uri)
        if e["missing_columns"] and not e["rows"]:
            return self.finding(
                key=(split, text, "columns"), severity=Severity.LOW,
                title=f"constraint {text!r} cannot be checked on data.{split}",
                description=f"It reads what data.{split} lacks or cannot compute: {', '.join(e['missing_columns'])}.",
                remediation="Fix the column names in the spec's constraints, or add the columns to the data.",
                evidence={"split": split, "constraint": text, "missing_columns": e["missing_columns"]},
                location=Location(artifact=where))
        return self.finding(
            key=(split, text), severity=Severity.MEDIUM if split in ("train", "feedback") else Severity.LOW,
            title=f"{e['bad']} of {e['rows']} rows of data.{split} break the constraint {text!r}",
            description=(f"The spec says every real input satisfies {text!r}; {e['bad']} rows of data.{split} do not "
                         f"({e['not_applicable']} rows with a missing value were not judged). Rows that break the "
                         "relations real inputs obey are corrupt, injected or a sign that the constraint is wrong."),
            remediation="Quarantine the violating rows and trace their source; fix the constraint if it is wrong.",
            evidence={"split": split, "constraint": text, "violations": e["bad"], "rows": e["rows"],
                      "not_applicable": e["not_applicable"], "sample_row_ids": e["ids"]},
            location=Location(artifact=where, rows=tuple(e["ids"])))


def _violations(arr: pa.Array, rule: Any) -> tuple[np.ndarray, np.ndarray]:
    """A mask of violating rows and, per row, which rule it broke."""
    n = len(arr)
    bad = np.zeros(n, dtype=bool)
    kind = np.full(n, "", dtype=object)
    valid = ~np.asarray(arr.is_null(), dtype=bool)
    numeric = pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type)
    if rule.type in ("int", "float") and not numeric:
        parsed = pc.cast(arr, pa.float64(), safe=False) if pa.types.is_boolean(arr.type) else _parse(arr)
        unparsable = valid & np.asarray(parsed.is_null(), dtype=bool)
        bad |= unparsable
        kind[unparsable] = "not a number"
        arr, numeric = parsed, True
    if numeric:
        x = np.asarray(pc.cast(arr, pa.float64()).fill_null(np.nan), dtype=np.float64)
        if rule.type == "int":
            frac = valid & np.isfinite(x) & (np.trunc(x) != x)
            bad |= frac
            kind[frac] = "not an integer"
        step = getattr(rule, "step", None)
        if step:
            k = x / step
            off = valid & np.isfinite(x) & (np.abs(k - np.round(k)) > 1e-6)
            bad |= off
            kind[off] = f"not a multiple of step {step:g}"
        if rule.min is not None:
            low = valid & (x < rule.min)
            bad |= low
            kind[low] = "below min"
        if rule.max is not None:
            high = valid & (x > rule.max)
            bad |= high
            kind[high] = "above max"
    if rule.values is not None:
        allowed = pa.array([str(v) for v in rule.values])
        text = pc.cast(arr, pa.string()) if not pa.types.is_string(arr.type) else arr
        outside = valid & ~np.asarray(pc.is_in(text, value_set=allowed).fill_null(True), dtype=bool)
        bad |= outside
        kind[outside] = "not an allowed value"
    return bad, kind


def _parse(arr: pa.Array) -> pa.Array:
    try:
        return pc.cast(arr, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        texts = arr.to_pylist()
        out = []
        for t in texts:
            try:
                out.append(float(t) if t is not None else None)
            except (TypeError, ValueError):
                out.append(None)
        return pa.array(out, pa.float64())


def _observed(entry: dict, arr: pa.Array) -> None:
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        return
    mm = pc.min_max(arr)
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    if lo is not None:
        entry["min"] = lo if entry["min"] is None else min(entry["min"], lo)
        entry["max"] = hi if entry["max"] is None else max(entry["max"], hi)
