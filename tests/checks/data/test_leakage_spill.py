"""data.leakage.exact_duplicates with its hashes spilled to disk by key bucket: the same answer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.checks.data import keyruns
from mlwarden.sources import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_tables

LEAK = "data.leakage.exact_duplicates"


def tables(ids: str) -> dict[str, pa.Table]:
    rng = np.random.default_rng(11)
    n = 2000
    x = rng.integers(0, 10**12, n)
    train = pa.table({"uid": np.arange(n), "x": x, "c": np.where(x % 3 == 0, "a", "b")})
    ex = rng.integers(0, 10**12, 900)
    copied = np.sort(rng.choice(900, 90, replace=False))
    ex[copied] = x[rng.choice(n, 90)]  # 90 test rows copied from train, some of them twice
    uid = [f"t{i}" for i in range(900)] if ids == "text" else np.arange(900) + 10_000
    test = pa.table({"uid": uid, "x": ex, "c": np.where(ex % 3 == 0, "a", "b")})
    return {"train": train, "test": test, "feedback": test.slice(0, 400)}


@pytest.mark.parametrize("ids", ["int", "text"])
def test_spilled_equals_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ids: str) -> None:
    (tmp_path / "a").mkdir()
    whole = audit_tables(tmp_path / "a", tables(ids), LEAK, row_group_size=100, id="uid")
    assert whole.metrics["test"]["duplicated_rows"] >= 90
    monkeypatch.setattr(datasets, "BATCH_ROWS", 37)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    monkeypatch.setattr(keyruns, "SPILL_BYTES", 1)
    (tmp_path / "b").mkdir()
    spilled = audit_tables(tmp_path / "b", tables(ids), LEAK, row_group_size=100, id="uid")
    assert spilled.metrics == whole.metrics
    assert [f.to_dict() for f in spilled.findings] == [f.to_dict() for f in whole.findings]
    test = next(f for f in whole.findings if f.evidence["split"] == "test")
    first = test.evidence["sample_row_ids"][0]
    assert first == (f"t{first_copied(tables(ids))}" if ids == "text" else 10_000 + first_copied(tables(ids)))


def first_copied(t: dict[str, pa.Table]) -> int:
    """The first test row whose (x, c) is a training row."""
    seen = set(zip(t["train"]["x"].to_pylist(), t["train"]["c"].to_pylist()))
    return next(i for i, k in enumerate(zip(t["test"]["x"].to_pylist(), t["test"]["c"].to_pylist())) if k in seen)
