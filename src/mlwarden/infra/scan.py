"""The infra scanner's entry points: ``scan_infra(paths)`` and ``referenced_models(paths)``.

Paths are files, folders (walked, skipping VCS and virtualenv folders) or globs. Each file
is sniffed (:func:`.detect.looks_like_infra`); Kubernetes documents from every file are
checked together (a Service in one file exposes a Deployment in another). A file that
cannot be read as what it claims is one ``infra.parse`` finding; no input raises, except a
path that does not exist (:class:`~mlwarden.infra.base.InfraError`, exit 2 at the CLI).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .base import InfraError, InfraIssue, ModelRef, parse_issue
from .detect import HEAD_BYTES, Kind, looks_like_infra
from .yamldoc import MAX_YAML_BYTES, YamlReadError, decode, load_documents

SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox"})
MAX_FILES = 20_000


@dataclass
class InfraScan:
    issues: list[InfraIssue] = field(default_factory=list)
    models: list[ModelRef] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """Each scanned file and the kind it was read as."""


def expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files (and OCI layout folders) under ``paths``; globs expanded; missing paths raise InfraError."""
    count = 0
    for raw in paths:
        text = str(raw)
        hits = [Path(h) for h in sorted(glob.glob(text, recursive=True))] if glob.has_magic(text) else [Path(text)]
        if not hits or not hits[0].exists():
            raise InfraError(f"infra path {text} does not exist; list Dockerfiles, manifests or folders under `infra:`")
        for p in hits:
            if p.is_dir() and not ((p / "oci-layout").is_file() and (p / "index.json").is_file()):
                for root, dirs, files in os.walk(p):
                    dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
                    if (Path(root) / "oci-layout").is_file() and Path(root) != p:
                        dirs[:] = []
                        yield Path(root)
                        continue
                    for f in sorted(files):
                        count += 1
                        if count > MAX_FILES:
                            return
                        yield Path(root) / f
            else:
                yield p


def _head(p: Path) -> bytes:
    if p.is_dir():
        return b""
    with open(p, "rb") as fh:
        return fh.read(HEAD_BYTES)


def _read(p: Path) -> bytes:
    with open(p, "rb") as fh:
        return fh.read(MAX_YAML_BYTES + 1)


def _scan_file(p: Path, kind: Kind, result: InfraScan, kset: object) -> None:
    path = str(p)
    if kind == "image":
        from .image import scan_image

        result.issues += scan_image(p)
        return
    try:
        text = decode(_read(p))
        if kind == "dockerfile":
            from .dockerfile import check_dockerfile

            result.issues += check_dockerfile(text.encode(), path)
        elif kind == "torchserve":
            from .platform_torchserve import check_properties

            found, models = check_properties(text, path)
            result.issues += found
            result.models += models
        elif kind == "requirements":
            from .requirements import check_requirements

            result.issues += check_requirements(text, path)
        else:
            docs = load_documents(text)
            if kind == "compose" or (len(docs) == 1 and isinstance(docs[0], dict) and "services" in docs[0]
                                     and "apiVersion" not in docs[0]):
                from .compose import check_compose

                result.files[path] = "compose"
                result.issues += check_compose(docs[0], path)
            else:
                kset.add(path, docs)  # type: ignore[attr-defined]
    except YamlReadError as e:
        result.issues.append(parse_issue(path, str(e), e.line))
    except OSError as e:
        result.issues.append(parse_issue(path, f"cannot read: {e.strerror or e}"))


def scan_infra_full(paths: Sequence[str | Path]) -> InfraScan:
    """Every finding and model reference for the infra files under ``paths``."""
    from .kube import KubeSet

    result = InfraScan()
    kset = KubeSet()
    for p in expand(paths):
        try:
            kind = looks_like_infra(p, _head(p))
        except OSError as e:
            result.issues.append(parse_issue(str(p), f"cannot read: {e.strerror or e}"))
            continue
        if kind is None:
            continue
        result.files.setdefault(str(p), kind)
        _scan_file(p, kind, result, kset)
    result.issues += kset.check()
    result.models += kset.models
    result.models = [_localized(m) for m in result.models]
    result.issues.sort(key=InfraIssue.sort_key)
    return result


def _localized(m: ModelRef) -> ModelRef:
    """``m`` with ``local`` set where its URI is a path (relative to the config's folder) that exists."""
    uri = m.uri.removeprefix("file://")
    if "://" in uri or m.local:
        return m
    cand = Path(uri) if Path(uri).is_absolute() else Path(m.path).parent / uri
    return ModelRef(uri=m.uri, path=m.path, line=m.line, context=m.context,
                    local=str(cand) if cand.exists() else None)


def scan_infra(paths: Sequence[str | Path]) -> list[InfraIssue]:
    """Findings for the infra files under ``paths``, most severe first."""
    return scan_infra_full(paths).issues


def referenced_models(paths: Sequence[str | Path]) -> list[ModelRef]:
    """Model files and folders the configs under ``paths`` point servers at, for the artifact scanner.

    ``local`` is set where the reference is a path relative to (or inside) the config's folder that exists.
    """
    return scan_infra_full(paths).models
