"""Container image references: ``registry/repo:tag@sha256:…`` split into parts.

Docker's rules, kept small: the first path component is a registry only when it holds a
``.`` or ``:`` or is ``localhost``; a missing tag means ``latest``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    text: str
    registry: str
    repo: str
    """Path without registry or tag, e.g. ``pytorch/torchserve``, ``nvidia/tritonserver``."""
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """Registry-qualified repository, as people write it (``nvcr.io/nvidia/tritonserver``)."""
        return f"{self.registry}/{self.repo}" if self.registry != "docker.io" else self.repo

    @property
    def latest(self) -> bool:
        return self.digest is None and (self.tag is None or self.tag == "latest")


def parse_image(text: str) -> ImageRef | None:
    """Parse an image reference; None for empty text or templated values (``{{ .Values.image }}``)."""
    t = (text or "").strip().strip("'\"")
    if not t or any(c in t for c in "{}$ \t"):
        return None
    rest, _, digest = t.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], "/".join(parts[1:])
    else:
        registry, path = "docker.io", rest
    if registry == "docker.io" and path.startswith("library/"):
        path = path[len("library/"):]
    return ImageRef(text=t, registry=registry, repo=path.lower(), tag=tag, digest=digest or None)
