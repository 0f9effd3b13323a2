"""data.integrity.fingerprint: hashes, rows and schemas; findings against a manifest."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlwarden import manifest
from mlwarden.audit import open_sources, run_audit
from mlwarden.spec import load_spec

CHECK = "data.integrity.fingerprint"


def _result(spec_path: Path):
    report = run_audit(load_spec(spec_path), only=[CHECK])
    [result] = report.checks
    return result


def test_metrics_without_manifest(demo_dir: Path) -> None:
    result = _result(demo_dir / "mlwarden.yaml")
    assert result.status == "fail"
    [f] = result.findings
    assert f.severity.value == "low" and "No manifest" in f.title
    files = {x["name"]: x for x in result.metrics["files"]}
    digest = hashlib.sha256((demo_dir / "models" / "model.joblib").read_bytes()).hexdigest()
    assert files["models/model.joblib"]["sha256"] == digest
    assert result.metrics["rows"]["production"] == 400
    assert result.metrics["rows"]["train"] == pq.ParquetFile(demo_dir / "data" / "train.parquet").metadata.num_rows
    assert result.metrics["schemas"]["train"]["race"] in ("string", "large_string")


def test_findings_against_manifest(demo_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(demo_dir, work)
    spec = load_spec(work / "mlwarden.yaml")
    manifest.write(manifest.collect(spec, open_sources(spec).datasets), spec.manifest_path())
    assert _result(work / "mlwarden.yaml").status == "pass"

    # poison: append rows to production and add a column to test
    prod = pq.read_table(work / "data" / "production.parquet")
    pq.write_table(pa.concat_tables([prod, prod.slice(0, 7)]), work / "data" / "production.parquet")
    test = pq.read_table(work / "data" / "test.parquet")
    pq.write_table(test.append_column("backdoor", pa.array([0] * test.num_rows)), work / "data" / "test.parquet")
    result = _result(work / "mlwarden.yaml")
    by_title = {f.title: f for f in result.findings}
    assert by_title["data/production.parquet changed since the manifest"].severity.value == "high"
    rows = by_title["data.production row count changed"]
    assert rows.evidence == {"before": 400, "after": 407}
    assert by_title["data.test schema changed"].evidence["added"] == ["backdoor"]
    # finding ids are stable fingerprints: the same change gives the same id again
    again = {f.title: f.id for f in _result(work / "mlwarden.yaml").findings}
    assert again == {t: f.id for t, f in by_title.items()}


def test_empty_split_is_a_finding(tmp_path: Path) -> None:
    """A split with a schema and no rows makes every other check pass vacuously: say so."""
    pq.write_table(pa.table({"a": pa.array([], pa.int64()), "y": pa.array([], pa.int64())}), tmp_path / "train.parquet")
    pq.write_table(pa.table({"a": [1, 2], "y": [0, 1]}), tmp_path / "test.parquet")
    (tmp_path / "mlwarden.yaml").write_text("name: e\ndata: {train: train.parquet, test: test.parquet, label: y}\n")
    result = _result(tmp_path / "mlwarden.yaml")
    empty = [f for f in result.findings if f.title == "data.train has no rows"]
    assert len(empty) == 1 and empty[0].severity.value == "high"
    assert result.metrics["rows"] == {"train": 0, "test": 2}
