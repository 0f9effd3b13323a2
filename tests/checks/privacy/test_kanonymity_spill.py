"""data.privacy.k_anonymity with its full-combination classes spilled to disk: the same answer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mlwarden.checks.data import keyruns
from mlwarden.checks.privacy.classcounts import FullClasses
from mlwarden.sources import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_one, make_pipeline

CHECK = "data.privacy.k_anonymity"


def test_spilled_classes_give_the_same_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = make_pipeline(tmp_path)
    whole = audit_one(truth.spec, CHECK)
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    monkeypatch.setattr(keyruns, "SPILL_BYTES", 1)
    spilled = audit_one(truth.spec, CHECK)
    assert whole.findings and whole.metrics["splits"]["train"]["population"]["estimated_population_uniques"] > 0
    assert spilled.metrics == whole.metrics
    assert [f.to_dict() for f in spilled.findings] == [f.to_dict() for f in whole.findings]


def test_full_classes_count_every_row_once_whatever_the_merge() -> None:
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 300, 5000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    parts = np.column_stack([keys ^ np.uint64(1), keys ^ np.uint64(2)])
    acc = FullClasses(width=2)
    acc.runs.limit = 1  # every merge spills
    for lo in range(0, 5000, 700):
        piece = FullClasses(width=2)
        piece.add(keys[lo:lo + 700], parts[lo:lo + 700])
        acc.absorb(piece)
    assert acc.runs.runs
    got = {}
    for k, c, p in acc.buckets():
        assert (p[:, 0] == (k ^ np.uint64(1))).all() and (p[:, 1] == (k ^ np.uint64(2))).all()
        got.update(zip(k.tolist(), c.tolist()))
    u, n = np.unique(keys, return_counts=True)
    assert got == dict(zip(u.tolist(), n.tolist()))
    acc.close()
