"""Infra files are recognised by content, names only breaking ties."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from mlwarden.infra.detect import looks_like_infra


@pytest.mark.parametrize(("name", "head", "kind"), [
    ("deploy.txt", b"# x\napiVersion: apps/v1\nkind: Deployment\n", "kubernetes"),
    ("stack.yml", b"version: '3'\nservices:\n  a:\n    image: x\n", "compose"),
    ("anything", b"services:\n  a: {}\n", "compose"),
    ("build.gpu", b"# syntax=docker/dockerfile:1\nARG V=1\nFROM python:3.11\n", "dockerfile"),
    ("Dockerfile.serve", b"", "dockerfile"),
    ("ts.conf", b"inference_address=http://0.0.0.0:8080\n", "torchserve"),
    ("config.properties", b"", "torchserve"),
    ("requirements-serve.txt", b"mlflow==2.9.0\n", "requirements"),
    ("values.yaml", b"replicaCount: 1\n", "kubernetes"),
    ("notes.txt", b"hello FROM somewhere\n", None),
    ("model.pkl", b"\x80\x04\x95", None),
])
def test_kinds(name: str, head: bytes, kind: str | None, tmp_path: Path) -> None:
    assert looks_like_infra(tmp_path / name, head) == kind


def test_unrendered_helm_template_is_left_out(tmp_path: Path) -> None:
    assert looks_like_infra(tmp_path / "chart" / "templates" / "d.yaml", b"replicas: {{ .Values.n }}\n") is None


def test_image_tarball_by_content(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    p = tmp_path / "image.bin"
    p.write_bytes(buf.getvalue())
    assert looks_like_infra(p, p.read_bytes()[:8192]) == "image"
