"""Datasets as streams of Arrow record batches, cut into partitions the engines share out.

A dataset is a parquet file, a CSV file or a folder of parquet files, local or on remote
storage through pyarrow's filesystems (``s3://…``). Opening one reads only metadata
(parquet footers, CSV header), so a missing file, a corrupt footer or a schema clash is a
clear :class:`SourceError` before any check runs. Partitions are whole parquet row groups
(grouped up to ~``PARTITION_ROWS``) with the ordinal of their first row, so every engine
sees the same rows at the same positions whatever it runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import SourceError

PARTITION_ROWS = 262_144
BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 8 << 20

Format = Literal["parquet", "csv"]


@dataclass(frozen=True, kw_only=True)
class Partition:
    """A slice of one split that one worker folds: a file and (for parquet) row groups."""

    split: str
    path: str  # filesystem path as the filesystem sees it
    uri: str  # what the user wrote, resolved (for messages)
    format: Format
    row_groups: tuple[int, ...] | None
    offset: int  # ordinal of the first row within the split
    nbytes: int = 0  # about how many bytes of the file it covers (engines size their work by it)


@dataclass(frozen=True, kw_only=True)
class DataFile:
    path: str
    uri: str
    format: Format
    size: int
    rows: int | None  # None for CSV until read


@dataclass(frozen=True, kw_only=True)
class Dataset:
    split: str
    uri: str
    files: tuple[DataFile, ...]
    schema: pa.Schema
    partitions: tuple[Partition, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)


@dataclass(frozen=True, kw_only=True)
class Batch:
    """What a check's ``update`` receives: rows of one split, and where they start."""

    split: str
    offset: int
    data: pa.RecordBatch


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        if "://" in uri:
            return pafs.FileSystem.from_uri(uri)
        return pafs.LocalFileSystem(), uri
    except (pa.ArrowException, OSError, ValueError) as e:
        raise SourceError(f"{uri}: cannot open this location: {e}") from e


def open_dataset(split: str, uri: str) -> Dataset:
    """Read the metadata of one split; raise SourceError naming the file on any problem."""
    fs, path = filesystem(uri)
    try:
        info = fs.get_file_info(path)
    except (pa.ArrowException, OSError) as e:
        raise SourceError(f"{uri}: data.{split}: cannot reach it: {e}") from e
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"{uri}: data.{split}: no such file or folder")
    if info.type == pafs.FileType.Directory:
        selector = pafs.FileSelector(path, recursive=True)
        found = sorted(
            (i for i in fs.get_file_info(selector) if i.is_file and i.path.endswith(".parquet")),
            key=lambda i: i.path,
        )
        if not found:
            raise SourceError(f"{uri}: data.{split}: the folder holds no .parquet files")
        entries = [(i.path, i.size) for i in found]
    else:
        entries = [(path, info.size)]
    files: list[DataFile] = []
    partitions: list[Partition] = []
    schema: pa.Schema | None = None
    offset = 0
    for fpath, size in entries:
        furi = fpath if "://" not in uri else _rejoin(uri, path, fpath)
        fmt = _sniff(fs, fpath, furi, split)
        if fmt == "parquet":
            meta, fschema = _parquet_meta(fs, fpath, furi, split)
            rows = meta.num_rows
            for groups in _group_row_groups(meta):
                n = sum(meta.row_group(g).num_rows for g in groups)
                partitions.append(Partition(split=split, path=fpath, uri=furi, format="parquet",
                                            row_groups=groups, offset=offset,
                                            nbytes=size * n // max(1, meta.num_rows)))
                offset += n
        else:
            fschema = _csv_schema(fs, fpath, furi, split)
            rows = None
            partitions.append(Partition(split=split, path=fpath, uri=furi, format="csv",
                                        row_groups=None, offset=0, nbytes=size))
        _unique_columns(fschema, furi, split)
        if schema is None:
            schema = fschema
        elif set(schema.names) != set(fschema.names):
            raise SourceError(
                f"{furi}: data.{split}: its columns differ from the other files of the split "
                f"({sorted(set(schema.names) ^ set(fschema.names))}); keep one schema per split"
            )
        files.append(DataFile(path=fpath, uri=furi, format=fmt, size=size, rows=rows))
    assert schema is not None
    return Dataset(split=split, uri=uri, files=tuple(files), schema=schema, partitions=tuple(partitions))


def iter_batches(part: Partition, columns: list[str] | None = None) -> Iterator[Batch]:
    """Stream a partition's rows in bounded batches, with their offsets in the split."""
    fs, _ = filesystem(part.uri) if "://" in part.uri else (pafs.LocalFileSystem(), part.path)
    offset = part.offset
    try:
        if part.format == "parquet":
            if not part.row_groups:
                return
            with fs.open_input_file(part.path) as f:
                pf = pq.ParquetFile(f)
                for rb in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=list(part.row_groups or ()),
                                          columns=columns, use_threads=False):
                    yield Batch(split=part.split, offset=offset, data=rb)
                    offset += rb.num_rows
        else:
            with fs.open_input_stream(part.path) as f:
                reader = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                                        convert_options=_csv_convert())
                for rb in reader:
                    if columns is not None:
                        rb = rb.select(columns)
                    yield Batch(split=part.split, offset=offset, data=rb)
                    offset += rb.num_rows
    except (pa.ArrowException, OSError) as e:
        raise SourceError(f"{part.uri}: data.{part.split}: unreadable at row {offset}: {_short(e)}") from e


def values_at(dataset: Dataset, column: str, ordinals: Iterable[int]) -> dict[int, Any]:
    """The values of ``column`` at some row ordinals of a split, read back from its files: for a
    finalizer that must name a value its state kept only as a hash. One pass over that one
    column of the partitions that hold the rows, stopping after the last one wanted."""
    want = np.unique(np.fromiter(ordinals, dtype=np.int64))
    out: dict[int, Any] = {}
    if not want.size:
        return out
    parts = sorted(dataset.partitions, key=lambda p: p.offset)
    for part, after in zip(parts, [*parts[1:], None]):
        if len(out) == want.size:
            break
        end = after.offset if after is not None and after.offset > part.offset else None
        if end is not None and not ((want >= part.offset) & (want < end)).any():
            continue  # none of its rows is wanted: not read
        for batch in iter_batches(part, [column]):
            n = batch.data.num_rows
            hit = want[(want >= batch.offset) & (want < batch.offset + n)]
            if hit.size:
                got = batch.data.column(0).take(pa.array(hit - batch.offset)).to_pylist()
                out.update(zip(hit.tolist(), got))
            if batch.offset + n > want[-1]:
                return out
    return out


def _rejoin(uri: str, root: str, fpath: str) -> str:
    scheme = uri.split("://", 1)[0]
    return f"{scheme}://{fpath}"


def _sniff(fs: pafs.FileSystem, path: str, uri: str, split: str) -> Format:
    try:
        with fs.open_input_file(path) as f:
            head = f.read(4)
    except (pa.ArrowException, OSError) as e:
        raise SourceError(f"{uri}: data.{split}: cannot read: {_short(e)}") from e
    if head == b"PAR1":
        return "parquet"
    lower = path.lower()
    if lower.endswith((".csv", ".csv.gz", ".csv.bz2", ".txt", ".tsv")) or (head and head.isascii()):
        return "csv"
    if lower.endswith(".parquet"):
        raise SourceError(f"{uri}: data.{split}: not a parquet file (no PAR1 magic); re-export it or fix the path")
    raise SourceError(f"{uri}: data.{split}: unknown format; use parquet, CSV or a folder of parquet files")


def _parquet_meta(fs: pafs.FileSystem, path: str, uri: str, split: str) -> tuple[pq.FileMetaData, pa.Schema]:
    try:
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            return pf.metadata, pf.schema_arrow
    except (pa.ArrowException, OSError) as e:
        raise SourceError(
            f"{uri}: data.{split}: corrupt or truncated parquet ({_short(e)}); re-export the file"
        ) from e


def _csv_convert() -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(strings_can_be_null=True)


def _csv_schema(fs: pafs.FileSystem, path: str, uri: str, split: str) -> pa.Schema:
    try:
        with fs.open_input_stream(path) as f:
            reader = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                                    convert_options=_csv_convert())
            schema = reader.schema
    except (pa.ArrowException, OSError) as e:
        raise SourceError(f"{uri}: data.{split}: not a readable CSV file ({_short(e)})") from e
    if not schema.names:
        raise SourceError(f"{uri}: data.{split}: the CSV file has no columns")
    return schema


def _unique_columns(schema: pa.Schema, uri: str, split: str) -> None:
    """Two columns of one name make every by-name lookup ambiguous: refuse them up front."""
    seen: set[str] = set()
    dups = sorted({n for n in schema.names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dups:
        raise SourceError(f"{uri}: data.{split}: duplicate column name(s) {', '.join(map(repr, dups[:8]))}; "
                          "give every column a unique name")


def _group_row_groups(meta: pq.FileMetaData) -> Iterator[tuple[int, ...]]:
    """Consecutive row groups, up to ``PARTITION_ROWS`` rows a partition (a larger row group
    alone). A group that would take a partition past the target starts the next one: taking
    it whole doubled partitions of 250,000-row groups (500,000 rows, half as many partitions
    as cores could share evenly)."""
    group: list[int] = []
    rows = 0
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if group and rows + n > PARTITION_ROWS:
            yield tuple(group)
            group, rows = [], 0
        group.append(g)
        rows += n
    if group or meta.num_row_groups == 0:
        yield tuple(group)


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
