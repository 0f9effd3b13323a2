"""The second pass over an image: read the few files that matter and judge them.

Which files are read is decided from the first pass's headers alone: model files (by a model
suffix, or by pickle/numpy/GGUF/torch magic in their first bytes) go to the artifact scanner,
spilled to a temporary file only past a few MB; small text files outside the package trees
(``.env``, configs, scripts, shell history, tokens) go to the secret detectors. Buried files
— deleted or replaced by a later layer — are read too: ``docker save`` still ships them, so a
``RUN rm .env`` hides nothing. Each layer holding a wanted file is streamed once more and the
walk stops after its last wanted member.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..findings import Severity
from ..scan.base import ScanContext, ScanIssue, Where
from ..scan.detect import GGUF, NPY, TORCH_LEGACY_MAGIC, suffix_of
from .base import InfraIssue
from .image_layers import Buried, Entry, FileView, layer_where, walk_layer
from .image_layout import ImageRef
from .image_secrets import find_secrets
from .image_store import BlobStore, Report, incomplete
from .image_stream import CHUNK, Budget

MODEL_SUFFIXES = frozenset([".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".bin", ".safetensors",
                            ".onnx", ".h5", ".hdf5", ".keras", ".gguf", ".npy", ".npz", ".sav"])
# ``.bin`` is firmware and data in these trees, never a model: only content makes one there
SYSTEM_BIN = ("usr/lib/firmware/", "lib/firmware/", "lib/modules/", "usr/lib/modules/", "boot/", "usr/share/")
TEXT_SUFFIXES = frozenset([".env", ".cfg", ".conf", ".ini", ".json", ".yaml", ".yml", ".toml", ".properties",
                           ".sh", ".bash", ".zsh", ".py", ".txt", ".ipynb", ".pem", ".key", ".tfvars", ".js",
                           ".ts", ".netrc", ".npmrc", ".pypirc", ".credentials"])
TEXT_NAMES = frozenset([".env", ".netrc", ".npmrc", ".pypirc", ".git-credentials", ".bash_history",
                        ".python_history", ".zsh_history", ".dockercfg", "credentials", "config", "token",
                        "dockerfile", "settings", "environment"])
# package trees: thousands of files of vendor code and test fixtures, not the team's secrets
PACKAGE_TREES = ("usr/lib/", "usr/lib64/", "usr/share/", "usr/include/", "usr/src/", "lib/", "lib64/",
                 "usr/local/lib/", "var/lib/dpkg/", "var/lib/apt/", "var/cache/", "proc/", "sys/",
                 "etc/ssl/", "etc/ca-certificates/", "opt/conda/pkgs/")
PACKAGE_PARTS = ("/site-packages/", "/dist-packages/", "/node_modules/", "/__pycache__/")
PRELOAD = "etc/ld.so.preload"


def is_model(entry: Entry) -> bool:
    if entry.kind not in ("file", "hardlink") or entry.content is None:
        return False
    suffix = suffix_of(entry.path)
    if suffix in MODEL_SUFFIXES and not (suffix == ".bin" and entry.path.startswith(SYSTEM_BIN)):
        return True
    head = entry.head
    return ((head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
            or head.startswith((NPY, GGUF, TORCH_LEGACY_MAGIC[:8])))


def is_text(entry: Entry, cap: int) -> bool:
    if entry.kind not in ("file", "hardlink") or entry.content is None or not 0 < entry.size:
        return False
    if entry.path == PRELOAD:
        return True
    path = entry.path
    if path.startswith(PACKAGE_TREES) or any(part in f"/{path}" for part in PACKAGE_PARTS):
        return False
    base = path.rsplit("/", 1)[-1].lower()
    return entry.size <= cap * 16 and (suffix_of(base) in TEXT_SUFFIXES or base in TEXT_NAMES
                                       or base.startswith(".env"))


@dataclass(frozen=True, kw_only=True)
class Job:
    purpose: str  # "model" or "text"
    entry: Entry
    buried: Buried | None = None


@dataclass(kw_only=True)
class Counts:
    models: int = 0
    texts: int = 0
    bytes_read: int = 0


def plan(view: FileView, text_cap: int, max_texts: int) -> tuple[dict[int, dict[int, list[Job]]], bool]:
    """Which members to read, per layer and member ordinal; False when the text cap cut the list."""
    jobs: dict[int, dict[int, list[Job]]] = defaultdict(lambda: defaultdict(list))
    texts = 0
    items: list[tuple[Entry, Buried | None]] = [(e, None) for e in view.entries.values()]
    items += [(b.entry, b) for b in view.buried]
    for entry, buried in items:
        for purpose, wanted in (("model", is_model(entry)), ("text", is_text(entry, text_cap))):
            if not wanted or entry.content is None:
                continue
            if purpose == "text":
                texts += 1
                if texts > max_texts:
                    continue
            layer, seq = entry.content
            jobs[layer][seq].append(Job(purpose=purpose, entry=entry, buried=buried))
    return jobs, texts <= max_texts


def read_files(store: BlobStore, image: ImageRef, view: FileView, budget: Budget, report: Report, *,
               label: str, policy: Any) -> Counts:
    """Stream the layers again and scan every planned member."""
    limits = budget.limits
    jobs, all_texts = plan(view, limits.text_bytes, limits.max_text_files)
    if not all_texts:
        report(InfraIssue(rule="infra.image.secrets_incomplete", severity=Severity.MEDIUM, path=label,
                          message=f"more than {limits.max_text_files} text files: the rest were not searched "
                          "for secrets", evidence={"cap": limits.max_text_files},
                          remediation="Scan the image's application folders separately."))
    counts = Counts()
    for index in sorted(jobs):
        wanted = jobs[index]
        last = max(wanted)

        def visit(seq: int, info: Any, tar: Any, wanted: dict[int, list[Job]] = wanted, last: int = last) -> bool:
            for_member = wanted.get(seq)
            if for_member:
                _read(tar, info, for_member, image, budget, report, label, policy, counts)
            return seq < last

        walk_layer(store, image, index, budget, report, label=label, verify=False, visit=visit)
    return counts


def _read(tar: Any, info: Any, jobs: list[Job], image: ImageRef, budget: Budget, report: Report,
          label: str, policy: Any, counts: Counts) -> None:
    limits = budget.limits
    fh = tar.extractfile(info)
    if fh is None:
        return
    with tempfile.SpooledTemporaryFile(max_size=limits.spool_bytes) as spool:
        want_model = any(j.purpose == "model" for j in jobs)
        cap = limits.model_bytes if want_model else limits.text_bytes
        if want_model and info.size > cap:
            for job in jobs:
                report(incomplete(_where(label, image, job.entry), f"the model file is {info.size} bytes, over "
                                  f"the {cap}-byte cap for files scanned inside an image"))
            return
        left = min(info.size, cap)
        while left > 0 and (chunk := fh.read(min(CHUNK, left))):
            spool.write(chunk)
            left -= len(chunk)
        counts.bytes_read += spool.tell()
        for job in jobs:
            spool.seek(0)
            if job.purpose == "model":
                counts.models += 1
                _scan_model(spool, job, image, report, label, policy)
            else:
                counts.texts += 1
                _scan_text(spool.read(limits.text_bytes), job, image, report, label)


def _where(label: str, image: ImageRef, entry: Entry) -> str:
    return layer_where(label, image.layers[entry.layer], entry.path)


def _scan_model(spool: Any, job: Job, image: ImageRef, report: Report, label: str, policy: Any) -> None:
    from ..scan import dispatch

    where = _where(label, image, job.entry)
    ctx = ScanContext(policy=policy)
    dispatch(spool, ctx, Where(path=where), job.entry.path)
    if job.buried is None:
        for issue in ctx.issues:
            report(_from_scan(issue, image.layers[job.entry.layer].label))
        return
    found = [i for i in ctx.issues if i.severity.rank >= Severity.MEDIUM.rank]
    if found:
        worst = max(found, key=lambda i: i.severity.rank)
        report(InfraIssue(
            rule="infra.image.buried_model", severity=Severity.MEDIUM, path=where,
            message=f"{job.entry.path} is {job.buried.how} (layer {job.buried.removed_in + 1}), so a container does "
            f"not see it, but it still ships in the image layers and its scan found {worst.severity}: {worst.message}",
            evidence={"layer": image.layers[job.entry.layer].label, "removed_in_layer": job.buried.removed_in + 1,
                      "how": job.buried.how, "findings": [{"kind": i.kind, "severity": str(i.severity),
                                                           "message": i.message} for i in found[:5]]},
            remediation="Remove the file in the same layer that adds it (multi-stage build), so it never ships."))


def _from_scan(issue: ScanIssue, layer: str) -> InfraIssue:
    return InfraIssue(rule="infra.image.artifact", severity=issue.severity, path=str(issue.where),
                      message=issue.message, remediation=issue.remediation,
                      evidence={"kind": issue.kind, "layer": layer, "offset": issue.offset, **issue.detail})


def _scan_text(data: bytes, job: Job, image: ImageRef, report: Report, label: str) -> None:
    if b"\0" in data[:8192]:
        return  # binary despite its name
    where = _where(label, image, job.entry)
    text = data.decode("utf-8", "replace")
    if job.entry.path == PRELOAD and job.buried is None:
        libs = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if libs:
            report(InfraIssue(rule="infra.image.ld_preload", severity=Severity.HIGH, path=where,
                              message=f"/etc/ld.so.preload loads {', '.join(libs[:3])} into every process of the "
                              "container: a classic persistence and hijack hook",
                              evidence={"libraries": libs[:10]},
                              remediation="Remove /etc/ld.so.preload from the image; link libraries explicitly."))
    gone = f" ({job.buried.how}, but still in the image layers)" if job.buried else ""
    for hit in find_secrets(text):
        report(InfraIssue(rule="infra.image.secret", severity=Severity.HIGH, path=where, line=hit.line,
                          message=f"{hit.type} in {job.entry.path}{gone}: {hit.redacted}",
                          evidence={"type": hit.type, "redacted": hit.redacted, "length": hit.length,
                                    "layer": image.layers[job.entry.layer].label, "buried": job.buried is not None},
                          remediation="Revoke and rotate the credential, then rebuild without it: pass secrets at "
                          "run time (a mounted secret or BuildKit --mount=type=secret), never COPY them."))
