"""data.poisoning.conflicting_labels: one store for train and train+feedback, spilled or not, text ids."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlwarden.checks.data import keyruns
from mlwarden.checks.poisoning.conflicts import reduce_pairs
from mlwarden.sources import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_one, make_pipeline

CHECK = "data.poisoning.conflicting_labels"


def comparable(r):
    return r.metrics, [f.to_dict() for f in r.findings]


def test_spilled_store_gives_the_same_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = make_pipeline(tmp_path)
    whole = audit_one(truth.spec, CHECK)
    assert whole.metrics["train"]["groups"] == 12
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    monkeypatch.setattr(keyruns, "SPILL_BYTES", 1)
    assert comparable(audit_one(truth.spec, CHECK)) == comparable(whole)


@pytest.mark.parametrize("spill", [False, True])
def test_text_ids_and_feedback_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spill: bool) -> None:
    i = np.arange(600)
    train = pd.DataFrame({"uid": [f"t{k}" for k in i], "x": i % 300, "y": (i // 300) % 2})  # 300 flipped pairs
    fb = pd.DataFrame({"uid": ["f0", "f1"], "x": [1000, 1000], "y": [0, 1]})  # a conflict inside feedback
    (tmp_path / "d").mkdir()
    train.to_parquet(tmp_path / "d" / "train.parquet", index=False, row_group_size=50)
    fb.to_parquet(tmp_path / "d" / "fb.parquet", index=False)
    spec = tmp_path / "m.yaml"
    spec.write_text("name: c\ndata:\n  train: d/train.parquet\n  feedback: d/fb.parquet\n  label: y\n  id: uid\n")
    if spill:
        monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
        monkeypatch.setattr(keyruns, "SPILL_BYTES", 1)
    r = audit_one(spec, CHECK)
    assert (r.metrics["train"]["groups"], r.metrics["train"]["rows_involved"]) == (300, 600)
    u = r.metrics["train+feedback"]
    assert (u["groups"], u["rows_involved"], u["feedback_rows_involved"]) == (1, 2, 2)
    train_finding = next(f for f in r.findings if f.evidence["scope"] == "train")
    first = train_finding.evidence["sample_groups"][0]
    assert first == {"labels": {"0": 1, "1": 1}, "ids": ["t0", "t300"]}  # the group whose first row comes first


def test_reduce_pairs_keeps_the_first_row_and_sums() -> None:
    c = {"key": np.array([7, 7, 7, 3], np.uint64), "lab": np.array([1, 1, 2, 1], np.uint64),
         "ord": np.array([9, 4, 6, 1]), "id": np.array([90, 40, 60, 10]),
         "cnt": np.ones(4, np.uint32), "fb": np.array([0, 1, 0, 0], np.uint32)}
    out = reduce_pairs(c)
    assert out["key"].tolist() == [3, 7, 7] and out["lab"].tolist() == [1, 1, 2]
    assert out["ord"].tolist() == [1, 4, 6] and out["id"].tolist() == [10, 40, 60]
    assert out["cnt"].tolist() == [1, 2, 1] and out["fb"].tolist() == [0, 1, 0]
