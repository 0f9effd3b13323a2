"""From an image archive's JSON to its images: config, layers and the digests each must match.

Two layouts reach here, in one or the other form of the same archive:

* ``docker save`` writes ``manifest.json`` — a list of ``{Config, RepoTags, Layers}``. Before
  Docker 25 the config is ``<sha256>.json`` and each layer ``<id>/layer.tar``; since Docker 25
  both point into an OCI ``blobs/sha256/`` folder, which an ``index.json`` also describes.
* An OCI image layout: ``index.json`` → manifest (or a nested index per platform) →
  config + layers. For a multi-platform index, linux/amd64 is scanned where present, every
  platform otherwise; attestation manifests (provenance, SBOM) hold no filesystem.

``manifest.json`` wins where both exist: it is what ``docker load`` reads. Every blob named by
digest is checked against it (here for the small JSON blobs, while streaming for layers);
each layer's uncompressed digest against the config's ``rootfs.diff_ids``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..findings import Severity
from .base import InfraIssue
from .image_store import BlobStore, Report, incomplete, normalize

MAX_JSON = 8 << 20  # manifests and configs are KBs; a config with long history stays under 1 MB
MAX_IMAGES = 16  # images (tags or platforms) scanned from one archive
MAX_INDEX_DEPTH = 4
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True, kw_only=True)
class LayerRef:
    """One layer: where its blob is, the digests it must have, and how findings name it."""

    key: str  # blob name in the store
    digest: str | None  # sha256 of the blob as stored (OCI descriptors, blobs/sha256/<hex> names)
    size: int | None  # the descriptor's size, where one is given
    diff_id: str | None  # sha256 of the uncompressed tar, from the config
    label: str  # how locations name the layer: a digest where one is known


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    """One image inside the archive: its name, parsed config and ordered layers (base first)."""

    name: str
    config: dict[str, Any]
    config_key: str
    layers: tuple[LayerRef, ...]


def blob_key(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def digest_of_key(key: str) -> str | None:
    """``blobs/sha256/<hex>`` and legacy ``<hex>.json`` names carry their own digest."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256" and len(parts[2]) == 64:
        return f"sha256:{parts[2]}"
    base = parts[-1]
    if len(parts) == 1 and base.endswith(".json") and len(base) == 69 and _hex(base[:64]):
        return f"sha256:{base[:64]}"
    return None


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def read_json(store: BlobStore, key: str, report: Report, *, digest: str | None = None,
              size: int | None = None) -> Any:
    """A small JSON blob, verified against its digest and size; None (reported) when unusable."""
    where = f"{store.label}!/{key}"
    if key not in store.names():
        report(incomplete(where, f"{key} is missing from the image archive"))
        return None
    actual_size = store.size(key)
    if actual_size > MAX_JSON:
        report(incomplete(where, f"{key} is {actual_size} bytes, over the {MAX_JSON}-byte cap for image JSON"))
        return None
    with store.open(key) as fh:
        data = fh.read(MAX_JSON)
    check_digest(store, key, data, report, digest=digest or digest_of_key(key), size=size)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        report(incomplete(where, f"{key} is not valid JSON ({exc})"))
        return None


def check_digest(store: BlobStore, key: str, data: bytes, report: Report, *, digest: str | None,
                 size: int | None) -> None:
    if digest and digest.startswith("sha256:"):
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            report(mismatch(f"{store.label}!/{key}", key, digest, actual))
    if size is not None and size != len(data):
        report(mismatch(f"{store.label}!/{key}", key, f"{size} bytes", f"{len(data)} bytes"))


def mismatch(where: str, what: str, expected: str, actual: str) -> InfraIssue:
    return InfraIssue(rule="infra.image.digest_mismatch", severity=Severity.HIGH, path=where,
                      message=f"{what} does not match its recorded digest: the image was altered after it was "
                      "built, or the archive is corrupt", evidence={"expected": expected, "actual": actual},
                      remediation="Do not run this image; pull it again from a trusted registry by digest.")


def load_images(store: BlobStore, report: Report) -> list[ImageRef]:
    """Every image the archive describes (``manifest.json`` first, else the OCI index)."""
    names = store.names()
    if "manifest.json" in names:
        return _from_docker_manifest(store, report)
    if "index.json" in names:
        images: list[ImageRef] = []
        _from_index(store, read_json(store, "index.json", report), "index.json", report, images, depth=0)
        return images
    report(incomplete(store.label, "neither manifest.json nor index.json is in the archive: not an image"))
    return []


def _from_docker_manifest(store: BlobStore, report: Report) -> list[ImageRef]:
    manifest = read_json(store, "manifest.json", report)
    if not isinstance(manifest, list):
        if manifest is not None:
            report(incomplete(f"{store.label}!/manifest.json", "manifest.json is not a list of images"))
        return []
    images = []
    for n, entry in enumerate(manifest[:MAX_IMAGES]):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            report(incomplete(f"{store.label}!/manifest.json", f"entry {n} of manifest.json has no Config"))
            continue
        tags = entry.get("RepoTags") or []
        name = tags[0] if tags and isinstance(tags[0], str) else f"image {n}"
        keys = [normalize(k) for k in entry.get("Layers") or [] if isinstance(k, str)]
        layers: list[tuple[str, str | None, int | None]] = [(k, digest_of_key(k), None) for k in keys]
        image = _image(store, name, normalize(entry["Config"]), None, None, layers, report)
        if image:
            images.append(image)
    if len(manifest) > MAX_IMAGES:
        report(incomplete(f"{store.label}!/manifest.json", f"the archive holds {len(manifest)} images; "
                          f"only the first {MAX_IMAGES} are scanned"))
    return images


def _from_index(store: BlobStore, index: Any, where: str, report: Report, out: list[ImageRef], *,
                depth: int) -> None:
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        if index is not None:
            report(incomplete(f"{store.label}!/{where}", f"{where} has no manifests list"))
        return
    if depth > MAX_INDEX_DEPTH:
        report(incomplete(f"{store.label}!/{where}", f"image indexes nested deeper than {MAX_INDEX_DEPTH}"))
        return
    descriptors = [d for d in index["manifests"] if isinstance(d, dict) and isinstance(d.get("digest"), str)]
    descriptors = [d for d in descriptors if not _attestation(d)]
    amd64 = [d for d in descriptors if _platform(d) == "linux/amd64"]
    for d in (amd64[:1] or descriptors)[:MAX_IMAGES]:
        key = blob_key(d["digest"])
        body = read_json(store, key, report, digest=d["digest"], size=d.get("size"))
        if not isinstance(body, dict):
            continue
        if body.get("mediaType") in INDEX_TYPES or d.get("mediaType") in INDEX_TYPES or "manifests" in body:
            _from_index(store, body, key, report, out, depth=depth + 1)
            continue
        name = (d.get("annotations") or {}).get("org.opencontainers.image.ref.name") or _platform(d) or d["digest"]
        config = body.get("config") or {}
        layers = [(blob_key(x["digest"]), x["digest"], x.get("size")) for x in body.get("layers") or []
                  if isinstance(x, dict) and isinstance(x.get("digest"), str)]
        if not isinstance(config.get("digest"), str):
            report(incomplete(f"{store.label}!/{key}", "the image manifest names no config"))
            continue
        image = _image(store, str(name), blob_key(config["digest"]), config["digest"], config.get("size"),
                       layers, report)
        if image:
            out.append(image)


def _attestation(d: dict[str, Any]) -> bool:
    annotations = d.get("annotations") or {}
    return annotations.get("vnd.docker.reference.type") == "attestation-manifest" or _platform(d) == "unknown/unknown"


def _platform(d: dict[str, Any]) -> str | None:
    p = d.get("platform")
    return f"{p.get('os')}/{p.get('architecture')}" if isinstance(p, dict) else None


def _image(store: BlobStore, name: str, config_key: str, digest: str | None, size: int | None,
           layers: list[tuple[str, str | None, int | None]], report: Report) -> ImageRef | None:
    config = read_json(store, config_key, report, digest=digest, size=size)
    if not isinstance(config, dict):
        return None
    rootfs: dict[str, Any] = config["rootfs"] if isinstance(config.get("rootfs"), dict) else {}
    diff_ids = [d for d in rootfs.get("diff_ids") or [] if isinstance(d, str)]
    if len(diff_ids) != len(layers):
        report(mismatch(f"{store.label}!/{config_key}", "the config's layer list (rootfs.diff_ids)",
                        f"{len(diff_ids)} layers", f"{len(layers)} layers in the manifest"))
    refs = []
    for n, (key, blob_digest, blob_size) in enumerate(layers):
        diff_id = diff_ids[n] if n < len(diff_ids) else None
        refs.append(LayerRef(key=key, digest=blob_digest, size=blob_size, diff_id=diff_id,
                             label=blob_digest or diff_id or key))
    return ImageRef(name=name, config=config, config_key=config_key, layers=tuple(refs))
