"""Row-level manifests say which rows changed; signatures fail closed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mlwarden import manifest
from mlwarden.audit import open_sources, run_audit
from mlwarden.cli import main
from mlwarden.errors import ManifestError
from mlwarden.manifest.signing import SignatureError, keygen, sign, verify
from mlwarden.spec import load_spec


@pytest.fixture
def work(demo_dir: Path, tmp_path: Path) -> Path:
    w = tmp_path / "w"
    shutil.copytree(demo_dir, w)
    spec = load_spec(w / "mlwarden.yaml")
    manifest.create(spec, open_sources(spec).datasets, spec.manifest_path())
    return w


def _tamper(work: Path) -> dict:
    """Flip one label, drop two rows, inject one row; return the truth (ids as text)."""
    df = pd.read_parquet(work / "data" / "train.parquet")
    counts = df["applicant_id"].value_counts()
    unique_ids = counts[counts == 1].index
    flipped, dropped = unique_ids[0], list(unique_ids[1:3])
    df.loc[df["applicant_id"] == flipped, "approve"] = 1 - df.loc[df["applicant_id"] == flipped, "approve"]
    df = df[~df["applicant_id"].isin(dropped)]
    injected = df.iloc[[0]].assign(applicant_id=999_999)
    pd.concat([df, injected]).to_parquet(work / "data" / "train.parquet", index=False)
    return {"altered": [str(flipped)], "removed": sorted(str(d) for d in dropped), "added": ["999999"]}


def test_verify_rows_names_changed_rows(work: Path) -> None:
    truth = _tamper(work)
    spec = load_spec(work / "mlwarden.yaml")
    old = manifest.read(spec.manifest_path())
    [d] = manifest.verify_rows(old, spec.manifest_path(), spec, open_sources(spec).datasets)
    assert d.split == "train" and d.keyed
    assert (d.added, d.removed, d.altered) == (1, 2, 1)
    assert d.samples["altered"] == truth["altered"]
    assert d.samples["removed"] == truth["removed"]
    assert d.samples["added"] == truth["added"]


def test_audit_reports_row_changes(work: Path) -> None:
    truth = _tamper(work)
    report = run_audit(load_spec(work / "mlwarden.yaml"), only=["data.integrity.fingerprint"])
    [check] = report.checks
    rows = [f for f in check.findings if f.title.startswith("data.train: 1 rows added, 2 removed, 1 altered")]
    assert len(rows) == 1 and rows[0].severity.value == "high"
    assert check.metrics["row_changes"]["train"]["samples"]["altered"] == truth["altered"]


def test_rows_without_id_compare_by_content(work: Path) -> None:
    spec_path = work / "mlwarden.yaml"
    spec_path.write_text(spec_path.read_text().replace("  id: applicant_id\n", ""))
    spec = load_spec(spec_path)
    manifest.create(spec, open_sources(spec).datasets, spec.manifest_path())
    df = pd.read_parquet(work / "data" / "production.parquet")
    df.loc[10, "loanamt"] = 1  # one altered row = one removed + one added by content
    df.to_parquet(work / "data" / "production.parquet", index=False)
    [d] = manifest.verify_rows(manifest.read(spec.manifest_path()), spec.manifest_path(), spec,
                               open_sources(spec).datasets)
    assert (d.split, d.keyed, d.added, d.removed) == ("production", False, 1, 1)
    assert d.samples["added"] == [10]


def test_tampered_sidecar_is_refused(work: Path) -> None:
    spec = load_spec(work / "mlwarden.yaml")
    sidecar = work / "mlwarden.manifest.rows.parquet"
    sidecar.write_bytes(sidecar.read_bytes() + b"x")
    with pytest.raises(ManifestError, match="modified after the manifest was created"):
        manifest.verify_rows(manifest.read(spec.manifest_path()), spec.manifest_path(), spec,
                             open_sources(spec).datasets)


def test_sign_and_verify_fail_closed(work: Path, tmp_path: Path) -> None:
    key = tmp_path / "team.key"
    pub = keygen(key)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    m = work / "mlwarden.manifest.json"
    with pytest.raises(SignatureError, match="no signature"):
        verify(m, pub)
    sign(m, key)
    assert len(verify(m, pub)) == 64
    # a different key does not verify
    other = keygen(tmp_path / "other.key")
    with pytest.raises(SignatureError, match="does not verify"):
        verify(m, other)
    # an edited manifest does not match what was signed
    original = m.read_text()
    m.write_text(original.replace('"size"', '"size" ', 1))
    with pytest.raises(SignatureError, match="differs from the manifest that was signed"):
        verify(m, pub)
    m.write_text(original)
    # a forged payload inside the envelope breaks the signature
    sig = m.with_name(m.name + ".sig")
    env = json.loads(sig.read_text())
    env["payload"] = env["payload"][:-8] + "AAAAAAA="
    sig.write_text(json.dumps(env))
    with pytest.raises(SignatureError):
        verify(m, pub)
    sig.write_text("{not json")
    with pytest.raises(SignatureError, match="malformed signature envelope"):
        verify(m, pub)
    with pytest.raises(ManifestError, match="not a PEM public key"):
        verify(m, key)  # a private key where the public one belongs


def test_cli_sign_verify(work: Path, tmp_path: Path, capsys) -> None:
    spec = str(work / "mlwarden.yaml")
    key = tmp_path / "k"
    assert main(["manifest", "keygen", "--out", str(key)]) == 0
    assert main(["manifest", "keygen", "--out", str(key)]) == 2  # never overwrite a key
    assert main(["manifest", "sign", spec, "--key", str(key)]) == 0
    assert main(["manifest", "verify", spec, "--key", f"{key}.pub"]) == 0
    assert "signature: ok" in capsys.readouterr().out
    _tamper(work)
    assert main(["manifest", "verify", spec, "--key", f"{key}.pub"]) == 1
    out = capsys.readouterr().out
    assert "row changes: data.train: 1 added, 2 removed, 1 altered (by id)" in out
    (work / "mlwarden.manifest.json.sig").unlink()
    assert main(["manifest", "verify", spec, "--key", f"{key}.pub"]) == 1
    assert "signature: FAILED" in capsys.readouterr().out
