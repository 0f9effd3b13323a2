"""model.evasion.constrained and model.evasion.gradient through a real audit: saved models, parquet, a spec."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mlwarden.checks.model.evasion  # noqa: F401  (registers model.evasion.constrained and .gradient)
from tests.pipelines import audit_one

CHECK = "model.evasion.constrained"


def _pipeline(root: Path, model, *, feats=("x1", "x2", "age", "open_acc", "total_acc", "home_own", "home_rent"),
              targets: int = 60, queries: int = 20_000, label_from=("x1", "x2")) -> Path:
    rng = np.random.default_rng(5)
    n = 1200
    df = pd.DataFrame({"row_id": np.arange(n), "x1": rng.normal(0, 1, n).round(3), "x2": rng.normal(0, 1, n).round(3),
                       "age": rng.integers(18, 80, n), "open_acc": rng.integers(0, 10, n)})
    df["total_acc"] = df.open_acc + rng.integers(0, 6, n)
    own = rng.random(n) < 0.4
    df["home_own"], df["home_rent"] = own.astype(int), (~own).astype(int)
    score = sum(df[c] for c in label_from) if label_from != ("age",) else (df.age - 48) / 10
    df["y"] = (score + rng.normal(0, 0.2, n) > 0).astype(int)
    model.fit(df.iloc[:800][list(feats)], df.iloc[:800]["y"])
    joblib.dump(model, root / "model.joblib")
    pq.write_table(pa.Table.from_pandas(df.iloc[:800], preserve_index=False), root / "train.parquet")
    pq.write_table(pa.Table.from_pandas(df.iloc[800:], preserve_index=False), root / "test.parquet")
    (root / "mlwarden.yaml").write_text(
        "name: t\ndata:\n  train: train.parquet\n  test: test.parquet\n  label: y\n  id: row_id\n"
        "features:\n  age: {type: int, min: 18, max: 79, immutable: true}\n"
        "  open_acc: {type: int, min: 0, max: 20}\n  total_acc: {type: int, min: 0, max: 30}\n"
        "  x1: {type: float, min: -5, max: 5, step: 0.001}\n"
        "  home_own: {type: int, group: home}\n  home_rent: {type: int, group: home}\n"
        "constraints:\n  - \"open_acc <= total_acc\"\n"
        f"model:\n  artifact: model.joblib\nattacks:\n  targets: {targets}\n  seed: 4\n  queries: {queries}\n",
        encoding="utf-8")
    return root / "mlwarden.yaml"


def test_fragile_model_is_flipped_cheaply_and_high(tmp_path: Path) -> None:
    res = audit_one(_pipeline(tmp_path, LogisticRegression()), CHECK)
    assert res.status == "fail", res.message
    m = res.metrics
    assert m["flip_rate_within_budget"] >= 0.5
    [f] = res.findings
    assert f.severity.value == "high"
    assert m["queries_used"] <= m["query_budget"] == 20_000 and m["seed"] == 4
    assert m["robust_accuracy"] < m["clean_accuracy"]
    assert "age" not in m["sensitivity"] and {"x1", "x2"} & set(m["sensitivity"])
    curve = [p["success_rate"] for p in m["robustness_curve"]]
    assert curve == sorted(curve) and len(curve) == 10
    assert curve[-1] >= [p["success_rate"] for p in m["noise_curve"]][-1]  # the search beats random noise
    for ex in m["minimal_changes"]:
        assert all(c["feature"] != "age" for c in ex["changes"])
    assert m["queries_per_success"] is not None and m["queries_per_success"] > 0


def test_model_reading_only_immutable_features_cannot_be_flipped(tmp_path: Path) -> None:
    spec = _pipeline(tmp_path, LogisticRegression(), feats=("age",), label_from=("age",))
    res = audit_one(spec, CHECK)
    assert res.status == "pass", res.message
    assert res.metrics["flipped_any_cost"] == 0 and not res.findings
    assert res.metrics["robust_accuracy"] == res.metrics["clean_accuracy"] > 0.8


def test_constant_model_gets_no_robust_accuracy_credit(tmp_path: Path) -> None:
    res = audit_one(_pipeline(tmp_path, DummyClassifier(strategy="most_frequent")), CHECK)
    m = res.metrics
    assert res.status == "pass" and m["flipped_any_cost"] == 0
    assert m["robust_accuracy"] == m["clean_accuracy"]  # nothing flips: plain accuracy is the majority rate
    assert m["robust_balanced_accuracy"] == 0.5 and m["robust_skill"] == 0.0


def test_runs_are_deterministic(tmp_path: Path) -> None:
    spec = _pipeline(tmp_path, RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0), targets=30)
    a, b = audit_one(spec, CHECK).metrics, audit_one(spec, CHECK).metrics
    for m in (a, b):
        m.pop("seconds")
    assert a == b


def test_tiny_budget_stops_early_and_is_respected(tmp_path: Path) -> None:
    res = audit_one(_pipeline(tmp_path, LogisticRegression(), queries=200), CHECK)
    m = res.metrics
    assert m["stopped_early"] is True and m["stop_reason"] == "query budget"
    assert m["queries_used"] <= 200


def test_gradient_attack_flips_logistic_regression(tmp_path: Path) -> None:
    pytest.importorskip("art")
    res = audit_one(_pipeline(tmp_path, LogisticRegression()), "model.evasion.gradient")
    assert res.status == "fail", res.message
    m = res.metrics
    assert m["flip_rate_within_budget"] >= 0.1 and m["gradient_calls"] > 0
    # L∞ steps move every mutable feature, so they pay more than the search's sparse flips, but still flip most
    assert next(p["success_rate"] for p in m["robustness_curve"] if p["cost"] == 3.0) >= 0.5
    assert m["queries_used"] <= m["query_budget"]
    for ex in m["minimal_changes"]:
        assert all(c["feature"] not in ("age", "home_own", "home_rent") for c in ex["changes"])


def test_gradient_attack_skips_trees(tmp_path: Path) -> None:
    pytest.importorskip("art")
    res = audit_one(_pipeline(tmp_path, RandomForestClassifier(n_estimators=5, random_state=0)), "model.evasion.gradient")
    assert res.status == "skipped" and "no input gradients" in res.message
