"""data.poisoning.conflicting_labels: planted flipped copies, feedback conflicts, invariance."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlwarden.checks.poisoning.conflicts  # noqa: F401  (registers the check)
from mlwarden.findings import Severity
from mlwarden.sources import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_one, make_pipeline  # noqa: E402

CHECK = "data.poisoning.conflicting_labels"



@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    return make_pipeline(tmp_path_factory.mktemp("planted"))


def result(spec_path: Path):
    return audit_one(spec_path, CHECK)


def test_planted_conflicts(planted) -> None:
    r = result(planted.spec)
    m = r.metrics["train"]
    assert (m["groups"], m["rows_involved"]) == (12, 24)
    assert r.metrics["train+feedback"]["groups"] == 0
    (f,) = r.findings
    assert f.severity == Severity.MEDIUM  # 24 of 4012 rows
    ids = {i for g in f.evidence["sample_groups"] for i in g["ids"]}
    assert set(planted.conflicting_label_train_ids) <= ids
    assert all(sorted(g["labels"]) == ["no", "yes"] for g in f.evidence["sample_groups"])
    assert len(f.location.rows) == 20


def write(root: Path, train: pd.DataFrame, fb: pd.DataFrame) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    train.to_parquet(root / "data" / "train.parquet", index=False, row_group_size=100)
    fb.to_parquet(root / "data" / "feedback.parquet", index=False)
    spec = root / "mlwarden.yaml"
    spec.write_text("name: c\ndata:\n  train: data/train.parquet\n  feedback: data/feedback.parquet\n"
                    "  label: y\n  id: uid\n", encoding="utf-8")
    return spec


def test_feedback_contradicting_train(tmp_path: Path) -> None:
    i = np.arange(1000)
    train = pd.DataFrame({"uid": i, "x": i * 1.5, "c": np.where(i % 2, "a", "b"), "y": i % 2})
    fb = train.iloc[:30].copy()
    fb["uid"] = np.arange(9000, 9030)
    fb["x"] = fb["x"].astype(float)
    fb.loc[fb.index[:7], "y"] = 1 - fb["y"].iloc[:7]  # 7 contradict train, 23 agree
    r = result(write(tmp_path, train, fb))
    assert r.metrics["train"]["groups"] == 0
    u = r.metrics["train+feedback"]
    assert (u["groups"], u["rows_involved"], u["feedback_rows_involved"]) == (7, 14, 7)
    (f,) = r.findings
    assert f.severity == Severity.HIGH and f.evidence["scope"] == "train+feedback"
    assert set(f.location.rows) == set(range(7)) | set(range(9000, 9007))


def test_coarse_features_are_low(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"uid": np.arange(2000), "c": rng.choice(["a", "b"], 2000), "y": rng.integers(0, 2, 2000)})
    spec = write(tmp_path, train, train.iloc[:0])
    r = result(spec)
    (f, *_) = r.findings
    assert f.severity == Severity.LOW and r.metrics["train"]["groups"] == 2


def test_same_result_in_tiny_batches(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    one = result(planted.spec)
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    many = result(planted.spec)
    assert (many.metrics, [f.to_dict() for f in many.findings]) == (one.metrics, [f.to_dict() for f in one.findings])
