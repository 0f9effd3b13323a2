"""data.integrity.fingerprint — what every data and model file is, and whether it changed.

sha256 of every data file and of the model artifact, row counts and schemas per split.
When a manifest exists (``manifest:`` in the spec, or ``mlwarden.manifest.json`` beside
it) every file that changed, appeared or vanished since, and every split whose row count
or schema moved, is a finding: silent edits to training data are how poisoning looks from
the outside. Without a manifest there is no baseline, and the check says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...findings import Location, Severity
from ...manifest import Diff, collect, compare, read
from ...registry import AuditContext, Chart, FoldCheck, Outcome, register
from ...sources.datasets import Batch


@register
class Fingerprint(FoldCheck):
    """Fingerprints every data and model file and verifies them against the manifest.

    **What it finds.** Data or model files whose sha256 differs from the manifest, files
    that appeared or vanished, splits whose row count or schema changed. Without a
    manifest, a low finding: nothing would notice a tampered file.

    **Why it matters.** Training data anyone can edit is the cheapest way to poison a
    model (OWASP ML02, ATLAS AML.T0020); a swapped model file is a supply-chain attack
    (AML.T0010). A manifest taken when the data was reviewed turns silent edits into
    loud ones.

    **How to fix.** Review each change; if it is legitimate, record a new baseline with
    ``mlwarden manifest create``; keep the manifest under version control, and restrict
    who can write to the data and model locations.
    """

    id = "data.integrity.fingerprint"
    title = "Data and model files match their manifest"
    needs = ("data",)
    stage = "data"
    references = ("OWASP-ML02", "AML.T0020", "AML.T0010.002", "AML.M0014", "NIST-MEASURE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        path = Path(spec.manifest_path())
        self.baseline = read(path) if path.exists() else None
        # row-level comparison costs a pass over every column: only when there is something to compare
        self.row_level = bool(self.baseline and self.baseline.rows)

    def columns(self, split: str) -> list[str] | None:
        return None if self.row_level else []

    def init(self) -> dict[str, Any]:
        return {"counts": {}, "rows": []}

    def update(self, state: dict[str, Any], batch: Batch) -> dict[str, Any]:
        counts = state["counts"]
        counts[batch.split] = counts.get(batch.split, 0) + batch.data.num_rows
        if self.row_level:
            from ...manifest.rows import batch_rows

            state["rows"].append(batch_rows(batch, self.spec.data.id))
        return state

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        counts = {k: a["counts"].get(k, 0) + b["counts"].get(k, 0) for k in sorted(a["counts"].keys() | b["counts"].keys())}
        return {"counts": counts, "rows": a["rows"] + b["rows"]}

    def finalize(self, state: dict[str, Any], ctx: AuditContext) -> Outcome:
        datasets = ctx.sources.datasets
        rows = {split: state["counts"].get(split, 0) for split in datasets}
        current = collect(self.spec, datasets, map=ctx.engine.map, rows=rows)
        metrics: dict[str, Any] = {
            "rows": rows,
            "files": [{"name": r.name, "role": r.role, "sha256": r.digest, "size": r.size} for r in current.resources],
            "schemas": {s: v["schema"] for s, v in current.splits.items()},
            "subject_sha256": current.subject_digest(),
        }
        chart = Chart(title="Rows per split", labels=tuple(rows), values=tuple(float(v) for v in rows.values()),
                      unit="rows")
        empty = [self.finding(
            key=("empty", split), severity=Severity.HIGH if split == "train" else Severity.MEDIUM,
            title=f"data.{split} has no rows",
            description=f"{self.spec.display(datasets[split].uri)} holds a schema but no rows: every check over "
                        f"data.{split} passes vacuously.",
            remediation="Check the export that writes this split; an empty split is usually a failed job.",
            location=Location(artifact=self.spec.display(datasets[split].uri)))
            for split, n in rows.items() if n == 0]
        path = Path(self.spec.manifest_path())
        if not path.exists():
            metrics["manifest"] = None
            return Outcome(findings=empty + [self.finding(
                key=("no-manifest",), severity=Severity.LOW,
                title="No manifest: changes to data and model files would go unnoticed",
                description=(f"No manifest at {self.spec.display(str(path))}, so nothing records what the "
                             f"{len(current.resources)} data and model files were when they were reviewed."),
                remediation="Run `mlwarden manifest create` after review and keep the manifest under version control.",
                evidence={"expected_manifest": self.spec.display(str(path))},
                location=Location(artifact=self.spec.display(str(path))),
            )], metrics=metrics, charts=[chart])
        assert self.baseline is not None
        diff = compare(self.baseline, current)
        metrics["manifest"] = self.spec.display(str(path))
        metrics["changes"] = {"changed": list(diff.changed), "added": list(diff.added),
                              "removed": list(diff.removed), "rows": diff.rows, "schema": diff.schema}
        findings = empty + self._diff_findings(diff, str(path))
        if self.row_level:
            row_diffs = self._row_diffs(state["rows"], path)
            metrics["row_changes"] = {d.split: d.to_dict() for d in row_diffs}
            findings += [self._row_finding(d) for d in row_diffs]
        return Outcome(findings=findings, metrics=metrics, charts=[chart])

    def _row_diffs(self, batches: list, path: Path) -> list:
        import pyarrow as pa

        from ...errors import ManifestError
        from ...manifest import sha256_file
        from ...manifest import rows as rowfp

        assert self.baseline is not None and self.baseline.rows
        sidecar = path.with_name(self.baseline.rows["name"])
        if not sidecar.exists() or sha256_file(str(sidecar))[0] != self.baseline.rows["digest"]:
            raise ManifestError(f"{sidecar}: row fingerprints are missing or were modified; recreate the manifest")
        current = pa.Table.from_batches(batches, schema=rowfp.SCHEMA)
        return rowfp.compare(rowfp.read(sidecar), current)

    def _row_finding(self, d: Any) -> Any:
        by = f"by {self.spec.data.id}" if d.keyed else "by row content (no id column)"
        return self.finding(
            key=("row-changes", d.split), severity=Severity.HIGH,
            title=f"data.{d.split}: {d.added} rows added, {d.removed} removed, {d.altered} altered since the manifest",
            description=(f"Row fingerprints ({by}) differ from the manifest's: rows were edited, injected or "
                         "dropped. Altered labels and injected rows are how training data is poisoned."),
            remediation="Review the listed rows against their source; restore them, or re-create the manifest "
                        "after review.",
            evidence=d.to_dict(), location=Location(artifact=self.spec.display(self.sources.datasets[d.split].uri),
                                                    rows=tuple(d.samples.get("altered", []) + d.samples.get("added", []))[:20]))

    def _diff_findings(self, diff: Diff, manifest: str) -> list:
        shown = self.spec.display(manifest)
        out = []
        for name in diff.changed:
            out.append(self.finding(
                key=("changed", name), severity=Severity.HIGH, title=f"{name} changed since the manifest",
                description=f"The sha256 of {name} differs from the one recorded in {shown}.",
                remediation="Find out who changed the file and why; if legitimate, re-run `mlwarden manifest create`.",
                location=Location(artifact=name), evidence={"manifest": shown}))
        for name in diff.added:
            out.append(self.finding(
                key=("added", name), severity=Severity.MEDIUM, title=f"{name} is not in the manifest",
                description=f"{name} appeared since {shown} was created.",
                remediation="Review the new file; if it belongs, re-run `mlwarden manifest create`.",
                location=Location(artifact=name), evidence={"manifest": shown}))
        for name in diff.removed:
            out.append(self.finding(
                key=("removed", name), severity=Severity.HIGH, title=f"{name} vanished since the manifest",
                description=f"{name} is recorded in {shown} but no longer part of the pipeline's data.",
                remediation="Restore the file or, if the removal was intended, re-run `mlwarden manifest create`.",
                location=Location(artifact=name), evidence={"manifest": shown}))
        for split, (before, after) in diff.rows.items():
            out.append(self.finding(
                key=("rows", split), severity=Severity.HIGH, title=f"data.{split} row count changed",
                description=f"data.{split} had {before} rows in the manifest and has {after} now.",
                remediation="Rows added or removed silently can poison training; review the change.",
                evidence={"before": before, "after": after}))
        for split, change in diff.schema.items():
            out.append(self.finding(
                key=("schema", split), severity=Severity.MEDIUM, title=f"data.{split} schema changed",
                description=f"Columns of data.{split} changed since the manifest: {change}.",
                remediation="Review the schema change and re-run `mlwarden manifest create` if intended.",
                evidence=change))
        return out
