"""Row-level fingerprints: a hash per row, keyed by the id column, in a parquet sidecar.

File hashes say *that* a dataset changed; row hashes say *which rows* were added, removed
or altered — the signature of manipulation. Each row's hash covers every column but the id
(normalized as in :mod:`mlwarden.checks.data.rowhash`); the key is the id column's value
as text, or, without an id, the row's ordinal. The sidecar is written and compared in a
streaming pass; comparing holds two (key, hash) columns per split in memory, about 16
bytes a row plus the keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..checks.data.rowhash import row_hashes
from ..errors import ManifestError
from ..sources.datasets import Batch, Dataset, iter_batches

SAMPLE = 20
SCHEMA = pa.schema([("split", pa.string()), ("key", pa.large_string()), ("ordinal", pa.int64()),
                    ("hash", pa.uint64())])


def sidecar_path(manifest: str | Path) -> Path:
    p = Path(manifest)
    return p.with_name(p.name.removesuffix(".json") + ".rows.parquet")


def batch_rows(batch: Batch, id_column: str | None) -> pa.RecordBatch:
    """The (split, key, ordinal, hash) rows of one batch."""
    rb = batch.data
    keyed = id_column is not None and id_column in rb.schema.names
    cols = [c for c in rb.schema.names if c != id_column]
    n = rb.num_rows
    key = pc.cast(rb.column(id_column), pa.large_string()) if keyed else pa.nulls(n, pa.large_string())
    return pa.record_batch([
        pa.array([batch.split] * n, pa.string()), key,
        pa.array(np.arange(batch.offset, batch.offset + n, dtype=np.int64)),
        pa.array(row_hashes(rb, cols), pa.uint64()),
    ], schema=SCHEMA)


def dataset_rows(datasets: dict[str, Dataset], id_column: str | None) -> Iterator[pa.RecordBatch]:
    for ds in datasets.values():
        for part in ds.partitions:
            for batch in iter_batches(part):
                yield batch_rows(batch, id_column)


def write(batches: Iterable[pa.RecordBatch], path: Path) -> None:
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as w:
        for rb in batches:
            w.write_batch(rb)


def read(path: Path) -> pa.Table:
    try:
        return pq.read_table(path, schema=SCHEMA)
    except (OSError, pa.ArrowException) as e:
        raise ManifestError(f"{path}: unreadable row fingerprints ({e}); recreate the manifest") from e


@dataclass(frozen=True, kw_only=True)
class RowDiff:
    split: str
    keyed: bool
    added: int = 0
    removed: int = 0
    altered: int = 0
    samples: dict[str, list[Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.altered)

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "altered": self.altered,
                "keyed_by": "id" if self.keyed else "row content", "samples": self.samples}


def compare(old: pa.Table, new: pa.Table) -> list[RowDiff]:
    """Per split: which rows were added, removed or altered between two sidecars."""
    out = []
    for split in sorted(set(old.column("split").to_pylist()) | set(new.column("split").to_pylist())):
        a = old.filter(pc.equal(old.column("split"), split))
        b = new.filter(pc.equal(new.column("split"), split))
        keyed = (a.num_rows == 0 or a.column("key").null_count == 0) and \
                (b.num_rows == 0 or b.column("key").null_count == 0)
        d = _keyed(split, a, b) if keyed else _by_content(split, a, b)
        if d:
            out.append(d)
    return out


def _keyed(split: str, a: pa.Table, b: pa.Table) -> RowDiff:
    """Multiset difference of (key, hash) pairs, so repeated ids are counted right."""
    import pandas as pd

    def counts(t: pa.Table) -> pd.Series:
        df = pd.DataFrame({"key": t.column("key").to_pandas(), "hash": t.column("hash").to_numpy()})
        return df.groupby(["key", "hash"], sort=False).size()

    both = pd.concat([counts(a), counts(b)], axis=1, keys=["old", "new"]).fillna(0)
    delta = (both["new"] - both["old"]).astype("int64")
    gone = delta[delta < 0]
    came = delta[delta > 0]
    gone_keys = set(gone.index.get_level_values("key"))
    came_keys = set(came.index.get_level_values("key"))
    altered_keys = gone_keys & came_keys
    per_key_gone = (-gone).groupby(level="key").sum()
    per_key_came = came.groupby(level="key").sum()
    altered = int(sum(min(per_key_gone[k], per_key_came[k]) for k in altered_keys))
    return RowDiff(split=split, keyed=True, added=int(came.sum()) - altered, removed=int(-gone.sum()) - altered,
                   altered=altered,
                   samples={"added": sorted(came_keys - altered_keys)[:SAMPLE],
                            "removed": sorted(gone_keys - altered_keys)[:SAMPLE],
                            "altered": sorted(altered_keys)[:SAMPLE]})


def _by_content(split: str, a: pa.Table, b: pa.Table) -> RowDiff:
    ha = a.column("hash").to_numpy()
    hb = b.column("hash").to_numpy()
    new_rows = ~np.isin(hb, ha)
    gone_rows = ~np.isin(ha, hb)
    return RowDiff(split=split, keyed=False, added=int(new_rows.sum()), removed=int(gone_rows.sum()),
                   samples={"added": b.column("ordinal").to_numpy()[new_rows][:SAMPLE].tolist(),
                            "removed": a.column("ordinal").to_numpy()[gone_rows][:SAMPLE].tolist()})
