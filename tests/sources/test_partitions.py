"""How a parquet split is cut into partitions: whole row groups, about PARTITION_ROWS rows each."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlwarden.sources import datasets
from mlwarden.sources.datasets import open_dataset, values_at


def write(path: Path, groups: list[int]) -> Path:
    with pq.ParquetWriter(path, pa.schema([("x", pa.int64())])) as w:
        start = 0
        for n in groups:
            w.write_table(pa.table({"x": pa.array(range(start, start + n), pa.int64())}), row_group_size=n)
            start += n
    return path


@pytest.mark.parametrize(("groups", "cut"), [
    ([250, 5, 250, 5, 250, 5], [[0, 1], [2, 3], [4, 5]]),  # never past the target by a whole group
    ([100, 100, 100, 100, 100], [[0, 1], [2, 3], [4]]),
    ([900, 10, 10], [[0], [1, 2]]),  # a group over the target is a partition alone
    ([300], [[0]]),
])
def test_row_groups_fill_partitions_up_to_the_target(tmp_path: Path, monkeypatch, groups, cut) -> None:
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 262)
    ds = open_dataset("train", str(write(tmp_path / "t.parquet", groups)))
    assert [list(p.row_groups or ()) for p in ds.partitions] == cut
    offsets = [sum(groups[:c[0]]) for c in cut]
    assert [p.offset for p in ds.partitions] == offsets  # each partition knows its first row


def test_values_at_reads_back_rows_by_ordinal(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 262)
    ds = open_dataset("feedback", str(write(tmp_path / "f.parquet", [250, 5, 250, 5])))
    assert values_at(ds, "x", [509, 0, 255, 254, 255]) == {0: 0, 254: 254, 255: 255, 509: 509}
    assert values_at(ds, "x", []) == {}


def test_values_at_reads_only_the_partitions_holding_the_rows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 262)
    ds = open_dataset("feedback", str(write(tmp_path / "f.parquet", [250, 5, 250, 5, 250, 5])))
    read: list[int] = []
    real = datasets.iter_batches

    def recording(part, columns=None):
        read.append(part.offset)
        return real(part, columns)

    monkeypatch.setattr(datasets, "iter_batches", recording)
    assert values_at(ds, "x", [300, 260]) == {260: 260, 300: 300}
    assert read == [255]  # the first and last partitions hold none of them
