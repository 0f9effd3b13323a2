"""data.leakage.near_duplicates: the planted near copies, each kind of near copy, exclusions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlwarden.audit import run_audit
from mlwarden.checks.data import near_duplicates, rowstore  # noqa: F401  (registers the check)
from mlwarden.checks.data.near_values import value_hashes
from mlwarden.findings import CheckResult
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_tables, make_pipeline

NEAR = "data.leakage.near_duplicates"



def audit(root: Path, splits: dict[str, pa.Table], **keys: str) -> CheckResult:
    return audit_tables(root, splits, NEAR, row_group_size=300, **keys)


def frame(n: int, seed: int, id0: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"uid": np.arange(id0, id0 + n), "a": rng.normal(100, 30, n).round(3), "b": rng.lognormal(8, 1, n),
            "c": rng.integers(0, 10**6, n), "name": np.array([f"Item number {i}" for i in rng.integers(0, 10**7, n)], dtype=object),
            "cat": rng.choice(["x", "y", "z"], n), "d": rng.normal(0, 1, n), "e": rng.integers(0, 10**6, n),
            "f": rng.uniform(0, 1, n)}


def test_planted_near_duplicates_exactly(tmp_path: Path) -> None:
    truth = make_pipeline(tmp_path)
    [r] = run_audit(load_spec(truth.spec), only=(NEAR,)).checks
    [f] = r.findings
    assert f.evidence["near_duplicate_rows"] == 30  # recall 30/30 …
    found = [p[0] for p in f.evidence["sample_pairs"]]
    assert set(found) <= set(truth.near_dup_test_ids)  # … and every sample is a planted row
    assert r.metrics["test"]["exact_duplicates_excluded"] == 40  # the 40 exact copies are not counted here
    assert f.severity.value == "high"  # 30 of 1070: 2.8 %
    assert r.metrics["production"]["near_duplicate_rows"] == 0
    assert r.metrics["feedback"]["near_duplicate_rows"] == 0


def test_each_kind_is_found_and_counted(tmp_path: Path) -> None:
    train = frame(3000, 1, 0)
    test = frame(1000, 2, 10_000)
    src = np.arange(0, 100, 5)  # 20 source rows per kind
    kinds = {"noise": range(20), "format": range(20, 40), "one": range(40, 60), "two": range(60, 80),
             "exact": range(80, 100)}
    for k, rows in kinds.items():
        for i, s in zip(rows, src):
            for col in ("a", "b", "c", "name", "cat", "d", "e", "f"):
                test[col][i] = train[col][s]
            if k == "noise":
                test["b"][i] *= 1.0002
                test["a"][i] += 0.01
            elif k == "format":
                test["name"][i] = "  " + train["name"][s].upper().replace(" ", "   ") + "."
            elif k == "one":
                test["c"][i] = 7
            elif k == "two":
                test["c"][i], test["d"][i] = 7, 0.5
    r = audit(tmp_path, {"train": pa.table(train), "test": pa.table(test)}, id="uid")
    [f] = r.findings
    assert f.evidence["by_kind"] == {"normalized": 40, "one_column": 20, "two_columns": 20}
    assert r.metrics["test"]["exact_duplicates_excluded"] == 20
    assert f.evidence["differing_columns"] == {"c": 40, "d": 20}
    assert f.evidence["sample_pairs"][0] == [10_000, 0]
    assert f.severity.value == "high"  # 80 of 1000


def test_common_values_alone_are_not_a_near_duplicate(tmp_path: Path) -> None:
    # rows agreeing on all but two columns, where the agreeing columns are low-information
    n = 2000

    def t(seed: int) -> pa.Table:
        r = np.random.default_rng(seed)
        cols = {f"k{j}": r.integers(0, 2, n) for j in range(8)}
        return pa.table(cols | {"u": r.normal(size=n), "v": r.normal(size=n)})
    result = audit(tmp_path, {"train": t(1), "test": t(2)})
    assert result.metrics["test"]["by_kind"]["two_columns"] == 0
    assert result.metrics["chance_bits_required"] > 30


def test_grid_offsets_catch_values_near_a_boundary() -> None:
    for steps, agree in ((0.24, 3), (0.49, 2)):
        x = np.array([1000.0, 1000.0 * 2 ** (steps / 256)])
        for base in (x, x * 1.00137, x * 3.3):
            h = value_hashes(pa.array(base))
            assert (h[0] == h[1]).sum() >= agree  # a quarter step apart: same cell on ≥ 3 of 4 grids
    far = value_hashes(pa.array([1000.0, 1010.0]))
    assert (far[0] == far[1]).sum() == 0
    text = value_hashes(pa.array(["New  York!", " new york"]))
    assert (text[0] == text[1]).all()


def test_without_shared_columns_skips(tmp_path: Path) -> None:
    r = audit(tmp_path, {"train": pa.table({"uid": [1], "a": [1.0]}), "test": pa.table({"uid": [2], "b": [1.0]})},
              id="uid")
    assert (r.status, r.message) == ("skipped", "train and the evaluation splits share no feature columns")


def test_every_evaluation_split_is_matched_and_counted_on_its_own(tmp_path: Path, monkeypatch) -> None:
    # the splits are joined to train together: counts, samples and candidates must stay per split
    monkeypatch.setattr(rowstore, "SPILL_BYTES", 1)  # and read back from disk
    train = frame(3000, 1, 0)
    splits = {"test": frame(500, 2, 10_000), "production": frame(400, 3, 20_000), "feedback": frame(300, 4, 30_000)}
    planted = {"test": (0, 5, "one"), "production": (100, 8, "noise"), "feedback": (200, 3, "two")}
    for split, (src0, count, kind) in planted.items():
        ev = splits[split]
        for i in range(count):
            for col in ("a", "b", "c", "name", "cat", "d", "e", "f"):
                ev[col][i] = train[col][src0 + i]
            if kind == "noise":
                ev["b"][i] *= 1.0001
            elif kind == "one":
                ev["e"][i] = 3
            else:
                ev["e"][i], ev["f"][i] = 3, 0.5
    r = audit(tmp_path, {"train": pa.table(train)} | {k: pa.table(v) for k, v in splits.items()}, id="uid")
    assert r.metrics["test"]["by_kind"] == {"normalized": 0, "one_column": 5, "two_columns": 0}
    assert r.metrics["production"]["by_kind"] == {"normalized": 8, "one_column": 0, "two_columns": 0}
    assert r.metrics["feedback"]["by_kind"] == {"normalized": 0, "one_column": 0, "two_columns": 3}
    index = r.metrics["index"]
    assert index["test_candidates"] >= 5 and index["feedback_candidates"] >= 3  # planted, plus chance pairs
    assert index["test_candidates"] + index["production_candidates"] + index["feedback_candidates"] < 50
    pairs = {f.evidence["split"]: f.evidence["sample_pairs"] for f in r.findings}
    assert pairs["test"] == [[10_000 + i, i] for i in range(5)]
    assert pairs["production"] == [[20_000 + i, 100 + i] for i in range(8)]
    assert pairs["feedback"] == [[30_000 + i, 200 + i] for i in range(3)]
    assert {f.evidence["split"]: f.evidence["differing_columns"] for f in r.findings}["feedback"] == {"e": 3, "f": 3}


def test_more_columns_than_slots_fold_and_still_find_a_changed_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)

    def wide(n: int, id0: int) -> dict[str, np.ndarray]:
        return {"uid": np.arange(id0, id0 + n)} | {f"x{j:02d}": rng.integers(0, 10**6, n) for j in range(40)}
    train, test = wide(2000, 0), wide(300, 10_000)
    for i in range(10):
        for j in range(40):
            test[f"x{j:02d}"][i] = train[f"x{j:02d}"][50 + i]
        test["x07"][i] = -1
    r = audit(tmp_path, {"train": pa.table(train), "test": pa.table(test)}, id="uid")
    assert r.metrics["signature_slots"] == 32 and r.metrics["feature_columns"] == 40
    [f] = r.findings
    assert f.evidence["by_kind"] == {"normalized": 0, "one_column": 10, "two_columns": 0}
    assert f.evidence["sample_pairs"] == [[10_000 + i, 50 + i] for i in range(10)]
    assert f.evidence["differing_columns"] == {"x07|x39": 10}  # 40 columns in 32 slots: slot 7 holds x07 and x39
