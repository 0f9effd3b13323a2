"""The command line: exit codes and the exact one-line errors of DESIGN.md's contract."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlwarden.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlwarden.cli", *args], capture_output=True, text=True, timeout=120)


def test_init_writes_example_and_refuses_overwrite(tmp_path: Path, capsys) -> None:
    target = tmp_path / "mlwarden.yaml"
    assert main(["init", str(target)]) == 0
    assert "name: loan-approval" in target.read_text()
    assert main(["init", str(target)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["init", str(target), "--force"]) == 0


def test_checks_lists_and_explains(capsys) -> None:
    assert main(["checks"]) == 0
    out = capsys.readouterr().out
    assert "data.leakage.exact_duplicates" in out and "data.integrity.fingerprint" in out
    assert main(["checks", "--explain", "data.leakage.exact_duplicates"]) == 0
    out = capsys.readouterr().out
    assert "Severity" in out and "OWASP-ML08" in out
    assert main(["checks", "--explain", "no.such"]) == 2


def test_audit_demo_exit_codes_and_reports(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    code = main(["audit", str(demo_dir / "mlwarden.yaml"), "--out", str(out), "--format", "json"])
    assert code == 1  # the demo leaks test rows: a critical finding, above the default --fail-on high
    doc = json.loads((out / "report.json").read_text())
    assert doc["summary"]["worst"] == "critical"
    assert main(["audit", str(demo_dir / "mlwarden.yaml"), "--out", str(out), "--format", "json",
                 "--fail-on", "none"]) == 0
    # --only narrows the plan; skipped-by-filter checks are absent, --skip marks them skipped
    assert main(["audit", str(demo_dir / "mlwarden.yaml"), "--out", str(out), "--format", "json",
                 "--only", "data.integrity.*", "--fail-on", "low"]) == 1
    ids = [c["id"] for c in json.loads((out / "report.json").read_text())["checks"]]
    assert ids == ["data.integrity.fingerprint"]
    assert main(["audit", str(demo_dir / "mlwarden.yaml"), "--out", str(out), "--format", "json",
                 "--only", "data.integrity.*,data.leakage.*", "--skip", "data.leakage.*", "--fail-on", "high"]) == 0
    checks = {c["id"]: c for c in json.loads((out / "report.json").read_text())["checks"]}
    assert checks["data.leakage.exact_duplicates"]["status"] == "skipped"
    assert checks["data.leakage.exact_duplicates"]["message"] == "skipped by --skip"


@pytest.mark.parametrize("flag,value,expect", [
    ("--fail-on", "severe", "unknown severity 'severe'"),
    ("--format", "pdf", "unknown format 'pdf'"),
    ("--engine", "spark", "unknown engine 'spark'"),
])
def test_bad_options_exit_2(demo_dir: Path, tmp_path: Path, capsys, flag: str, value: str, expect: str) -> None:
    assert main(["audit", str(demo_dir / "mlwarden.yaml"), "--out", str(tmp_path), flag, value]) == 2
    assert expect in capsys.readouterr().err


def test_bad_spec_missing_file_and_corrupt_parquet_exit_2_without_traceback(demo_dir: Path, tmp_path: Path) -> None:
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("name: x\ndata: {train: t.parquet, tset: u.parquet}\n")
    r = run("audit", str(bad_spec), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"mlwarden: error: {bad_spec}:2: data: unknown key 'tset' (typo?); see `mlwarden init` for the keys a spec takes"

    missing = tmp_path / "missing.yaml"
    missing.write_text("name: x\ndata: {train: nowhere.parquet}\n")
    r = run("audit", str(missing), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"mlwarden: error: {tmp_path / 'nowhere.parquet'}: data.train: no such file or folder"

    work = tmp_path / "corrupt"
    shutil.copytree(demo_dir, work)
    data = (work / "data" / "test.parquet").read_bytes()
    (work / "data" / "test.parquet").write_bytes(data[: len(data) // 2])  # truncated: footer gone
    r = run("audit", str(work / "mlwarden.yaml"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"mlwarden: error: {work / 'data' / 'test.parquet'}: data.test: corrupt or truncated parquet")


def test_label_column_must_exist(demo_dir: Path, tmp_path: Path, capsys) -> None:
    work = tmp_path / "w"
    shutil.copytree(demo_dir, work)
    spec = work / "mlwarden.yaml"
    spec.write_text(spec.read_text().replace("label: approve", "label: approved"))
    assert main(["audit", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "data.label: column 'approved' is not in data.train" in capsys.readouterr().err


def test_manifest_create_verify_detects_change(demo_dir: Path, tmp_path: Path, capsys) -> None:
    work = tmp_path / "w"
    shutil.copytree(demo_dir, work)
    spec = str(work / "mlwarden.yaml")
    assert main(["manifest", "create", spec]) == 0
    assert (work / "mlwarden.manifest.json").exists()
    assert main(["manifest", "verify", spec]) == 0
    assert "ok: 5 files match the manifest" in capsys.readouterr().out  # 4 splits + the model
    with open(work / "models" / "model.joblib", "ab") as f:
        f.write(b"\0")  # tamper with the model
    (work / "data" / "production.parquet").unlink()
    (work / "data" / "production.parquet").write_bytes((work / "data" / "test.parquet").read_bytes())
    assert main(["manifest", "verify", spec]) == 1
    out = capsys.readouterr().out
    assert "changed: models/model.joblib" in out
    assert "changed: data/production.parquet" in out
    assert "rows: data.production 400 -> " in out
    assert main(["manifest", "verify", spec, "--manifest", str(tmp_path / "none.json")]) == 2


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("mlwarden ")


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_scan_out_unwritable_exits_2_with_one_line(tmp_path: Path, capsys, fmt: str) -> None:
    import pickle

    model = tmp_path / "m.pkl"
    model.write_bytes(pickle.dumps({"a": 1}))
    for target, why in ((tmp_path / "missing" / "scan.out", "No such file or directory"),
                        (tmp_path, "Is a directory")):
        assert main(["scan", str(model), "--format", fmt, "--out", str(target)]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"mlwarden: error: {target}: cannot write the report: {why}"]
    assert main(["scan", str(model), "--format", fmt, "--out", str(tmp_path / "ok.out")]) == 0
    assert "m.pkl" in (tmp_path / "ok.out").read_text()


def test_scan_bad_format_and_missing_path_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["scan", str(tmp_path), "--format", "pdf"]) == 2
    assert "unknown format 'pdf'" in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "nope.pkl")]) == 2
    assert capsys.readouterr().err.strip() == f"mlwarden: error: {tmp_path / 'nope.pkl'}: no such file or folder"
