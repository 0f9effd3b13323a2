"""model.evasion.tree_bounds through a real audit: a saved forest, parquet splits, a spec."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mlwarden.checks.model.evasion_trees  # noqa: F401  (registers the check)
from tests.pipelines import audit_one

CHECK = "model.evasion.tree_bounds"


def _pipeline(root: Path, model, *, fragile: bool = True, targets: int = 40) -> Path:
    rng = np.random.default_rng(11)
    n = 900
    df = pd.DataFrame({"applicant_id": np.arange(n), "income": rng.normal(50, 10, n).round(2),
                       "debt": rng.uniform(0, 30, n).round(2), "age": rng.integers(18, 70, n)})
    noise = rng.normal(0, 0.3 if fragile else 3.0, n)
    df["approved"] = (df.income - df.debt + noise > 30).astype(int)
    feats = ["income", "debt", "age"]
    model.fit(df.iloc[:600][feats], df.iloc[:600]["approved"])
    (root / "model.pkl").write_bytes(pickle.dumps(model))  # plain pickle: joblib's raw array bytes are scanned as opcodes too
    pq.write_table(pa.Table.from_pandas(df.iloc[:600], preserve_index=False), root / "train.parquet")
    pq.write_table(pa.Table.from_pandas(df.iloc[600:], preserve_index=False), root / "test.parquet")
    (root / "mlwarden.yaml").write_text(
        "name: t\ndata:\n  train: train.parquet\n  test: test.parquet\n  label: approved\n  id: applicant_id\n"
        "features:\n  age: {type: int, min: 18, max: 69, immutable: true}\n  debt: {type: float, min: 0, max: 40}\n"
        f"model:\n  artifact: model.pkl\nattacks:\n  targets: {targets}\n  seed: 3\n", encoding="utf-8")
    return root / "mlwarden.yaml"


def test_forest_bounds_are_reported_confirmed_and_respect_immutables(tmp_path):
    spec = _pipeline(tmp_path, RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0))
    res = audit_one(spec, CHECK)
    assert res.status == "fail", res.message
    m = res.metrics
    assert m["rows_bounded"] + m["rows_trees_disagree"] + m["rows_not_run"] == 40
    for key in ("queries_used", "query_budget", "seed", "stopped_early", "seconds"):
        assert key in m
    assert m["seed"] == 3 and 0 < m["queries_used"] <= m["query_budget"] == 80
    assert m["share_within_30pct"] >= 0.9  # a small forest: the solver closes on almost every row
    assert "age" not in m["features_changed"]
    for row in m["rows"]:
        assert "age" not in row["changes"]
        if row["upper"] is not None:
            assert row["lower"] <= row["upper"] + 1e-9
            assert all(0 <= v[1] <= 40 for f, v in row["changes"].items() if f == "debt")
    share = m["share_within_payable"]
    [f] = res.findings
    assert f.severity.value == ("high" if share >= 0.5 else "medium" if share >= 0.1 else "low")
    assert "guarantee" in f.description and f.location.rows
    curve = m["curve"]
    assert curve["found_flip_share"] == sorted(curve["found_flip_share"])
    assert all(lo <= hi for lo, hi in zip(curve["found_flip_share"], curve["possible_flip_share"]))


def test_same_spec_gives_same_numbers(tmp_path):
    spec = _pipeline(tmp_path, RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0), targets=15)
    a, b = audit_one(spec, CHECK).metrics, audit_one(spec, CHECK).metrics
    assert a["rows"] == b["rows"] and a["curve"] == b["curve"]


def test_non_tree_model_is_skipped_with_reason(tmp_path):
    res = audit_one(_pipeline(tmp_path, LogisticRegression()), CHECK)
    assert res.status == "skipped" and "not a tree ensemble" in res.message


def test_endpoint_only_is_skipped(tmp_path):
    spec = _pipeline(tmp_path, RandomForestClassifier(n_estimators=3, random_state=0))
    text = spec.read_text().replace("artifact: model.pkl", "endpoint: http://127.0.0.1:9/v2/models/m")
    spec.write_text(text)
    res = audit_one(spec, CHECK)
    assert res.status == "skipped" and "endpoint does not reveal its trees" in res.message
