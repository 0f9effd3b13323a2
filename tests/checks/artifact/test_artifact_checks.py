"""artifact.* in audits and `mlwarden scan`: same findings, right families, right exits."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlwarden.audit import run_audit
from mlwarden.cli import main
from mlwarden.spec import load_spec


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/mlwarden-should-never-exist",))


def _evil() -> bytes:
    return pickle.dumps(_Payload(), protocol=4)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    (d / "evil.pkl").write_bytes(_evil())
    with zipfile.ZipFile(d / "checkpoint.pt", "w") as z:  # torch-like zip, payload under a .bin name
        z.writestr("archive/data.pkl", pickle.dumps({"w": [1.0, 2.0]}))
        z.writestr("archive/extra.bin", _evil())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo("../../etc/cron.d/x")
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
    (d / "bundle.tar.gz").write_bytes(buf.getvalue())
    (d / "model.pkl").write_bytes(_evil()[:-9])  # truncated: parse error after the payload
    (d / "README.md").write_text("# not a model\n")
    return d


def test_scan_cli_json(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    assert main(["scan", str(models), "--format", "json", "--out", str(out)]) == 1
    doc = json.loads(out.read_text())
    by_check: dict[str, list] = {}
    for f in doc["findings"]:
        by_check.setdefault(f["check"], []).append(f)
    crit = [f for f in by_check["artifact.code_execution"] if f["severity"] == "critical"]
    places = {(Path(f["location"]["artifact"]).name, f["location"].get("member")) for f in crit}
    assert ("evil.pkl", None) in places
    assert ("checkpoint.pt", "archive/extra.bin") in places
    assert ("model.pkl", None) in places  # the payload before the break is still found
    assert any(f["evidence"]["kind"] == "archive.path_traversal" for f in by_check["artifact.archive"])
    assert any(f["evidence"]["kind"] == "pickle.parse_error" for f in by_check["artifact.integrity"])
    assert not any("README" in (f["location"].get("artifact") or "") for f in doc["findings"])
    assert not Path("/tmp/mlwarden-should-never-exist").exists()


def test_scan_cli_text_sarif_and_errors(models: Path, tmp_path: Path, capsys) -> None:
    assert main(["scan", str(models / "README.md")]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["scan", str(models / "evil.pkl"), "--format", "sarif", "--out", str(tmp_path / "s.sarif")]) == 1
    sarif = json.loads((tmp_path / "s.sarif").read_text())
    assert sarif["runs"][0]["results"][0]["ruleId"] == "artifact.code_execution"
    assert main(["scan", str(tmp_path / "nope.pkl")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["scan", str(models / "evil.pkl"), "--format", "pdf"]) == 2
    # --allow never admits a gadget
    assert main(["scan", str(models / "evil.pkl"), "--allow", "posix.system", "--allow", "os.system"]) == 1


def test_allow_admits_unknown_class(tmp_path: Path) -> None:
    # a pickle of an unknown third-party class: medium; allowed, it passes
    data = b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x08mypkg.io\x94\x8c\x06Scaler\x94\x93\x94)\x81\x94."
    p = tmp_path / "scaler.pkl"
    p.write_bytes(data)
    assert main(["scan", str(p), "--fail-on", "medium"]) == 1
    assert main(["scan", str(p), "--fail-on", "medium", "--allow", "mypkg.io.Scaler"]) == 0


def test_audit_scans_artifact_and_code_dirs(demo_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(demo_dir, work)
    clean = run_audit(load_spec(work / "mlwarden.yaml"), only=["artifact.*"])
    assert {c.id: c.status for c in clean.checks} == {
        "artifact.archive": "pass", "artifact.code_execution": "pass", "artifact.integrity": "pass"}
    assert "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier" in \
        next(c for c in clean.checks if c.id == "artifact.code_execution").metrics["pickle_globals"]
    (work / "src" / "vendored.bin").write_bytes(_evil())  # a pickle hiding in the code folder
    report = run_audit(load_spec(work / "mlwarden.yaml"), only=["artifact.*"])
    [f] = [f for f in report.findings if f.check == "artifact.code_execution"]
    assert f.severity.value == "critical" and f.location.artifact == "src/vendored.bin"
