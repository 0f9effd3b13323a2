"""scan_image over one planted image in every archive form: docker save (legacy and Docker ≥ 25),
OCI layouts as tar (gzip, zstd, uncompressed) and as a folder. The same findings must come out
of each, at the same paths inside the image."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_fixtures import (
    HF_TOKEN,
    WANDB_KEY,
    docker_save_legacy,
    oci,
    planted_config,
    planted_layers,
)

from mlwarden.findings import Severity
from mlwarden.infra.image import looks_like_image, scan_image

FORMS = ["docker-legacy", "docker25", "oci-gzip", "oci-zstd", "oci-plain", "oci-dir"]


def build(form: str, tmp_path: Path) -> Path:
    layers = planted_layers()
    config = planted_config(layers)
    if form == "docker-legacy":
        return docker_save_legacy(layers, config).write_tar(tmp_path / "image.tar")
    if form == "oci-dir":
        (tmp_path / "layout").mkdir()
        return oci(layers, config, how="zstd").write_dir(tmp_path / "layout")
    how = {"docker25": "gzip", "oci-gzip": "gzip", "oci-zstd": "zstd", "oci-plain": None}[form]
    return oci(layers, config, how=how, docker25=form == "docker25").write_tar(tmp_path / "image.tar")


@pytest.fixture(params=FORMS)
def scanned(request, tmp_path):
    path = build(request.param, tmp_path)
    return path, scan_image(path)


def at(issues, rule, suffix):
    return [i for i in issues if i.rule == rule and i.path.endswith(suffix)]


def test_every_form_is_recognised_as_an_image(scanned):
    path, _ = scanned
    head = b"" if path.is_dir() else path.read_bytes()[:512]
    assert looks_like_image(path, head)


def test_surviving_malicious_pickle_is_critical_at_its_layer_path(scanned):
    path, issues = scanned
    hits = at(issues, "infra.image.artifact", "/app/models/model.pkl")
    assert hits and max(i.severity.rank for i in hits) == Severity.CRITICAL.rank
    # located as image!/<layer digest>/<path in the image>
    assert hits[0].path.startswith(f"{path}!/sha256:") and hits[0].evidence["layer"].startswith("sha256:")


def test_whiteout_deleted_pickle_is_buried_not_present(scanned):
    _, issues = scanned
    assert not at(issues, "infra.image.artifact", "/app/models/old_evil.pkl")
    buried = at(issues, "infra.image.buried_model", "/app/models/old_evil.pkl")
    assert len(buried) == 1 and buried[0].severity == Severity.MEDIUM
    assert buried[0].evidence["how"] == "deleted by a whiteout" and buried[0].evidence["removed_in_layer"] == 2
    assert any(f["severity"] == "critical" for f in buried[0].evidence["findings"])


def test_opaque_directory_hides_lower_layer_files(scanned):
    _, issues = scanned
    assert not at(issues, "infra.image.artifact", "/app/cache/stale.pkl")
    buried = at(issues, "infra.image.buried_model", "/app/cache/stale.pkl")
    assert buried and buried[0].evidence["how"] == "hidden by an opaque directory"
    summary = next(i for i in issues if i.rule == "infra.image.summary")
    assert summary.evidence["paths"] == 11  # stale.pkl gone, fresh.txt present, whiteout markers not paths


def test_benign_sklearn_joblib_is_scanned_and_clean(scanned):
    _, issues = scanned
    summary = next(i for i in issues if i.rule == "infra.image.summary")
    assert "app/models/classifier.joblib" in summary.evidence["models"]
    assert summary.evidence["models_scanned"] == 4  # model.pkl, classifier.joblib, and the two buried pickles
    assert not [i for i in issues if "classifier.joblib" in i.path and i.severity.rank >= Severity.MEDIUM.rank]


def test_hf_token_in_env_file_is_high_and_redacted(scanned):
    _, issues = scanned
    hits = at(issues, "infra.image.secret", "/app/.env")
    assert len(hits) == 1 and hits[0].severity == Severity.HIGH and hits[0].line == 2
    assert hits[0].evidence["redacted"] == f"{HF_TOKEN[:4]}…({len(HF_TOKEN)} chars)"
    assert HF_TOKEN not in repr(issues) and WANDB_KEY not in repr(issues)


def test_config_user_ports_and_env(scanned):
    _, issues = scanned
    by_rule = {i.rule: i for i in issues}
    assert by_rule["infra.image.root_user"].severity == Severity.HIGH  # root and a model-server port
    assert by_rule["infra.image.ml_port"].evidence["ports"] == [8080]  # 22 is not an ML port
    assert by_rule["infra.image.ollama_host"].severity == Severity.MEDIUM
    wandb = [i for i in issues if i.rule == "infra.image.secret" and i.evidence.get("field") == "config.Env[2]"]
    assert wandb and wandb[0].evidence["type"] == "Weights & Biases API key"


def test_file_modes_and_preload(scanned):
    _, issues = scanned
    assert at(issues, "infra.image.ld_preload", "/etc/ld.so.preload")[0].severity == Severity.HIGH
    assert at(issues, "infra.image.world_writable_model", "/app/models/model.pkl")
    setuid = [i.path for i in issues if i.rule == "infra.image.setuid"]
    assert len(setuid) == 1 and setuid[0].endswith("/usr/local/bin/helper")  # sudo is expected


def test_nothing_incomplete_on_a_well_formed_image(scanned):
    _, issues = scanned
    assert not [i for i in issues if i.rule in ("infra.image.incomplete", "infra.image.digest_mismatch")]
    assert next(i for i in issues if i.rule == "infra.image.summary").evidence["complete"] is True


def test_user_set_and_no_ports_is_not_reported(tmp_path):
    from image_fixtures import M, config_for, layer_tar

    layers = [layer_tar([M("app/readme.txt", b"hello\n")])]
    path = docker_save_legacy(layers, config_for(layers, user="10001:10001")).write_tar(tmp_path / "ok.tar")
    issues = scan_image(path)
    assert [i.rule for i in issues] == ["infra.image.summary"]


def test_root_without_ml_port_is_medium(tmp_path):
    from image_fixtures import M, config_for, layer_tar

    layers = [layer_tar([M("app/readme.txt", b"hello\n")])]
    path = docker_save_legacy(layers, config_for(layers, user="0", ports=(22,))).write_tar(tmp_path / "r.tar")
    root = [i for i in scan_image(path) if i.rule == "infra.image.root_user"]
    assert root and root[0].severity == Severity.MEDIUM


@pytest.mark.parametrize("form", ["docker-legacy", "docker25", "oci-gzip", "oci-dir"])
def test_scan_reports_each_model_in_an_image_once(form, tmp_path):
    """``mlwarden scan`` of a folder holding an image: the models inside its layers are
    infra.images' (layer paths; a deleted one is buried, medium), not also artifact findings
    at critical as archive members. A stray pickle beside the layers is still the artifact
    scan's: nothing read it as a layer."""
    from image_fixtures import evil_pickle

    from mlwarden.scan_report import run_scan

    (tmp_path / "images").mkdir()
    image = build(form, tmp_path / "images")
    stray = tmp_path / "images" / "stray.pkl"
    stray.write_bytes(evil_pickle())
    _, report = run_scan([tmp_path / "images"])
    by_check = {c.id: c.findings for c in report.checks}
    artifact = [f for cid, fs in by_check.items() if cid.startswith("artifact.") for f in fs if f.severity.rank]
    assert artifact and all("stray.pkl" in (f.location.artifact or "") + f.title for f in artifact), \
        [f.title for f in artifact]
    assert not [f for f in artifact if str(image) in (f.location.artifact or "") and "stray" not in f.title]
    images = by_check["infra.images"]
    assert [f for f in images if f.severity == Severity.CRITICAL and "model.pkl" in f.location.artifact]
    assert [f for f in images if f.severity == Severity.MEDIUM and "old_evil.pkl" in f.title]
