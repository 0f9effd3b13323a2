"""data.leakage.entity and data.leakage.temporal on planted data; all of this family's new
checks give identical output with tiny batches and one partition per row group."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlwarden.audit import run_audit
from mlwarden.checks.data import (  # noqa: F401
    entity_temporal,
    mismatch,
    near_duplicates,
    target_leakage,
)
from mlwarden.findings import CheckResult, fingerprint
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_tables, make_pipeline  # noqa: E402

MINE = ("data.leakage.near_duplicates", "data.leakage.entity", "data.leakage.temporal",
        "data.leakage.target", "data.leakage.label_mismatch", "data.leakage.category_mismatch")



@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    truth = make_pipeline(tmp_path_factory.mktemp("planted"))
    return truth, {c.id: c for c in run_audit(load_spec(truth.spec), only=MINE).checks}


def audit(root: Path, splits: dict[str, pa.Table], check: str, **keys: str) -> CheckResult:
    return audit_tables(root, splits, check, row_group_size=100, **keys)


def test_entity_finds_the_planted_shared_ids(planted) -> None:
    truth, results = planted
    r = results["data.leakage.entity"]
    [f] = r.findings
    assert f.evidence["shared_entities"] == len(truth.entity_leak_ids) == 20
    assert f.evidence["sample_ids"] == sorted(truth.entity_leak_ids)
    assert f.severity.value == "medium"  # 20 of 1070 test rows: 1.9 %
    assert f.id == fingerprint("data.leakage.entity", "test")
    assert r.metrics["production"]["rows_with_train_entity"] == 0


@pytest.mark.parametrize(("shared", "severity"), [(100, "critical"), (99, "high"), (20, "high"),
                                                  (19, "medium"), (5, "medium"), (4, "low")])
def test_entity_severity_scale(tmp_path: Path, shared: int, severity: str) -> None:
    train = pa.table({"uid": [f"u{i}" for i in range(2000)], "x": np.arange(2000)})
    ids = [f"u{i}" for i in range(shared)] + [f"new{i}" for i in range(1000 - shared)]
    result = audit(tmp_path, {"train": train, "test": pa.table({"uid": ids, "x": np.arange(1000)})},
                   "data.leakage.entity", id="uid")
    [f] = result.findings
    assert (f.severity.value, f.evidence["rows"]) == (severity, shared)


def test_entity_feedback_is_metrics_only_production_info(tmp_path: Path) -> None:
    train = pa.table({"uid": np.arange(100), "x": np.arange(100)})
    other = pa.table({"uid": np.arange(50, 150), "x": np.arange(100)})
    result = audit(tmp_path, {"train": train, "production": other, "feedback": other}, "data.leakage.entity",
                   id="uid")
    assert [(f.evidence["split"], f.severity.value) for f in result.findings] == [("production", "info")]
    assert result.metrics["feedback"]["shared_entities"] == 50
    assert result.status == "pass"


def test_entity_without_id_is_skipped(tmp_path: Path) -> None:
    t = pa.table({"x": np.arange(10)})
    result = audit(tmp_path, {"train": t, "test": t}, "data.leakage.entity")
    assert (result.status, result.message) == ("skipped", "needs data.id in the spec")


def test_temporal_finds_the_planted_rows(planted) -> None:
    truth, results = planted
    r = results["data.leakage.temporal"]
    late = next(f for f in r.findings if f.evidence.get("inside") is not None)
    # the 25 planted rows, plus any conflicting-label copy of a planted row (it inherits the date)
    train = pd.read_parquet(truth.spec.parent / "data" / "train.parquet")
    expected = int((train["applied_at"] >= pd.Timestamp("2025-01-01")).sum())
    assert 25 <= expected <= 25 + len(truth.conflicting_label_train_ids)
    assert late.evidence["rows"] == expected
    assert set(late.evidence["sample_latest_train_ids"]) <= set(truth.temporal_leak_train_ids) | set(
        truth.conflicting_label_train_ids)
    assert len(late.evidence["sample_latest_train_ids"]) == 20
    assert late.severity.value == "medium"
    assert late.evidence["after_first_test_row"] > 3000  # copies of train rows in test reach back to 2024


def test_temporal_clean_split_passes_and_random_split_is_critical(tmp_path: Path) -> None:
    t = pd.date_range("2024-01-01", periods=1000, freq="h")
    train = pa.table({"id": np.arange(800), "at": t[:800]})
    test = pa.table({"id": np.arange(800, 1000), "at": t[800:]})
    clean = audit(tmp_path, {"train": train, "test": test}, "data.leakage.temporal", time="at", id="id")
    assert (clean.status, clean.findings) == ("pass", ())
    rng = np.random.default_rng(0)
    perm = rng.permutation(1000)
    train = pa.table({"id": perm[:800], "at": t[perm[:800]]})
    test = pa.table({"id": perm[800:], "at": t[perm[800:]]})
    mixed = audit(tmp_path, {"train": train, "test": test}, "data.leakage.temporal", time="at", id="id")
    sev = {f.id: f.severity.value for f in mixed.findings}
    assert sev[fingerprint("data.leakage.temporal", "train", "in_test_period")] == "critical"
    assert sev[fingerprint("data.leakage.temporal", "test", "before_train_end")] == "medium"


def test_temporal_numeric_time_and_exact_counts(tmp_path: Path) -> None:
    train = pa.table({"year": np.array([2000] * 90 + [2010] * 10)})
    test = pa.table({"year": np.array([2010] * 50 + [2011] * 50)})
    r = audit(tmp_path, {"train": train, "test": test}, "data.leakage.temporal", time="year")
    late = next(f for f in r.findings if "inside" in f.evidence)
    assert (late.evidence["rows"], late.evidence["test_period"]) == (10, [2010, 2011])
    assert late.severity.value == "critical"
    assert sorted(late.evidence["sample_latest_train_ids"]) == list(range(90, 100))  # row numbers


def test_new_checks_are_batch_invariant(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    truth, results = planted
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    small = {c.id: c for c in run_audit(load_spec(truth.spec), only=MINE).checks}
    for cid in MINE:
        a, b = results[cid], small[cid]
        assert (a.status, a.message, a.metrics) == (b.status, b.message, b.metrics), cid
        assert [f.to_dict() for f in a.findings] == [f.to_dict() for f in b.findings], cid
        assert a.status == "fail", cid  # each finds its planted flaw
