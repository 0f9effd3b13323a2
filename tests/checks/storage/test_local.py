"""storage.local.data and storage.local.artifact over real files with planted permissions."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlwarden.audit import _finish
from mlwarden.checks.storage import local
from mlwarden.registry import AuditContext, Sources
from mlwarden.spec import load_spec

ROOT = os.geteuid() == 0


@pytest.fixture
def world() -> Iterator[Path]:
    """Two sibling folders in /tmp that others can traverse (pytest's tmp_path is 0700, hiding everything)."""
    top = Path(tempfile.mkdtemp(prefix="mlwarden-storage-"))
    top.chmod(0o755)
    (top / "pipe").mkdir(mode=0o755)
    (top / "elsewhere").mkdir(mode=0o755)
    (top / "pipe").chmod(0o755)
    (top / "elsewhere").chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def _parquet(path: Path, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    path.chmod(mode)
    return path


def _run(cls: type, spec_path: Path):
    spec = load_spec(spec_path)
    check = cls(spec, Sources(datasets={}))
    return _finish(check, AuditContext(spec=spec, sources=check.sources, engine=None), None)  # type: ignore[arg-type]


def _kinds(result) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(kind, role) → (severity, paths), from the findings' evidence."""
    return {(f.evidence["kind"], f.evidence["role"]): (f.severity.value, [p["path"] for p in f.evidence["paths"]])
            for f in result.findings if "kind" in f.evidence}


def _spec(base: Path, text: str) -> Path:
    p = base / "mlwarden.yaml"
    p.write_text(text, encoding="utf-8")
    p.chmod(0o644)
    return p


def test_planted_data_permissions(world: Path) -> None:
    pipe, outside = world / "pipe", world / "elsewhere"
    (pipe / "data").mkdir(mode=0o755)
    (pipe / "data").chmod(0o755)
    _parquet(pipe / "data" / "train.parquet", 0o666)          # world-writable training data
    _parquet(pipe / "data" / "test.parquet", 0o600)           # fine
    prod = pipe / "data" / "prod"
    prod.mkdir(mode=0o700)
    prod.chmod(0o777)                                         # anyone can drop files into production
    _parquet(prod / "part-0.parquet", 0o644)                  # world-readable
    (prod / "sub").mkdir()
    (prod / "sub").chmod(0o1777)                              # sticky, yet new files here join the split
    _parquet(outside / "x.parquet", 0o600)
    (prod / "link.parquet").symlink_to(outside / "x.parquet")  # links out of the spec's folder
    _parquet(outside / "fb.parquet", 0o646)                   # feedback: a symlink to a world-writable file
    (pipe / "data" / "feedback.parquet").symlink_to(outside / "fb.parquet")
    spec = _spec(pipe, "name: p\ndata:\n  train: data/train.parquet\n  test: data/test.parquet\n"
                       "  production: data/prod/\n  feedback: data/feedback.parquet\n")
    result = _run(local.LocalDataPermissions, spec)
    assert result.status == "fail"
    got = _kinds(result)
    assert got[("world_writable", "train")] == ("critical", ["data/train.parquet"])
    assert got[("world_writable", "production")] == ("high", ["data/prod", "data/prod/sub"])
    assert got[("world_writable", "feedback")] == ("critical", [str(outside / "fb.parquet")])
    assert got[("symlink_outside", "feedback")] == ("medium", ["data/feedback.parquet"])
    assert got[("symlink_outside", "production")] == ("medium", ["data/prod/link.parquet"])
    assert got[("world_readable", "production")] == ("low", ["data/prod/part-0.parquet"])
    assert got[("world_readable", "train")] == ("low", ["data/train.parquet"])
    assert ("world_writable", "test") not in got and ("world_readable", "test") not in got
    by = {(f.evidence["kind"], f.evidence["role"]): f for f in result.findings}
    fb = by[("world_writable", "feedback")]
    assert fb.evidence["paths"][0]["mode"] == "0646"
    assert fb.evidence["paths"][0]["via_symlink"] == str(pipe / "data" / "feedback.parquet")
    [item] = by[("world_writable", "train")].evidence["paths"]
    assert (item["mode"], item["owner_uid"]) == ("0666", os.geteuid())
    assert by[("world_writable", "train")].location.artifact == "data/train.parquet"
    # the same tree gives the same finding ids
    assert [f.id for f in _run(local.LocalDataPermissions, spec).findings] == [f.id for f in result.findings]


def test_latent_when_a_parent_hides_it(tmp_path: Path) -> None:
    base = tmp_path / "pipe"
    base.mkdir()
    base.chmod(0o700)                                       # others cannot traverse the spec's folder
    _parquet(base / "train.parquet", 0o666)
    result = _run(local.LocalDataPermissions, _spec(base, "name: p\ndata:\n  train: train.parquet\n"))
    got = _kinds(result)
    assert got == {("world_writable_latent", "train"): ("low", ["train.parquet"])}
    [f] = result.findings
    assert f.evidence["paths"][0]["blocked_by"] in {str(p) for p in [base, *base.parents]}


def test_clean_tree_passes(world: Path) -> None:
    pipe = world / "pipe"
    _parquet(pipe / "data" / "train.parquet", 0o600)
    (pipe / "data").chmod(0o755)
    result = _run(local.LocalDataPermissions, _spec(pipe, "name: p\ndata:\n  train: data/train.parquet\n"))
    assert (result.status, result.findings) == ("pass", ())
    assert result.metrics["paths_examined"] == 3  # the file, data/, the spec's folder
    assert result.metrics["truncated"] is False


def test_artifact_sticky_parent_readable_and_foreign(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = world / "pipe"
    _parquet(pipe / "train.parquet", 0o600)
    shared = pipe / "shared"
    shared.mkdir()
    shared.chmod(0o1777)                                    # like /tmp: sticky and world-writable
    model = shared / "model.joblib"
    model.write_bytes(b"model")
    model.chmod(0o644)
    if ROOT:
        os.chown(model, 4242, 4242)                         # someone else's file
    else:  # without root no file can belong to another user: distrust ourselves instead
        monkeypatch.setattr(local, "trusted_uids", lambda spec: frozenset({os.geteuid() + 1}))
    spec = _spec(pipe, "name: p\ndata:\n  train: train.parquet\nmodel:\n  artifact: shared/model.joblib\n")
    result = _run(local.LocalArtifactPermissions, spec)
    got = _kinds(result)
    assert got[("world_writable_parent_sticky", "artifact")] == ("high", ["shared"])
    assert got[("world_readable", "artifact")] == ("low", ["shared/model.joblib"])
    assert got[("foreign_owner", "artifact")][0] == "medium"
    assert "shared/model.joblib" in got[("foreign_owner", "artifact")][1]
    assert ("world_writable", "artifact") not in got
    # the data check sees neither the artifact nor its folder
    data = _run(local.LocalDataPermissions, spec)
    assert all("shared" not in p for _, paths in _kinds(data).values() for p in paths)


@pytest.mark.skipif(not ROOT, reason="needs root to give a file another group")
def test_group_writable(world: Path) -> None:
    pipe = world / "pipe"
    _parquet(pipe / "train.parquet", 0o664)
    os.chown(pipe / "train.parquet", 0, 4242)               # a group with other potential members
    _parquet(pipe / "test.parquet", 0o660)                  # root's private group: info
    result = _run(local.LocalDataPermissions,
                  _spec(pipe, "name: p\ndata:\n  train: train.parquet\n  test: test.parquet\n"))
    got = _kinds(result)
    assert got[("group_writable", "train")] == ("medium", ["train.parquet"])
    private = local._private_group(os.stat(pipe / "test.parquet"))
    assert got[("group_writable", "test")] == ("info" if private else "low", ["test.parquet"])


def test_walk_is_bounded(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = world / "pipe"
    for i in range(5):
        _parquet(pipe / "data" / f"p{i}.parquet", 0o666)
    monkeypatch.setattr(local, "MAX_PATHS", 3)
    result = _run(local.LocalDataPermissions, _spec(pipe, "name: p\ndata:\n  train: data/\n"))
    assert result.metrics["truncated"] is True and result.metrics["paths_examined"] == 3
    assert any(f.title == "Only the first 3 paths were examined" and f.severity.value == "info"
               for f in result.findings)


def test_skips_without_local_locations(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "name: s\ndata:\n  train: s3://bucket/train.parquet\n")
    result = _run(local.LocalDataPermissions, spec)
    assert result.status == "skipped" and result.message.startswith("no local data location")
    assert local.LocalArtifactPermissions.unmet(load_spec(spec)) == "needs model.artifact in the spec"
