"""data.quality.duplicates — repeated rows within one split."""

from __future__ import annotations


import numpy as np

from ...findings import Location, Severity
from ...registry import AuditContext, FoldCheck, Outcome, register
from ...sources.datasets import Batch
from ..common import py, row_ids
from ..data.rowhash import row_hashes

SAMPLE = 20


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
    title = "No repeated rows within a split"
    needs = ("data",)
    stage = "data"
    references = ("OWASP-ML02", "OWASP-ML08", "NIST-MEASURE")

    def init(self) -> dict[str, list]:
        return {}

    def update(self, state: dict, batch: Batch) -> dict:
        rb = batch.data
        cols = [c for c in rb.schema.names if c != self.spec.data.id]
        entry = state.setdefault(batch.split, [])
        entry.append((row_hashes(rb, cols), row_ids(batch, self.spec.data.id)))
        return state

    def merge(self, a: dict, b: dict) -> dict:
        for split, parts in b.items():
            a.setdefault(split, []).extend(parts)
        return a

    def finalize(self, state: dict, ctx: AuditContext) -> Outcome:
        findings, metrics = [], {}
        for split in sorted(state):
            h = np.concatenate([p[0] for p in state[split]])
            ids = np.concatenate([p[1] for p in state[split]])
            _, first = np.unique(h, return_index=True)
            repeat = np.ones(h.size, dtype=bool)
            repeat[first] = False
            count, n = int(repeat.sum()), int(h.size)
            share = count / n if n else 0.0
            metrics[split] = {"rows": n, "repeated_rows": count, "share": round(share, 6)}
            if not count:
                continue
            sev = Severity.HIGH if share >= 0.10 and split == "train" else \
                Severity.MEDIUM if share >= 0.01 else Severity.LOW
            sample = [py(v) for v in ids[repeat][:SAMPLE]]
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


