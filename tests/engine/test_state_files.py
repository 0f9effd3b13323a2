"""How the local engine's workers hand a partition's states to the main process: a file of
pickle protocol 5 whose large buffers are written and read once, in place (:mod:`mlwarden.engine.local`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mlwarden.sources.datasets as datasets_mod
from mlwarden.engine import local
from mlwarden.engine.base import Folded, fold_partition
from mlwarden.engine.local import LocalEngine
from mlwarden.registry import FoldCheck
from mlwarden.sources.datasets import Batch, open_dataset


@dataclass
class Kept:
    counts: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))
    hashes: list[np.ndarray] = field(default_factory=list)
    tables: list[pa.Table] = field(default_factory=list)
    rows: int = 0


class KeepEverything(FoldCheck):
    """A fold whose state holds what real states hold: NumPy arrays, Arrow tables and slices."""

    id = "test.keep_everything"
    title = "keeps everything"
    stage = "data"
    splits = ("train",)

    def init(self) -> Kept:
        return Kept()

    def update(self, state: Kept, batch: Batch) -> Kept:
        x = batch.data.column("x").to_numpy()
        state.counts += np.bincount(x % 4, minlength=4)
        state.hashes.append(x.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        state.tables.append(pa.Table.from_batches([batch.data]).slice(1, 3))  # a slice of a bigger buffer
        state.rows += batch.data.num_rows
        return state

    def merge(self, a: Kept, b: Kept) -> Kept:
        a.counts += b.counts  # in place: buffers that came from a file must be writable
        a.hashes += b.hashes
        a.tables += b.tables
        a.rows += b.rows
        return a


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.setattr(datasets_mod, "PARTITION_ROWS", 1000)
    n = 5000
    pq.write_table(pa.table({"x": np.arange(n), "s": [f"v{i % 97}" for i in range(n)]}), tmp_path / "t.parquet",
                   row_group_size=1000)
    return list(open_dataset("train", str(tmp_path / "t.parquet")).partitions)


def test_states_come_back_equal_writable_and_leave_no_file(parts, tmp_path: Path) -> None:
    check = KeepEverything(None, None)
    folder = tmp_path / "states"
    folder.mkdir()
    path = local.fold_to_file([check], parts[1], str(folder))
    assert Path(path).parent == folder
    back = local.read_states(path)
    assert list(folder.iterdir()) == []  # removed once read
    want = fold_partition([check], parts[1])
    got, exp = back[check.id].state, want[check.id].state
    assert got.rows == exp.rows == 1000
    np.testing.assert_array_equal(got.counts, exp.counts)
    assert all(np.array_equal(a, b) for a, b in zip(got.hashes, exp.hashes, strict=True))
    assert [t.to_pylist() for t in got.tables] == [t.to_pylist() for t in exp.tables]
    got.counts += 1  # merges add in place
    assert got.counts.flags.writeable and all(a.ctypes.data % 8 == 0 for a in got.hashes)


def test_the_engine_merges_from_files_and_removes_its_folder(parts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "INPROCESS_BYTES", 0)
    check = KeepEverything(None, None)
    with LocalEngine(workers=2) as eng:
        folded = eng.fold([check], parts)
        folder = eng._states
        assert folder is not None and os.path.isdir(folder) and os.listdir(folder) == []
    assert not os.path.exists(folder)
    state = folded[check.id].state
    assert isinstance(folded[check.id], Folded) and state.rows == 5000
    np.testing.assert_array_equal(state.counts, np.bincount(np.arange(5000) % 4, minlength=4))
    # partition order is kept: the merged hashes are the batches in file order
    np.testing.assert_array_equal(np.concatenate(state.hashes),
                                  np.arange(5000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def test_an_aborted_fold_removes_the_folder(parts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "INPROCESS_BYTES", 0)
    eng = LocalEngine(workers=2)
    eng.fold([KeepEverything(None, None)], parts)
    folder = eng._states
    assert folder is not None and os.path.isdir(folder)
    eng.close(abort=True)
    assert not os.path.exists(folder)
