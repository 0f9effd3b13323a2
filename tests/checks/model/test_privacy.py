"""model.privacy.membership and model.privacy.attribute_inference on generated pipelines with real models."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

import mlwarden.checks.model.privacy  # noqa: F401  (registers the checks)
from tests.pipelines import audit_one

MIA = "model.privacy.membership"
ATTR = "model.privacy.attribute_inference"


def _data(n: int = 2400, seed: int = 3) -> pd.DataFrame:
    X, y = make_classification(n_samples=n, n_features=8, n_informative=5, flip_y=0.2, random_state=seed)
    df = pd.DataFrame(X.round(4), columns=[f"f{i}" for i in range(8)])
    df["y"] = y
    return df


def _pipeline(root: Path, model, train: pd.DataFrame, test: pd.DataFrame, extra: str = "") -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    train.to_parquet(root / "data/train.parquet", index=False)
    test.to_parquet(root / "data/test.parquet", index=False)
    feats = [c for c in train.columns if c.startswith(("f", "s_"))]
    model.fit(train[feats], train["y"])
    (root / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    (root / "mlwarden.yaml").write_text(
        "name: t\ndata:\n  train: data/train.parquet\n  test: data/test.parquet\n  label: y\n" + extra
        + "model:\n  artifact: model.pkl\nattacks:\n  seed: 1\n  time_limit_s: 300\n", encoding="utf-8")
    return root / "mlwarden.yaml"


def test_overfit_forest_leaks_membership_and_rmia_beats_threshold(tmp_path: Path) -> None:
    df = _data()
    train, test = df.iloc[:1200], df.iloc[1200:].copy()
    test.iloc[:100, :] = train.iloc[:100, :].to_numpy()  # copies of train rows: must not count as non-members
    spec = _pipeline(tmp_path, RandomForestClassifier(n_estimators=60, random_state=0), train, test)
    r = audit_one(spec, MIA)
    assert r.status == "fail", r.message
    m = r.metrics
    assert m["test_rows_dropped_as_train_copies"] == 100 and m["nonmembers_scored"] == 1100
    attacks = m["attacks"]
    thr, rmia = attacks["threshold (confidence)"], attacks["RMIA (2 reference models)"]
    assert thr["auc"] > 0.6 and rmia["auc"] >= thr["auc"] + 0.05
    assert rmia["tpr_at_fpr"]["0.1%"]["meaningful"] and rmia["tpr_at_fpr"]["1%"]["tpr"] > 0.05
    [f] = r.findings
    assert f.severity.value == "high" and f.evidence["attack"].startswith("RMIA")
    assert m["queries_used"] == m["members_scored"] + m["nonmembers_scored"] and m["seed"] == 1
    [curve] = r.charts
    assert curve.x_log and {s for s, _ in curve.series} >= {"RMIA (2 reference models)", "chance"}


def test_regularised_logistic_regression_does_not_leak(tmp_path: Path) -> None:
    df = _data()
    spec = _pipeline(tmp_path, LogisticRegression(C=0.01), df.iloc[:1200], df.iloc[1200:])
    r = audit_one(spec, MIA)
    assert r.status == "pass", r.findings
    for a in r.metrics["attacks"].values():
        assert a["auc"] < 0.56 and a["tpr_at_fpr"]["1%"]["tpr"] < 0.05


def test_labels_only_model_gets_the_correctness_attack_and_small_samples_are_flagged(tmp_path: Path) -> None:
    df = _data(n=900)
    spec = _pipeline(tmp_path, LinearSVC(C=1.0), df.iloc[:450], df.iloc[450:])
    r = audit_one(spec, MIA)
    assert r.status in ("pass", "fail"), r.message
    [name] = r.metrics["attacks"]
    assert "correctness" in name and "not run" in r.metrics["rmia"]
    assert r.metrics["attacks"][name]["tpr_at_fpr"]["0.1%"]["meaningful"] is False  # 450 < 1,000 non-members


def test_query_budget_bounds_the_rows_scored(tmp_path: Path) -> None:
    df = _data()
    spec = _pipeline(tmp_path, LogisticRegression(C=0.01), df.iloc[:1200], df.iloc[1200:])
    spec.write_text(spec.read_text().replace("  seed: 1\n", "  seed: 1\n  queries: 600\n"))
    m = audit_one(spec, MIA).metrics
    assert m["queries_used"] <= 600 and m["nonmembers_scored"] == 300 and m["query_budget"] == 600


@pytest.mark.parametrize("leaky", [True, False])
def test_attribute_inference_gain_from_the_model_output(tmp_path: Path, leaky: bool) -> None:
    rng = np.random.default_rng(0)
    df = _data(n=3000)
    group = rng.choice(["a", "b"], len(df))
    df["sex"] = group
    # the model reads the attribute's indicator (an encoding the attacker is not given); when leaky,
    # the label depends on it, so the model's score carries the attribute
    df["s_ind"] = (group == "a").astype(int)
    if leaky:
        df["y"] = np.where(rng.random(len(df)) < 0.8, df["s_ind"], df["y"])
    spec = _pipeline(tmp_path, LogisticRegression(C=1.0, max_iter=500), df.iloc[:2000], df.iloc[2000:],
                     extra="  sensitive: [sex]\n")
    r = audit_one(spec, ATTR)
    res = r.metrics["attributes"]["sex"]
    assert res["left_out_as_encodings"] == ["s_ind"]
    assert 0.4 < res["auc_features_only"] < 0.6  # the other features know nothing of it
    if leaky:
        assert r.status == "fail" and res["auc_gain"] > 0.2 and r.findings[0].severity.value == "high"
    else:
        assert r.status == "pass" and abs(res["auc_gain"]) < 0.05
