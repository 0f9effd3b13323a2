"""fairness.representation and fairness.base_rates on planted data and on the demo."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import mlwarden.checks.fairness.base_rates  # noqa: F401  (registers the check)
import mlwarden.checks.fairness.representation  # noqa: F401  (registers the check)
from mlwarden.audit import run_audit
from mlwarden.fairness.stats import newcombe, wilson
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import write_parquet  # noqa: E402

IDS = ["fairness.representation", "fairness.base_rates"]
SPEC = """\
name: planted-bias
data:
  train: train.parquet
  test: test.parquet
  production: prod.parquet
  label: approved
  id: pid
  sensitive: [grp]
fairness:
  favorable: 1
  reference: {grp: a}
"""


def _pipeline(root: Path) -> Path:
    """grp a: 400 rows, 60 % approved; b: 200 rows, 25 % approved, ``x`` missing for 40 % of b;
    c: 12 rows (under min_group_size). Production: b grows from a third to two thirds."""
    rng = np.random.default_rng(3)
    grp = np.array(["a"] * 400 + ["b"] * 200 + ["c"] * 12)
    approved = np.concatenate([np.r_[np.ones(240), np.zeros(160)], np.r_[np.ones(50), np.zeros(150)],
                               np.r_[np.ones(6), np.zeros(6)]]).astype(np.int64)
    x = rng.normal(size=grp.size)
    x[400:480] = np.nan  # 80 of b's 200 rows
    write_parquet(root / "train.parquet", {"pid": np.arange(grp.size), "grp": grp, "x": x, "approved": approved},
                  row_group_size=97)
    tg = np.array(["a"] * 100 + ["b"] * 50)
    write_parquet(root / "test.parquet", {"pid": np.arange(10_000, 10_150), "grp": tg, "x": rng.normal(size=150),
                                          "approved": rng.integers(0, 2, 150)})
    pg = np.array(["a"] * 100 + ["b"] * 200)
    write_parquet(root / "prod.parquet", {"pid": np.arange(20_000, 20_300), "grp": pg, "x": rng.normal(size=300)})
    (root / "mlwarden.yaml").write_text(SPEC, encoding="utf-8")
    return root / "mlwarden.yaml"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pipeline(tmp_path_factory.mktemp("bias"))


@pytest.fixture(scope="module")
def results(planted: Path) -> dict:
    report = run_audit(load_spec(planted), only=IDS)
    return {c.id: c for c in report.checks}


def test_wilson_and_newcombe_match_published_values() -> None:
    # Newcombe (1998), Table II example: 56/70 vs 48/80 → difference 0.2, 95 % CI 0.0524 to 0.3339
    lo, hi = newcombe(56, 70, 48, 80, 1.959964)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    lo, hi = wilson(0, 10, 1.959964)
    assert lo == 0.0 and round(hi, 4) == 0.2775


def test_base_rates_per_group_with_intervals(results: dict) -> None:
    c = results["fairness.base_rates"]
    assert c.status == "fail"
    train = c.metrics["train"]["grp"]
    assert train["a"]["rate"] == 0.6 and train["b"]["rate"] == 0.25 and train["c"]["rate"] == 0.5
    lo, hi = train["b"]["rate_ci"]
    assert lo < 0.25 < hi and hi - lo < 0.13
    assert train["b"]["reference"] == "a" and train["b"]["difference"] == -0.35
    assert math.isclose(train["b"]["ratio"], 0.25 / 0.6, abs_tol=1e-4)
    assert train["b"]["ratio_ci"][1] < 0.8 and train["b"]["q_value"] < 0.001
    assert train["c"]["too_small"] is True
    [f] = c.findings  # c is too small to judge: no finding for it
    assert f.severity.value == "high" and f.evidence["group"] == "b" and f.location.column == "grp"
    assert "25.0% favorable labels in train vs 60.0% for grp=a" in f.title
    assert "test_rate" in f.evidence and set(c.metrics["test"]["grp"]) == {"a", "b"}


def test_representation_small_group_shift_and_missingness(results: dict) -> None:
    c = results["fairness.representation"]
    groups = c.metrics["groups"]["grp"]
    assert groups["train"]["c"] == {"rows": 12, "share": round(12 / 612, 4)}
    assert groups["production"]["b"]["rows"] == 200
    by_key = {(f.evidence.get("group"), f.evidence.get("split"), f.evidence.get("column")): f for f in c.findings}
    small = by_key[("c", None, None)]
    assert small.severity.value == "medium" and "under-represented" in small.title
    shift = by_key[("b", "production", None)]
    assert shift.severity.value == "medium" and shift.evidence["share"] == round(200 / 300, 4)
    missing = by_key[(None, "train", "x")]
    assert missing.severity.value == "medium" and missing.evidence["null_rate"] == {"a": 0.0, "b": 0.4}
    assert not any(f.evidence.get("split") == "test" and f.evidence.get("group") for f in c.findings), \
        "test has the same shares as train (a 2:1 split)"


def test_base_rates_skip_when_no_label_is_favorable(tmp_path: Path) -> None:
    spec = _pipeline(tmp_path)
    spec.write_text(SPEC.replace("favorable: 1", "favorable: approved"), encoding="utf-8")
    [c] = run_audit(load_spec(spec), only=["fairness.base_rates"]).checks
    assert c.status == "skipped"
    assert c.message == ("no labelled training row equals fairness.favorable ('approved'); set fairness.favorable "
                         "to the label value of the good outcome")


def test_same_result_with_tiny_batches(planted: Path, results: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "BATCH_ROWS", 31)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    small = {c.id: c for c in run_audit(load_spec(planted), only=IDS).checks}
    for cid in IDS:
        assert small[cid].metrics == results[cid].metrics
        assert [f.to_dict() for f in small[cid].findings] == [f.to_dict() for f in results[cid].findings]


def test_demo_shows_race_disparities_with_intervals(demo_dir: Path) -> None:
    checks = {c.id: c for c in run_audit(load_spec(demo_dir / "mlwarden.yaml"), only=IDS).checks}
    race = checks["fairness.base_rates"].metrics["train"]["race"]
    assert set(race) == {"white", "black", "hispan"}
    for g in ("black", "hispan"):
        lo, hi = race[g]["rate_ci"]
        assert lo < race[g]["rate"] < hi < race["white"]["rate_ci"][0], "clearly below white, CIs apart"
        assert race[g]["reference"] == "white" and race[g]["ratio_ci"][1] < 1
    found = {(f.evidence["attribute"], f.evidence["group"]) for f in checks["fairness.base_rates"].findings}
    assert {("race", "black"), ("race", "hispan")} <= found
    assert set(checks["fairness.representation"].metrics["groups"]["sex"]["train"]) == {"male", "female", "(missing)"}
