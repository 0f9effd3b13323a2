"""data.quality.duplicates — repeated rows within one split.

The answer needs a record per distinct row: its hash and its first row (ordinal and id),
25 bytes, held in a :class:`~mlwarden.checks.data.keyruns.KeyRuns` that
spills to disk past its limit; plus, as records flagged ``rep``, the earliest rows known to
repeat another (at most :data:`SAMPLE` a chunk). Repeated rows = rows − distinct rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...findings import Location, Severity
from ...registry import AuditContext, FoldCheck, Outcome, register
from ...sources.datasets import Batch
from ..common import py, row_ids
from ..data.keyruns import Columns, KeyRuns, key_order
from ..data.rowhash import row_hashes

SAMPLE = 20


def reduce_rows(c: Columns) -> Columns:
    """One head record per hash (its first row: smallest ordinal) and the SAMPLE
    earliest known repeats. A repeat dropped here has SAMPLE earlier repeats that stay repeats,
    so it can never be among the first SAMPLE: the sample is exact whatever the merge order."""
    order = key_order(c, ("rep", "ord"))  # per hash: the head (not a known repeat, first row) first
    c = {n: a[order] for n, a in c.items()}
    key = c["key"]
    # a hash's records always travel with its head (a repeat is only ever flagged next to it)
    head = (np.r_[True, key[1:] != key[:-1]] if key.size else np.empty(0, bool)) & (c["rep"] == 0)
    repeats = np.flatnonzero(~head)
    repeats = repeats[np.argsort(c["ord"][repeats], kind="stable")[:SAMPLE]]
    keep = np.sort(np.r_[np.flatnonzero(head), repeats])
    out = {n: a[keep] for n, a in c.items()}
    out["rep"] = (~head[keep]).astype(np.uint8)
    return out


@dataclass
class SplitRows:
    rows: int = 0
    records: KeyRuns = field(default_factory=lambda: KeyRuns(reduce_rows))


@register
class DuplicateRows(FoldCheck):
    """Finds rows repeated within the same split.

    **What it finds.** Rows of a split equal to an earlier row of the same split over
    every column but the id (labels included, normalized as in the leakage checks: ``1``
    equals ``1.0``). Reports how many rows are repeats and sample ids of repeats.

    **Severity.** Low under 1 % of the split, medium from 1 %, high from 10 % in training
    data (a flood of copies weighs the model toward them: oversampling or injection).

    **Why it matters.** Duplicates distort class weights and metrics; a block of
    identical rows added to training data is the simplest poisoning pattern.

    **How to fix.** Deduplicate at ingestion, or keep deliberate duplicates as sample
    weights so they are visible.
    """

    id = "data.quality.duplicates"
    row_finalize = True
    title = "No repeated rows within a split"
    needs = ("data",)
    stage = "data"
    references = ("OWASP-ML02", "OWASP-ML08", "NIST-MEASURE")

    def init(self) -> dict[str, SplitRows]:
        return {}

    def update(self, state: dict[str, SplitRows], batch: Batch) -> dict[str, SplitRows]:
        rb = batch.data
        cols = [c for c in rb.schema.names if c != self.spec.data.id]
        entry = state.setdefault(batch.split, SplitRows())
        entry.rows += rb.num_rows
        n = rb.num_rows
        entry.records.add({"key": row_hashes(rb, cols), "ord": np.arange(batch.offset, batch.offset + n, dtype=np.int64),
                           "id": row_ids(batch, self.spec.data.id), "rep": np.zeros(n, np.uint8)})
        return state

    def merge(self, a: dict[str, SplitRows], b: dict[str, SplitRows]) -> dict[str, SplitRows]:
        for split, sb in b.items():
            sa = a.setdefault(split, SplitRows())
            sa.rows += sb.rows
            sa.records.merge(sb.records)
        return a

    def finalize(self, state: dict, ctx: AuditContext) -> Outcome:
        findings, metrics = [], {}
        for split in sorted(state):
            distinct, reps = 0, []  # type: tuple[int, list[tuple[int, Any]]]
            for c in state[split].records.buckets():  # a hash's records share a bucket
                distinct += int((c["rep"] == 0).sum())
                at = np.flatnonzero(c["rep"])
                reps.extend(zip(c["ord"][at].tolist(), c["id"][at].tolist()))
            state[split].records.close()
            n = state[split].rows
            count = n - distinct
            share = count / n if n else 0.0
            metrics[split] = {"rows": n, "repeated_rows": count, "share": round(share, 6)}
            if not count:
                continue
            sev = Severity.HIGH if share >= 0.10 and split == "train" else \
                Severity.MEDIUM if share >= 0.01 else Severity.LOW
            sample = [py(v) for _, v in sorted(reps, key=lambda r: r[0])[:SAMPLE]]
            findings.append(self.finding(
                key=("repeats", split), severity=sev,
                title=f"{count} of {n} rows of data.{split} ({share:.1%}) repeat an earlier row",
                description=f"Rows of data.{split} identical to another row of the same split over all columns "
                            "but the id.",
                remediation="Deduplicate at ingestion, or record deliberate copies as sample weights.",
                evidence={"split": split, "repeated_rows": count, "rows": n, "share": round(share, 6),
                          "sample_row_ids": sample},
                location=Location(artifact=self.spec.display(self.sources.datasets[split].uri), rows=tuple(sample))))
        return Outcome(findings=findings, metrics=metrics)


