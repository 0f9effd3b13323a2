"""Data and model manifests: what every file of a pipeline was, so changes show.

A manifest is an in-toto Statement in the shape OpenSSF model signing uses: one subject
whose digest covers every file's digest, and a predicate listing each resource (path
relative to the spec, sha256, size, role) plus each split's row count and schema. Model
and data manifests therefore look alike and are signed the same way (:mod:`.signing`).
Row-level fingerprints live in a parquet sidecar (:mod:`.rows`) whose digest the
statement records, so a signature covers every row too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ManifestError, SourceError
from ..sources.datasets import Dataset, filesystem, iter_batches
from ..spec import Spec

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlwarden.dev/manifest/v1"
CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Resource:
    name: str  # as the report shows it (relative to the spec's folder)
    role: str  # data.train, data.test, …, model.artifact
    digest: str
    size: int
    rows: int | None = None


@dataclass(frozen=True, kw_only=True)
class Manifest:
    name: str
    resources: tuple[Resource, ...]
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)  # split → {rows, schema}
    rows: dict[str, str] | None = None  # {"name": sidecar file, "digest": sha256, "id_column": …}

    def subject_digest(self) -> str:
        h = hashlib.sha256()
        for r in sorted(self.resources, key=lambda r: r.name):
            h.update(f"{r.name}\0{r.digest}\n".encode())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.name, "digest": {"sha256": self.subject_digest()}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "serialization": {"method": "files", "hash_type": "sha256"},
                "resources": [
                    {"name": r.name, "algorithm": "sha256", "digest": r.digest, "size": r.size,
                     "role": r.role, **({"rows": r.rows} if r.rows is not None else {})}
                    for r in self.resources
                ],
                "splits": self.splits,
                **({"rows": self.rows} if self.rows else {}),
            },
        }


@dataclass(frozen=True, kw_only=True)
class Diff:
    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rows: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    schema: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.changed or self.added or self.removed or self.rows or self.schema)


def sha256_file(uri: str) -> tuple[str, int]:
    """Streamed sha256 and size of a local or remote file."""
    fs, path = filesystem(uri)
    h = hashlib.sha256()
    size = 0
    try:
        with fs.open_input_stream(path) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
    except (OSError, pa.ArrowException) as e:
        raise SourceError(f"{uri}: cannot read to fingerprint it: {e}") from e
    return h.hexdigest(), size


def count_rows(ds: Dataset) -> int:
    if all(f.rows is not None for f in ds.files):
        return sum(f.rows or 0 for f in ds.files)
    return sum(b.data.num_rows for p in ds.partitions for b in iter_batches(p, columns=[]))


def collect(spec: Spec, datasets: dict[str, Dataset], *,
            map: Callable[[Callable[[str], tuple[str, int]], Sequence[str]], list[tuple[str, int]]] | None = None,
            rows: dict[str, int] | None = None) -> Manifest:
    """Fingerprint every data file and the model artifact of ``spec``."""
    entries: list[tuple[str, str, int | None]] = []  # uri, role, rows
    for split, ds in datasets.items():
        entries += [(f.uri, f"data.{split}", f.rows) for f in ds.files]
    artifact = spec.artifact()
    if artifact:
        if "://" not in artifact and not Path(artifact).is_file():
            raise SourceError(f"{artifact}: model.artifact: no such file")
        entries.append((artifact, "model.artifact", None))
    uris = [e[0] for e in entries]
    digests = (map or _serial_map)(sha256_file, uris)
    resources = tuple(
        Resource(name=spec.display(uri), role=role, digest=d, size=s, rows=r)
        for (uri, role, r), (d, s) in zip(entries, digests)
    )
    splits = {
        split: {"rows": (rows or {}).get(split, None) if rows else count_rows(ds),
                "schema": {f.name: str(f.type) for f in ds.schema}}
        for split, ds in datasets.items()
    }
    return Manifest(name=spec.name, resources=resources, splits=splits)


def _serial_map(fn: Callable[[str], tuple[str, int]], items: Sequence[str]) -> list[tuple[str, int]]:
    return [fn(i) for i in items]


def compare(old: Manifest, new: Manifest) -> Diff:
    before = {r.name: r for r in old.resources}
    after = {r.name: r for r in new.resources}
    changed = tuple(sorted(n for n in before.keys() & after.keys() if before[n].digest != after[n].digest))
    rows: dict[str, tuple[int | None, int | None]] = {}
    schema: dict[str, dict[str, list[str]]] = {}
    for split in sorted(old.splits.keys() | new.splits.keys()):
        a, b = old.splits.get(split, {}), new.splits.get(split, {})
        if a.get("rows") != b.get("rows"):
            rows[split] = (a.get("rows"), b.get("rows"))
        sa, sb = a.get("schema", {}), b.get("schema", {})
        if sa != sb:
            schema[split] = {
                "added": sorted(sb.keys() - sa.keys()),
                "removed": sorted(sa.keys() - sb.keys()),
                "retyped": sorted(k for k in sa.keys() & sb.keys() if sa[k] != sb[k]),
            }
    return Diff(changed=changed, added=tuple(sorted(after.keys() - before.keys())),
                removed=tuple(sorted(before.keys() - after.keys())), rows=rows, schema=schema)


def write(manifest: Manifest, path: str | Path) -> None:
    Path(path).write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read(path: str | Path) -> Manifest:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{p}: no such manifest; create one with `mlwarden manifest create`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{p}: not a readable manifest: {e}") from e
    try:
        if doc["predicateType"] != PREDICATE_TYPE:
            raise ManifestError(f"{p}: predicateType {doc['predicateType']!r} is not an mlwarden manifest")
        pred = doc["predicate"]
        resources = tuple(
            Resource(name=r["name"], role=r["role"], digest=r["digest"], size=int(r["size"]), rows=r.get("rows"))
            for r in pred["resources"]
        )
        return Manifest(name=doc["subject"][0]["name"], resources=resources, splits=dict(pred.get("splits", {})),
                        rows=pred.get("rows"))
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise ManifestError(f"{p}: malformed manifest (missing or bad {e}); recreate it") from e


def create(spec: Spec, datasets: dict[str, Dataset], path: str | Path) -> Manifest:
    """Fingerprint files and rows; write the row sidecar and the manifest at ``path``."""
    from dataclasses import replace

    from . import rows as rowfp

    path = Path(path)
    sidecar = rowfp.sidecar_path(path)
    try:
        rowfp.write(rowfp.dataset_rows(datasets, spec.data.id), sidecar)
    except OSError as e:
        raise ManifestError(f"{sidecar}: cannot write: {e.strerror or e}") from e
    digest, _ = sha256_file(str(sidecar))
    m = replace(collect(spec, datasets),
                rows={"name": sidecar.name, "digest": digest, "id_column": spec.data.id or ""})
    write(m, path)
    return m


def verify_rows(old: Manifest, path: str | Path, spec: Spec, datasets: dict[str, Dataset]) -> list:
    """Row-level differences between the manifest's sidecar and the data now."""
    import pyarrow as pa

    from . import rows as rowfp

    if not old.rows:
        return []
    sidecar = Path(path).with_name(old.rows["name"])
    if not sidecar.exists():
        raise ManifestError(f"{sidecar}: the manifest's row fingerprints are missing; recreate the manifest")
    if sha256_file(str(sidecar))[0] != old.rows["digest"]:
        raise ManifestError(f"{sidecar}: row fingerprints were modified after the manifest was created")
    current = pa.Table.from_batches(list(rowfp.dataset_rows(datasets, spec.data.id)), schema=rowfp.SCHEMA)
    return rowfp.compare(rowfp.read(sidecar), current)
