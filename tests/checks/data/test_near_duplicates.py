"""data.leakage.near_duplicates: the planted near copies, each kind of near copy, exclusions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlwarden.audit import run_audit
from mlwarden.checks.data import near_duplicates  # noqa: F401
from mlwarden.checks.data.near_duplicates import value_hashes
from mlwarden.findings import CheckResult
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_tables, make_pipeline  # noqa: E402

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
    kinds = {"noise": range(0, 20), "format": range(20, 40), "one": range(40, 60), "two": range(60, 80),
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
