"""data.leakage.label_mismatch and data.leakage.category_mismatch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.audit import run_audit
from mlwarden.checks.data import mismatch
from mlwarden.findings import CheckResult, fingerprint
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_tables, make_pipeline  # noqa: E402

LABEL, CAT = "data.leakage.label_mismatch", "data.leakage.category_mismatch"



@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    truth = make_pipeline(tmp_path_factory.mktemp("planted"))
    return truth, {c.id: c for c in run_audit(load_spec(truth.spec), only=(LABEL, CAT)).checks}


def audit(root: Path, splits: dict[str, pa.Table], check: str, **keys: str) -> CheckResult:
    return audit_tables(root, splits, check, row_group_size=100, **keys)


def test_planted_unseen_label(planted) -> None:
    truth, r = planted
    [f] = r[LABEL].findings
    assert f.evidence["unseen_values"] == [[truth.unseen_test_label, 1]]
    assert f.severity.value == "medium" and f.id == fingerprint(LABEL, "test", "approved")
    assert r[LABEL].metrics["train_classes"] == ["no", "yes"]


def test_planted_unseen_category_and_case_variants(planted) -> None:
    truth, r = planted
    region = next(f for f in r[CAT].findings if f.evidence["column"] == "region" and f.evidence["split"] == "test")
    assert [truth.unseen_test_category, 1] in region.evidence["unseen_values"]
    assert region.evidence["rows"] == 30  # atlantis + 29 upper-cased near copies
    assert region.evidence["formatting_variant_rows"] == 29
    assert "birth_date" in r[CAT].metrics["high_cardinality"]  # unique per row: not categorical
    assert "customer_id" not in r[CAT].metrics["columns"]


@pytest.mark.parametrize(("unseen", "severity"), [(1, "medium"), (9, "medium"), (10, "high")])
def test_label_severity(tmp_path: Path, unseen: int, severity: str) -> None:
    train = pa.table({"y": ["a", "b"] * 500})
    test = pa.table({"y": ["a"] * (1000 - unseen) + ["c"] * unseen})
    [f] = audit(tmp_path, {"train": train, "test": test}, LABEL, label="y").findings
    assert (f.severity.value, f.evidence["rows"]) == (severity, unseen)


def test_numeric_labels_compare_by_value(tmp_path: Path) -> None:
    train = pa.table({"y": np.array([0, 1] * 50)})
    test = pa.table({"y": np.array([0.0, 1.0, 2.0] * 10)})
    r = audit(tmp_path, {"train": train, "test": test}, LABEL, label="y")
    [f] = r.findings
    assert f.evidence["unseen_values"] == [["2.0", 10]]


def test_too_many_label_values_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mismatch, "CAP", 50)
    t = pa.table({"y": np.arange(100) * 0.5})
    r = audit(tmp_path, {"train": t, "test": t}, LABEL, label="y")
    assert r.status == "skipped" and "more than 50 distinct values" in r.message


def test_category_values_are_truncated_and_pii_withheld(tmp_path: Path) -> None:
    train = pa.table({"c": ["a", "b"] * 200})
    test = pa.table({"c": ["x" * 60, "jane@example.com", "+1 415 555 0100", "a"] * 50})
    r = audit(tmp_path, {"train": train, "production": test}, CAT)
    [f] = r.findings
    shown = [v for v, _ in f.evidence["unseen_values"]]
    assert "x" * 39 + "…" in shown
    assert shown.count("<redacted: looks like personal data>") == 2
    assert "jane@example.com" not in str(f.to_dict())
    assert f.severity.value == "high"  # 75 % of production rows


def test_high_cardinality_column_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mismatch, "CAP", 100)
    train = pa.table({"c": [f"v{i % 300}" for i in range(3000)], "d": ["p", "q"] * 1500})
    test = pa.table({"c": ["new"] * 10, "d": ["r"] * 10})
    r = audit(tmp_path, {"train": train, "test": test}, CAT)
    assert r.metrics["high_cardinality"] == ["c"] and r.metrics["columns"] == ["d"]
    [f] = r.findings
    assert f.evidence["column"] == "d"


def test_no_categorical_columns_skips(tmp_path: Path) -> None:
    t = pa.table({"x": [1.0, 2.0]})
    r = audit(tmp_path, {"train": t, "test": t}, CAT)
    assert (r.status, r.message) == ("skipped", "the training data has no categorical columns")
