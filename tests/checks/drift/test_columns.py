"""data.drift.columns on the planted pipeline and on targeted data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import mlwarden.checks.drift.columns  # noqa: F401  (registers the check)
from mlwarden.audit import run_audit
from mlwarden.findings import Severity
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import make_pipeline  # noqa: E402

CHECK = "data.drift.columns"
# drawn from one distribution in every split of the planted pipeline
STABLE = ("age", "sex", "race", "country", "promo_code_len", "decision_code")


def _run(spec: Path):
    report = run_audit(load_spec(spec), only=[CHECK])
    (result,) = report.checks
    return result


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    truth = make_pipeline(tmp_path_factory.mktemp("planted"))
    return truth, _run(truth.spec)


def test_planted_income_drift_is_flagged_high_with_intervals(planted) -> None:
    truth, result = planted
    assert result.status == "fail"
    r = result.metrics["columns"]["production"][truth.drifted_column]
    assert r["severity"] == "high" and r["method"] == "exact" and r["ks_method"] == "scipy.stats.ks_2samp"
    assert r["ks_d_ci"][0] > 0.15 and r["ks_d_ci"][0] <= r["ks_d"] <= r["ks_d_ci"][1]
    assert r["psi"] >= 0.25 and r["psi_ci"][0] > 0.25
    assert r["q_value"] < 1e-10 and r["median_other"] / r["median_train"] == pytest.approx(1.4, rel=0.05)
    (f,) = [f for f in result.findings if f.location.column == truth.drifted_column]
    assert f.severity is Severity.HIGH and f.evidence["split"] == "production"
    assert f.location.artifact == "data/prod" and "95% CI" in f.description and "q = " in f.description


def test_planted_stable_columns_are_not_flagged(planted) -> None:
    truth, result = planted
    flagged = result.metrics["flagged"]
    for split, cols in flagged.items():
        assert not set(cols) & set(STABLE), split
    assert truth.drifted_column not in flagged["test"] + flagged["feedback"]
    # every stable column was actually tested, in every comparison
    for split in ("test", "production", "feedback"):
        assert set(STABLE) - {"decision_code"} <= set(result.metrics["columns"][split])


def test_planted_exclusions_and_skips(planted) -> None:
    _, result = planted
    m = result.metrics
    assert m["excluded_columns"] == ["applied_at", "customer_id"]
    for cols in m["columns"].values():
        assert not {"applied_at", "customer_id"} & set(cols)
    assert "approved" in m["columns"]["test"] and "approved" not in m["columns"]["production"]
    assert "identifier or free text" in m["skipped_columns"]["test.birth_date"]  # ~unique strings
    assert m["tests"] == sum(len(c) for c in m["columns"].values())
    assert {c.title.split(":")[0] for c in result.charts} == {"train → test", "train → production", "train → feedback"}
    assert result.charts[0].values == tuple(sorted(result.charts[0].values, reverse=True))


def test_batch_boundaries_change_nothing(planted, monkeypatch) -> None:
    truth, result = planted
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    small = _run(truth.spec)
    assert small.metrics == result.metrics
    assert [f.to_dict() for f in small.findings] == [f.to_dict() for f in result.findings]


def _write(root: Path, train: pd.DataFrame, **others: pd.DataFrame) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    lines = ["name: drift", "data:", "  train: data/train.parquet"]
    train.to_parquet(root / "data" / "train.parquet", index=False, row_group_size=10_000)
    for split, df in others.items():
        df.to_parquet(root / "data" / f"{split}.parquet", index=False, row_group_size=10_000)
        lines.append(f"  {split}: data/{split}.parquet")
    (root / "mlwarden.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "mlwarden.yaml"


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    cols: dict[str, object] = {f"x{i}": rng.normal(i, 1 + i / 5, n) for i in range(8)}
    cols["x0"] = rng.normal(shift / 5, 1, n)  # shifted by 0.1 sd: significant at 30k rows, not material
    cols["count"] = rng.poisson(3, n)
    cols["flag"] = rng.random(n) < 0.3
    for j, k in enumerate((3, 5, 12)):
        cols[f"cat{j}"] = rng.choice([f"v{v}" for v in range(k)], n)
    cols["amount"] = rng.lognormal(5 + shift, 1, n)
    return pd.DataFrame(cols)


def test_false_positive_control_at_scale_and_histogram_bounds(tmp_path: Path) -> None:
    """30k rows per split: continuous columns go past the exact cap; 12 stable, 1 shifted, 1 nudged."""
    rng = np.random.default_rng(11)
    train, prod = _frame(rng, 30_000), _frame(rng, 30_000, shift=0.5)
    result = _run(_write(tmp_path, train, production=prod))
    assert result.metrics["flagged"] == {"production": ["amount"]}
    amount = result.metrics["columns"]["production"]["amount"]
    assert amount["method"].startswith("histogram") and amount["ks_method"].startswith("D from counts")
    lo, hi = amount["ks_d_bounds"]
    exact = sps.ks_2samp(train["amount"], prod["amount"]).statistic
    assert lo - 1e-6 <= exact <= hi + 1e-6 and hi - lo < 0.01
    assert amount["ks_d_ci"][0] <= exact <= amount["ks_d_ci"][1]
    (f,) = result.findings
    assert f.severity is Severity.MEDIUM and "bounded histograms" in f.description
    assert result.metrics["columns"]["production"]["count"]["method"] == "exact"  # discrete stays exact
    nudged = result.metrics["columns"]["production"]["x0"]
    assert nudged["q_value"] < 1e-6 and nudged["severity"] is None  # never flagged on the p-value alone


def test_categorical_shift_and_new_category(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    train = pd.DataFrame({"plan": rng.choice(["a", "b", "c"], 5000, p=[0.6, 0.3, 0.1])})
    test = pd.DataFrame({"plan": rng.choice(["a", "b", "c", "z"], 2000, p=[0.3, 0.3, 0.1, 0.3])})
    result = _run(_write(tmp_path, train, test=test))
    r = result.metrics["columns"]["test"]["plan"]
    assert r["severity"] == "high" and r["cramers_v"] >= 0.3 and r["cramers_v_ci"][0] > 0.3
    assert r["largest_changes"][0]["category"] in ("a", "z") and r["count_error_bound"] == 0
    ref = sps.chi2_contingency(np.array([[(train.plan == v).sum() for v in "abcz"],
                                         [(test.plan == v).sum() for v in "abcz"]]), correction=False)
    assert r["chi2"] == pytest.approx(ref.statistic, rel=1e-6)


def test_incomparable_types_are_skipped_with_a_reason(tmp_path: Path) -> None:
    train = pd.DataFrame({"n": np.arange(100.0), "m": np.arange(100.0)})
    test = pd.DataFrame({"n": [f"x{i}" for i in range(100)], "m": np.arange(100.0)})
    result = _run(_write(tmp_path, train, test=test))
    why = result.metrics["skipped_columns"]["test.n"]
    assert why.startswith("type ") and why.endswith("string in data.test cannot be compared with train's")
    assert list(result.metrics["columns"]["test"]) == ["m"]


def test_skips_without_shared_columns_or_eval_split(tmp_path: Path) -> None:
    result = _run(_write(tmp_path / "a", pd.DataFrame({"a": [1.0]}), test=pd.DataFrame({"b": [1.0]})))
    assert result.status == "skipped" and result.message == (
        "train and the evaluation splits share no comparable feature columns")
    result = _run(_write(tmp_path / "b", pd.DataFrame({"a": [1.0]})))
    assert result.status == "skipped" and result.message == (
        "needs data.test, data.production or data.feedback in the spec")


def test_null_markers_compare_the_same_from_csv_and_parquet(tmp_path: Path) -> None:
    """Train as parquet keeps "n/a" and "" as strings; feedback as CSV reads them as nulls. The
    same data must not look drifted because of the container."""
    rng = np.random.default_rng(5)

    def frame(n: int) -> pd.DataFrame:
        job = rng.choice(["clerk", "nurse", "driver", "n/a", ""], n, p=[0.3, 0.3, 0.2, 0.15, 0.05])
        return pd.DataFrame({"job": job, "x": rng.normal(size=n)})

    spec = _write(tmp_path, frame(20_000))
    frame(20_000).to_csv(tmp_path / "data" / "feedback.csv", index=False)
    spec.write_text(spec.read_text() + "  feedback: data/feedback.csv\n", encoding="utf-8")
    result = _run(spec)
    assert result.status != "error", result.message
    assert not [f for f in result.findings if "job" in f.title], [f.title for f in result.findings]
