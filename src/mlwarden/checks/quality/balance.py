"""data.quality.class_balance — how the label's classes are spread in each split."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, register
from ...sources.datasets import Batch


@register
class ClassBalance(FoldCheck):
    """Measures class imbalance of the label in every labelled split.

    **What it finds.** Per split, the count and share of each label value; a training set
    whose rarest class is under 10 % of the rows (imbalanced) or under 1 % (severely
    imbalanced); a test set whose class shares differ from training by more than 10
    points (the test no longer measures the population the model was fitted on).

    **Severity.** Low for imbalance under 10 %, medium under 1 % or for a train/test
    share gap over 10 points.

    **Why it matters.** Accuracy on imbalanced data hides a model that ignores the rare
    class; the rare class is also where a few poisoned rows weigh most. Balancing by
    duplicating rows *before* the split leaks them into the test set.

    **How to fix.** Report per-class metrics, use class weights or resample *after* the
    split (training folds only), and stratify the split on the label.
    """

    id = "data.quality.class_balance"
    title = "Label classes are balanced enough to learn and to measure"
    needs = ("label",)
    stage = "splits"
    references = ("OWASP-ML08", "NIST-MEASURE")

    def columns(self, split: str) -> list[str]:
        return [self.spec.data.label] if self.spec.data.label in self.sources.columns(split) else []

    def init(self) -> dict[str, dict[str, int]]:
        return {}

    def update(self, state: dict, batch: Batch) -> dict:
        label = self.spec.data.label
        if label not in batch.data.schema.names:
            return state
        counts = state.setdefault(batch.split, {})
        for row in pc.value_counts(batch.data.column(label)).to_pylist():
            key = "(missing)" if row["values"] is None else str(row["values"])
            counts[key] = counts.get(key, 0) + row["counts"]
        return state

    def merge(self, a: dict, b: dict) -> dict:
        for split, counts in b.items():
            mine = a.setdefault(split, {})
            for k, v in counts.items():
                mine[k] = mine.get(k, 0) + v
        return a

    def finalize(self, state: dict, ctx: AuditContext) -> Outcome:
        shares = {split: {k: v / sum(c.values()) for k, v in sorted(c.items())} for split, c in state.items() if c}
        findings: list[Any] = []
        train = shares.get("train")
        label = self.spec.data.label
        if train and len(train) > 1:
            rare, share = min(train.items(), key=lambda kv: (kv[1], kv[0]))
            if share < 0.10:
                findings.append(self.finding(
                    key=("imbalance", "train"), severity=Severity.MEDIUM if share < 0.01 else Severity.LOW,
                    title=f"{label}={rare} is {share:.1%} of data.train",
                    description=f"The rarest class of {label} in the training data is {rare!r} with "
                                f"{state['train'][rare]} of {sum(state['train'].values())} rows.",
                    remediation="Report per-class metrics; weight classes or resample the training folds only.",
                    evidence={"class": rare, "share": round(share, 6), "counts": state["train"]},
                    location=Location(artifact=self.spec.display(self.sources.datasets["train"].uri), column=label)))
        if train and "test" in shares:
            gaps = {k: shares["test"].get(k, 0.0) - train.get(k, 0.0) for k in sorted(train.keys() | shares["test"].keys())}
            cls, gap = max(gaps.items(), key=lambda kv: (abs(kv[1]), kv[0]))
            if abs(gap) > 0.10:
                findings.append(self.finding(
                    key=("shift", "test"), severity=Severity.MEDIUM,
                    title=f"{label}={cls} is {shares['test'].get(cls, 0):.1%} of test but {train.get(cls, 0):.1%} of train",
                    description="Class shares differ between train and test by more than 10 points: the test set "
                                "does not represent the data the model was trained for.",
                    remediation="Stratify the split on the label (and resample after splitting, never before).",
                    evidence={"gaps": {k: round(v, 6) for k, v in gaps.items()}},
                    location=Location(column=label)))
        charts = [Chart(title=f"Class shares in data.{split} (%)", labels=tuple(s), values=tuple(100 * v for v in s.values()),
                        unit="%") for split, s in shares.items()]
        return Outcome(findings=findings, metrics={"counts": state, "shares": {k: {c: round(v, 6) for c, v in s.items()}
                                                                                for k, s in shares.items()}},
                       charts=charts)
