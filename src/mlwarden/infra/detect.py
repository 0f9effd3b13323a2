"""Which infra file is what, decided by content first and by name only to break ties.

``looks_like_infra(path, head_bytes)`` answers one of :data:`KINDS` or None. Content
decides: a Kubernetes manifest has ``apiVersion:`` and ``kind:`` whatever it is named; a
compose file has a top-level ``services:``; a TorchServe config sets its address keys; a
Dockerfile opens with FROM (after ARGs and comments). Names settle files whose head is not
conclusive (``Dockerfile.gpu``, ``values.yaml``, ``requirements-serve.txt``) so that a file
named ``.yaml`` full of garbage is still read — and reported as unreadable, not skipped.
Image tarballs and OCI layouts are recognised by :func:`mlwarden.infra.image.looks_like_image`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

Kind = Literal["dockerfile", "compose", "kubernetes", "torchserve", "requirements", "image"]
KINDS: tuple[Kind, ...] = ("dockerfile", "compose", "kubernetes", "torchserve", "requirements", "image")
HEAD_BYTES = 8192

_K8S = re.compile(rb"(?m)^\s*-?\s*apiVersion:\s*\S+")
_KIND = re.compile(rb"(?m)^\s*-?\s*kind:\s*\S+")
_COMPOSE = re.compile(rb"(?m)^services:\s*(#.*)?$")
_TS_KEYS = re.compile(rb"(?m)^\s*(inference_address|management_address|model_store|load_models|grpc_inference_port)"
                      rb"\s*[=:]")
_FROM = re.compile(rb"^(?:\s*(?:#[^\n]*|ARG[^\n]*)?\n)*\s*FROM\s+\S+", re.IGNORECASE)
COMPOSE_NAMES = re.compile(r"^(docker-)?compose(\.[\w-]+)?\.ya?ml$", re.IGNORECASE)


def _name_kind(name: str) -> Kind | Literal["yaml"] | None:
    n = name.lower()
    if n in ("dockerfile", "containerfile") or n.startswith(("dockerfile.", "containerfile.")) or \
            n.endswith(".dockerfile"):
        return "dockerfile"
    if COMPOSE_NAMES.match(name):
        return "compose"
    if n.endswith(".properties") and ("config" in n or "torchserve" in n):
        return "torchserve"
    if n.startswith("requirements") and n.endswith((".txt", ".in")):
        return "requirements"
    if n.endswith((".yaml", ".yml")):
        return "yaml"
    return None


def looks_like_infra(path: str | Path, head_bytes: bytes) -> Kind | None:
    """The infra kind of ``path`` from its first bytes (and, to break ties, its name); None if not infra.

    A ``.yaml`` whose head shows neither a manifest nor compose is still ``kubernetes`` (so it
    is parsed and, if unreadable, reported); an unrendered Helm template (``{{ … }}`` under
    ``templates/``) is None: render it (``helm template``) and scan the output.
    """
    p = Path(path)
    head = head_bytes[:HEAD_BYTES]
    by_name = _name_kind(p.name)
    if by_name == "yaml" and "templates" in p.parts and b"{{" in head:
        return None
    if b"\x00" not in head[:1024]:
        if _K8S.search(head) and _KIND.search(head):
            return "kubernetes"
        if _COMPOSE.search(head) and by_name in (None, "yaml", "compose"):
            return "compose"
        if by_name not in ("yaml",) and _TS_KEYS.search(head):
            return "torchserve"
        if _FROM.match(head) and by_name in (None, "dockerfile"):
            return "dockerfile"
    if by_name == "yaml":
        return "kubernetes"
    if by_name is not None:
        return by_name
    if head[257:262] == b"ustar" or p.is_dir():
        from .image import looks_like_image

        if looks_like_image(p, head):
            return "image"
    return None
