"""data.quality.*: column health, class balance, duplicates within splits, constraints."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlwarden.audit import run_audit
from mlwarden.spec import load_spec


def _audit(tmp_path: Path, frames: dict[str, pd.DataFrame], extra: str = "", only: str = "data.quality.*"):
    (tmp_path / "d").mkdir(exist_ok=True)
    lines = ["name: q", "data:"]
    for split, df in frames.items():
        if split.endswith("_csv"):
            split = split[:-4]
            df.to_csv(tmp_path / "d" / f"{split}.csv", index=False)
            lines.append(f"  {split}: d/{split}.csv")
        else:
            df.to_parquet(tmp_path / "d" / f"{split}.parquet", index=False)
            lines.append(f"  {split}: d/{split}.parquet")
    (tmp_path / "mlwarden.yaml").write_text("\n".join(lines) + "\n" + extra)
    report = run_audit(load_spec(tmp_path / "mlwarden.yaml"), only=[only])
    return {c.id: c for c in report.checks}


def test_column_health(tmp_path: Path) -> None:
    n = 1000
    train = pd.DataFrame({
        "id": range(n),
        "const": ["US"] * n,
        "near": ["a"] * 995 + ["b"] * 5,
        "empty": [None] * 600 + ["x"] * 400,
        "markers": ["NA"] * 10 + ["n/a"] * 5 + [None] * 5 + ["v"] * 980,
        "mixed": ["12", "3.5", "abc"] * 333 + ["7"],
        "ok": range(n),
    })
    test = pd.DataFrame({"id": range(10), "ok": [str(i) for i in range(10)]})
    checks = _audit(tmp_path, {"train": train, "test": test}, "  id: id\n", "data.quality.columns")
    found = {f.title.split(":")[0].split(" ")[0]: f for f in checks["data.quality.columns"].findings}
    titles = [f.title for f in checks["data.quality.columns"].findings]
    assert any(t == "const is constant in data.train (100.00% one value)" for t in titles)
    assert any(t.startswith("near is near-constant in data.train (99.50% one value)") for t in titles)
    assert any(t == "empty: 60% of data.train is missing" for t in titles)
    markers = [f for f in checks["data.quality.columns"].findings if f.title.startswith("markers: missing values written 3 ways")]
    assert markers and markers[0].evidence["markers"] == {"NA": 10, "n/a": 5} and markers[0].severity.value == "medium"
    mixed = [f for f in checks["data.quality.columns"].findings if f.title.startswith("mixed mixes numbers and text")]
    assert mixed and mixed[0].evidence == {"split": "train", "numeric": 667, "text": 333}
    assert any(t.startswith("ok has different types across splits") for t in titles)
    assert "ok" not in found or "constant" not in found["ok"].title
    assert "id" not in {f.location.column for f in checks["data.quality.columns"].findings}


def test_class_balance_and_duplicates(tmp_path: Path) -> None:
    train = pd.DataFrame({"x": list(range(950)) + [1] * 50, "y": [0] * 950 + [1] * 50})
    test = pd.DataFrame({"x": range(100), "y": [0] * 70 + [1] * 30})
    checks = _audit(tmp_path, {"train": train, "test": test}, "  label: y\n")
    bal = checks["data.quality.class_balance"]
    titles = sorted(f.title for f in bal.findings)
    assert titles == ["y=1 is 30.0% of test but 5.0% of train", "y=1 is 5.0% of data.train"]
    assert bal.metrics["counts"]["train"] == {"0": 950, "1": 50}
    dup = checks["data.quality.duplicates"]
    [f] = dup.findings
    # (1, 1) appears 50 times; the first is an original, 49 are repeats; (1, 0) at row 1 differs by label
    assert f.evidence["repeated_rows"] == 49 and f.severity.value == "medium"
    assert f.evidence["sample_row_ids"][:3] == [951, 952, 953]


def test_out_of_range_against_spec(tmp_path: Path) -> None:
    train = pd.DataFrame({"id": [10, 11, 12, 13, 14], "age": [30, 140, 17, 45.5, None],
                          "region": ["north", "south", "atlantis", None, "west"]})
    feedback = pd.DataFrame({"id": [20, 21], "age": ["33", "old"], "region": ["east", "east"]})
    extra = ("  id: id\nfeatures:\n  age: {type: int, min: 18, max: 100}\n"
             "  region: {type: category, values: [north, south, east, west]}\n")
    checks = _audit(tmp_path, {"train": train, "feedback_csv": feedback}, extra, "data.quality.out_of_range")
    by = {(f.evidence["split"], f.location.column): f for f in checks["data.quality.out_of_range"].findings}
    age = by[("train", "age")]
    assert age.evidence["by_kind"] == {"above max": 1, "below min": 1, "not an integer": 1}
    assert age.evidence["sample_row_ids"] == [11, 12, 13] and age.severity.value == "medium"
    assert by[("train", "region")].evidence["sample_row_ids"] == [12]
    assert by[("feedback", "age")].evidence["by_kind"] == {"not a number": 1}


def test_out_of_range_skipped_without_constraints(tmp_path: Path) -> None:
    checks = _audit(tmp_path, {"train": pd.DataFrame({"a": [1]})}, "", "data.quality.out_of_range")
    assert checks["data.quality.out_of_range"].status == "skipped"
    assert checks["data.quality.out_of_range"].message == "needs constraints under `features:` or `constraints:` in the spec"


def test_planted_pipeline(tmp_path: Path) -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from pipelines import make_pipeline

    truth = make_pipeline(tmp_path / "p")
    report = run_audit(load_spec(truth.spec), only=["data.quality.*"])
    by = {c.id: c for c in report.checks}
    [age] = [f for f in by["data.quality.out_of_range"].findings if f.location.column == "age" and f.evidence["split"] == "train"]
    assert sorted(age.evidence["sample_row_ids"]) == truth.out_of_range_ids
    assert any(f.title.startswith(f"{truth.constant_column} is constant") for f in by["data.quality.columns"].findings)


@pytest.mark.parametrize("check", ["data.quality.columns", "data.quality.class_balance",
                                   "data.quality.duplicates", "data.quality.out_of_range"])
def test_registered(check: str) -> None:
    from mlwarden.registry import all_checks

    assert check in all_checks()
