"""infra: in an audit and in `mlwarden scan`: the serving stack's files, its images, and the
model files its configs point servers at (sent to the artifact scanner)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from image_fixtures import config_for, evil_pickle, oci, planted_layers

from mlwarden.audit import run_audit
from mlwarden.spec import load_spec

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: scorer
  namespace: models
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: ../models/model.pkl
"""


def _pipeline(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pkl").write_bytes(evil_pickle())
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "isvc.yaml").write_text(ISVC)
    layers = planted_layers()
    oci(layers, config_for(layers, user="", ports=(8080,))).write_tar(deploy / "image.tar")
    pq.write_table(pa.table({"x": [1, 2, 3], "label": [0, 1, 0]}), tmp_path / "train.parquet")
    spec = tmp_path / "mlwarden.yaml"
    spec.write_text("name: serving\ndata: {train: train.parquet, label: label}\ninfra: [deploy/]\n")
    return spec


def test_audit_reports_configs_images_and_the_models_they_serve(tmp_path: Path) -> None:
    report = run_audit(load_spec(_pipeline(tmp_path)), only=["infra.*", "artifact.*"])
    by_check = {c.id: c for c in report.checks}
    assert by_check["infra.exposure"].status == "fail"
    exposure = [f for f in by_check["infra.exposure"].findings if f.location.artifact == "deploy/isvc.yaml"]
    assert exposure and exposure[0].severity.value == "critical" and exposure[0].location.line == 3
    images = by_check["infra.images"].findings
    assert any(f.severity.value == "critical" and "image.tar!" in (f.location.artifact or "") for f in images)
    # the model the InferenceService serves was scanned although the spec names no model.artifact
    code = by_check["artifact.code_execution"].findings
    assert any(f.severity.value == "critical" and (f.location.artifact or "").endswith("models/model.pkl") for f in code)


def test_mlwarden_scan_reads_a_folder_of_manifests_and_images(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    out = tmp_path / "scan.json"
    r = subprocess.run([sys.executable, "-m", "mlwarden", "scan", str(tmp_path / "deploy"), "--format", "json",
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    found = json.loads(out.read_text())["findings"]
    checks = {f["check"] for f in found}
    assert {"infra.exposure", "infra.images"} <= checks
    assert all(f["location"].get("line") for f in found if f["check"] == "infra.exposure")
