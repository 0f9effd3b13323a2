"""data.leakage.exact_duplicates: severity per split, excluded columns, row ids, skips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import mlwarden.sources.datasets as datasets_mod
from mlwarden.findings import CheckResult, fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_tables  # noqa: E402

LEAK = "data.leakage.exact_duplicates"
N = 1_000


def train_table(n: int = N) -> pa.Table:
    i = np.arange(n)
    return pa.table({"uid": i, "label": i % 2, "x": i * 2, "y": np.where(i % 3 == 0, "a", "b")})


def split_table(n: int, dups: int, *, id0: int = 50_000) -> pa.Table:
    """``n`` rows, the first ``dups`` copied from train (other id, flipped label, x as float)."""
    i = np.arange(n)
    x = np.where(i < dups, i * 2, 10**7 + i).astype(np.float64)
    y = np.where(i % 3 == 0, "a", "b")
    return pa.table({"uid": i + id0, "label": 1 - i % 2, "x": x, "y": y})


def audit(root: Path, splits: dict[str, pa.Table | list[pa.Table]], **keys: str) -> CheckResult:
    """Write the splits (a list: a folder of files) and a spec; audit; the check's result."""
    return audit_tables(root, splits, LEAK, row_group_size=128, **keys)


@pytest.mark.parametrize(("split", "dups", "severity"), [
    ("test", 100, "critical"), ("test", 99, "high"), ("test", 20, "high"), ("test", 19, "medium"),
    ("test", 5, "medium"), ("test", 4, "low"), ("test", 1, "low"),
    ("feedback", 50, "medium"), ("feedback", 49, "low"), ("feedback", 1, "low"),
    ("production", 10, "low"), ("production", 9, "info"), ("production", 1, "info"),
])
def test_severity_scale_per_split(tmp_path: Path, split: str, dups: int, severity: str) -> None:
    result = audit(tmp_path, {"train": train_table(), split: split_table(N, dups)}, label="label", id="uid")
    [finding] = result.findings
    assert finding.severity.value == severity
    assert result.status == ("pass" if severity == "info" else "fail")
    assert finding.evidence["duplicated_rows"] == dups
    assert finding.evidence["share"] == round(dups / N, 6)
    assert result.metrics[split] == {"rows": N, "duplicated_rows": dups, "share": round(dups / N, 6),
                                     "distinct_duplicated": dups}
    assert finding.id == fingerprint(LEAK, split)  # what was found, not how much
    assert finding.title.startswith(f"{dups} of {N} {split} rows")


def test_no_duplicates_passes_with_metrics(tmp_path: Path) -> None:
    result = audit(tmp_path, {"train": train_table(), "test": split_table(N, 0)}, label="label", id="uid")
    assert result.status == "pass"
    assert result.findings == ()
    assert result.metrics["test"]["duplicated_rows"] == 0
    assert result.metrics["train_distinct_rows"] == N


def test_label_and_id_are_excluded_other_extra_columns_ignored(tmp_path: Path) -> None:
    test = split_table(N, 30).append_column("score", pa.array(np.zeros(N)))
    result = audit(tmp_path, {"train": train_table(), "test": test}, label="label", id="uid")
    assert result.metrics["feature_columns"] == 2  # x and y
    assert result.metrics["ignored_columns"] == ["score"]
    assert result.metrics["test"]["duplicated_rows"] == 30


def test_without_label_and_id_in_the_spec_those_columns_count(tmp_path: Path) -> None:
    # the copies carry other ids and labels: as features, they make every row distinct
    result = audit(tmp_path, {"train": train_table(), "test": split_table(N, 30)})
    assert result.metrics["feature_columns"] == 4
    assert result.findings == ()


def test_sample_ids_come_from_the_id_column(tmp_path: Path) -> None:
    test = split_table(N, 30)
    test = test.set_column(0, "uid", pa.array([f"app-{v}" for v in range(N)]))
    train = train_table().set_column(0, "uid", pa.array([f"tr-{v}" for v in range(N)]))
    result = audit(tmp_path, {"train": train, "test": test}, label="label", id="uid")
    [finding] = result.findings
    assert finding.evidence["sample_row_ids"] == [f"app-{v}" for v in range(20)]
    assert finding.evidence["id_column"] == "uid"
    assert list(finding.location.rows) == [f"app-{v}" for v in range(20)]


def test_sample_ids_are_row_numbers_without_an_id_column(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(datasets_mod, "BATCH_ROWS", 50)  # row numbers must carry across batches and files
    rng = np.random.default_rng(1)
    first = split_table(300, 0).drop(["uid"])
    second = split_table(300, 0, id0=0).drop(["uid"])
    copied = rng.choice(N, size=25, replace=False)
    where = np.sort(rng.choice(300, size=25, replace=False))
    x = second.column("x").to_numpy().copy()
    y = second.column("y").to_pylist()
    for pos, row in zip(where, copied):
        x[pos], y[pos] = row * 2, "a" if row % 3 == 0 else "b"
    second = second.set_column(1, "x", pa.array(x)).set_column(2, "y", pa.array(y))
    result = audit(tmp_path, {"train": train_table().drop(["uid"]), "test": [first, second]}, label="label")
    [finding] = result.findings
    assert finding.evidence["id_column"] == "(row number)"
    assert finding.evidence["sample_row_ids"] == [300 + int(p) for p in where[:20]]
    assert finding.evidence["duplicated_rows"] == 25


def test_production_only(tmp_path: Path) -> None:
    prod = split_table(N, 40).drop(["label"])
    result = audit(tmp_path, {"train": train_table(), "production": prod}, label="label", id="uid")
    [finding] = result.findings
    assert finding.evidence["split"] == "production"
    assert finding.severity.value == "low"
    assert set(result.metrics) == {"feature_columns", "ignored_columns", "train_distinct_rows", "production"}
    assert finding.evidence["sample_row_ids"] == list(range(50_000, 50_020))


def test_every_eval_split_gets_its_own_finding(tmp_path: Path) -> None:
    result = audit(tmp_path, {"train": train_table(), "test": split_table(N, 150),
                              "production": split_table(N, 3).drop(["label"]),
                              "feedback": split_table(N, 60)}, label="label", id="uid")
    got = {f.evidence["split"]: (f.severity.value, f.evidence["duplicated_rows"]) for f in result.findings}
    assert got == {"test": ("critical", 150), "production": ("info", 3), "feedback": ("medium", 60)}
    assert len({f.id for f in result.findings}) == 3


def test_spec_without_eval_splits_skips_with_a_reason(tmp_path: Path) -> None:
    result = audit(tmp_path, {"train": train_table()}, label="label")
    assert result.status == "skipped"
    assert result.message == "needs data.test, data.production or data.feedback in the spec"


def test_spec_without_train_skips_with_a_reason(tmp_path: Path) -> None:
    result = audit(tmp_path, {"test": split_table(N, 5)}, label="label")
    assert result.status == "skipped"
    assert result.message == "needs data.train in the spec"


def test_no_shared_feature_columns_skips(tmp_path: Path) -> None:
    test = pa.table({"uid": np.arange(10), "label": np.zeros(10, dtype=np.int64), "other": np.ones(10)})
    result = audit(tmp_path, {"train": train_table(), "test": test}, label="label", id="uid")
    assert result.status == "skipped"
    assert result.message == "train and the evaluation splits share no feature columns"
