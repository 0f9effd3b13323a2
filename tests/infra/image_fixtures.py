"""Build container images in the test's temp folder: layer tars, ``docker save`` archives and
OCI layouts, written with tarfile + json alone (no daemon), plus the payloads planted in them.

The malicious pickle is generated, never committed, and never loaded: ``pickle.dumps`` only
records the ``os.system`` reference.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

HF_TOKEN = "hf_" + "QmRkTzXw9vLpA3sEe7YnJc2UgHbKd5MtRq"  # 37 chars, shaped like a real token
WANDB_KEY = "3f9a1c0be47d25a86f01c9e3b7d4a2f58c6e0b19"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def evil_pickle() -> bytes:
    import pickle

    return pickle.dumps({"weights": [0.1, 0.2], "hook": _Evil()}, protocol=4)


def sklearn_joblib() -> bytes:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


@dataclass(frozen=True)
class M:
    """One layer member."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    mode: int = 0o644
    link: str = ""


def layer_tar(members: list[M]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type, info.mode, info.linkname = m.type, m.mode, m.link
            info.size = len(m.data) if m.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(m.data) if info.size else None)
    return buf.getvalue()


def compress(data: bytes, how: str | None) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_for(layers: list[bytes], *, user: str = "", ports: tuple[int, ...] = (), env: tuple[str, ...] = (),
               history: tuple[str, ...] = ()) -> dict:
    return {"architecture": "amd64", "os": "linux",
            "config": {"User": user, "ExposedPorts": {f"{p}/tcp": {} for p in ports}, "Env": list(env)},
            "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in layers]},
            "history": [{"created_by": h} for h in history]}


@dataclass
class Archive:
    """Named files of an image archive, written as a tar or a folder."""

    files: dict[str, bytes] = field(default_factory=dict)

    def write_tar(self, path: Path) -> Path:
        with tarfile.open(path, "w") as tar:
            for name, data in self.files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    def write_dir(self, path: Path) -> Path:
        for name, data in self.files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
        return path


def docker_save_legacy(layers: list[bytes], config: dict, tag: str = "demo:latest") -> Archive:
    """``docker save`` before Docker 25: <sha>.json config, <id>/layer.tar layers (uncompressed)."""
    arch = Archive()
    cfg = json.dumps(config).encode()
    arch.files[f"{hashlib.sha256(cfg).hexdigest()}.json"] = cfg
    names = []
    for n, tar in enumerate(layers):
        layer_id = hashlib.sha256(f"v1-{n}".encode()).hexdigest()
        arch.files[f"{layer_id}/VERSION"] = b"1.0"
        arch.files[f"{layer_id}/layer.tar"] = tar
        names.append(f"{layer_id}/layer.tar")
    arch.files["manifest.json"] = json.dumps(
        [{"Config": f"{hashlib.sha256(cfg).hexdigest()}.json", "RepoTags": [tag], "Layers": names}]).encode()
    return arch


def oci(layers: list[bytes], config: dict, *, how: str | None = "gzip", docker25: bool = False,
        tag: str = "demo:latest") -> Archive:
    """An OCI image layout; ``docker25`` adds the manifest.json Docker ≥ 25 writes beside it."""
    arch = Archive()
    cfg = json.dumps(config).encode()
    arch.files[blob(sha(cfg))] = cfg
    descs = []
    for tar in layers:
        data = compress(tar, how)
        arch.files[blob(sha(data))] = data
        kind = {"gzip": "+gzip", "zstd": "+zstd"}.get(how or "", "")
        descs.append({"mediaType": f"application/vnd.oci.image.layer.v1.tar{kind}", "digest": sha(data),
                      "size": len(data)})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(cfg), "size": len(cfg)},
                           "layers": descs}).encode()
    arch.files[blob(sha(manifest))] = manifest
    arch.files["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    arch.files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
         "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]}).encode()
    if docker25:
        arch.files["manifest.json"] = json.dumps([{"Config": blob(sha(cfg)), "RepoTags": [tag],
                                                   "Layers": [blob(d["digest"]) for d in descs]}]).encode()
    return arch


def blob(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def planted_layers() -> list[bytes]:
    """Three layers with every flaw the image tests look for, and a few things that must pass."""
    evil, benign = evil_pickle(), sklearn_joblib()
    base = layer_tar([
        M("app", type=tarfile.DIRTYPE, mode=0o755), M("app/models", type=tarfile.DIRTYPE, mode=0o755),
        M("app/models/old_evil.pkl", evil), M("app/models/classifier.joblib", benign),
        M("app/cache", type=tarfile.DIRTYPE, mode=0o755), M("app/cache/stale.pkl", evil),
        M("usr/bin/sudo", b"\x7fELF", mode=0o4755), M("usr/local/bin/helper", b"\x7fELF", mode=0o4755),
        M("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
    ])
    middle = layer_tar([
        M("app/models/.wh.old_evil.pkl"), M("app/cache/.wh..wh..opq"),
        M("app/cache/fresh.txt", b"nothing to see\n"),
        M("app/.env", f"DEBUG=0\nHF_TOKEN={HF_TOKEN}\n".encode()),
        M("app/models/model.pkl", evil, mode=0o666),
    ])
    top = layer_tar([M("etc/ld.so.preload", b"/usr/lib/libhook.so\n")])
    return [base, middle, top]


def planted_config(layers: list[bytes]) -> dict:
    return config_for(layers, user="", ports=(8080, 22),
                      env=("PATH=/usr/local/bin:/usr/bin", "OLLAMA_HOST=0.0.0.0", f"WANDB_API_KEY={WANDB_KEY}"),
                      history=("COPY . /app", "RUN pip install -r requirements.txt"))
