"""Container images scanned from a tarball or an OCI layout, without a daemon.

``scan_image`` reads ``docker save`` output (legacy, or Docker ≥ 25's OCI-in-a-tar) and OCI
image layouts (tar or folder, multi-platform indexes included), in three steps:

1. the archive's JSON: images, configs, layers and the digests each must match
   (:mod:`.image_layout`); the config's user, ports, env and build history (:mod:`.image_config`);
2. one streaming pass over every layer, headers only, whiteouts applied: the final file view
   (:mod:`.image_layers`), from which file modes are judged;
3. a second streaming pass that reads only the model files (to the artifact scanner) and small
   text files (to the secret detectors), buried ones included (:mod:`.image_files`).

Nothing is extracted and no layer is held in memory. Whatever stops a walk early (a limit, a
corrupt or missing blob) is a HIGH "not fully scanned" finding: an image is never clean by
omission. Findings locate themselves as ``image.tar!/<layer digest>/<path in the image>``.
"""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from pathlib import Path

from ..findings import Severity
from .base import InfraError, InfraIssue
from .image_config import check_config, check_modes
from .image_files import is_model, is_text, read_files
from .image_layers import build_view
from .image_layout import load_images
from .image_store import normalize, open_store
from .image_stream import Budget, ImageLimits

__all__ = ["ImageLimits", "looks_like_image", "scan_image"]

PROBE_MEMBERS = 10_000  # headers read to decide whether a tar is an image


def looks_like_image(path: str | Path, head_bytes: bytes = b"") -> bool:
    """True for an OCI layout folder, or an uncompressed tar holding ``manifest.json`` or
    ``index.json`` + ``oci-layout`` among its first members (headers only; data is skipped)."""
    p = Path(path)
    if p.is_dir():
        return (p / "oci-layout").is_file() and (p / "index.json").is_file()
    if head_bytes and head_bytes[257:262] != b"ustar" and not _v7_tar(head_bytes):
        return False
    names: set[str] = set()
    try:
        with tarfile.open(p, mode="r:") as tar:
            for _ in range(PROBE_MEMBERS):
                info = tar.next()
                if info is None:
                    break
                tar.members = []  # type: ignore[attr-defined]
                names.add(normalize(info.name))
                if "manifest.json" in names or {"index.json", "oci-layout"} <= names:
                    return True
    except (tarfile.TarError, OSError, ValueError):
        return False
    return False


def _v7_tar(head: bytes) -> bool:
    from ..scan.detect import looks_like_tar

    return looks_like_tar(head)


def scan_image(path: str | Path, *, allow: Sequence[str] = (), limits: ImageLimits | None = None) -> list[InfraIssue]:
    """Every finding for one image archive, most severe first. Raises InfraError only when
    ``path`` cannot be opened at all; whatever the archive holds is reported, never raised."""
    from ..scan.policy import Policy

    p = Path(path)
    limits = limits or ImageLimits()
    issues: list[InfraIssue] = []
    report = issues.append
    try:
        store = open_store(p, report, max_members=limits.max_members)
    except OSError as exc:
        raise InfraError(f"{p}: cannot read the image archive: {exc.strerror or exc}") from exc
    label = str(p)
    budget = Budget(limits)
    try:
        for image in load_images(store, report):
            check_config(image, label, report)
            view = build_view(store, image, budget, report, label=label,
                              keep_buried=lambda e: is_model(e) or is_text(e, limits.text_bytes))
            check_modes(image, view, label, report)
            counts = read_files(store, image, view, budget, report, label=label, policy=Policy(allow=allow))
            report(InfraIssue(
                rule="infra.image.summary", severity=Severity.INFO, path=label,
                message=f"image {image.name}: {len(image.layers)} layers, {len(view.entries)} paths in the final "
                f"view, {counts.models} model files scanned, {counts.texts} text files searched for secrets",
                evidence={"image": image.name, "layers": [layer.label for layer in image.layers],
                          "members": view.members, "paths": len(view.entries), "buried": len(view.buried),
                          "models_scanned": counts.models, "texts_scanned": counts.texts,
                          "bytes_read": counts.bytes_read, "complete": view.complete,
                          "models": sorted(e.path for e in view.entries.values() if is_model(e))[:50]}))
    finally:
        store.close()
    return sorted(issues, key=InfraIssue.sort_key)
