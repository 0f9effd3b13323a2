"""model.extraction.* through a real audit (named apart from tests/attacks/test_extraction.py:
pytest's default import mode needs distinct basenames)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import mlwarden.checks.model.extraction  # noqa: F401  (registers the checks)
from tests.pipelines import audit_one


def _pipeline(root: Path, model, *, queries: int = 20_000) -> Path:
    rng = np.random.default_rng(4)
    n = 1600
    df = pd.DataFrame({"income": rng.normal(50, 10, n), "debt": rng.uniform(0, 30, n),
                       "years": rng.integers(0, 20, n)})
    df["approved"] = (df.income / 10 - df.debt / 8 + df.years / 5 + rng.normal(0, 0.8, n) > 4).astype(int)
    feats = ["income", "debt", "years"]
    model.fit(df.iloc[:800][feats], df.iloc[:800]["approved"])
    (root / "model.pkl").write_bytes(pickle.dumps(model))
    pq.write_table(pa.Table.from_pandas(df.iloc[:800], preserve_index=False), root / "train.parquet")
    pq.write_table(pa.Table.from_pandas(df.iloc[800:], preserve_index=False), root / "test.parquet")
    (root / "mlwarden.yaml").write_text(
        "name: t\ndata:\n  train: train.parquet\n  test: test.parquet\n  label: approved\n"
        f"model:\n  artifact: model.pkl\nattacks:\n  queries: {queries}\n  seed: 1\n", encoding="utf-8")
    return root / "mlwarden.yaml"


def test_logistic_model_is_recovered_exactly_and_rated_high(tmp_path):
    res = audit_one(_pipeline(tmp_path, LogisticRegression(max_iter=1000)), "model.extraction.exact")
    assert res.status == "fail", res.message
    eq = res.metrics["equation_solving"]
    assert eq["exact"] and eq["queries"] == 4 and eq["fidelity"] == 1.0
    assert res.metrics["queries_used"] == 4 and "path_finding" not in res.metrics
    [f] = res.findings
    assert f.severity.value == "high" and "exactly from 4 queries" in f.title
    assert set(f.references) >= {"OWASP-ML05", "AML.T0024.002"}


def test_decision_tree_is_cloned_by_path_finding(tmp_path):
    spec = _pipeline(tmp_path, DecisionTreeClassifier(max_depth=4, random_state=0))
    res = audit_one(spec, "model.extraction.exact")
    pf = res.metrics["path_finding"]
    assert not res.metrics["equation_solving"]["exact"]
    assert pf["complete"] and pf["fidelity"] >= 0.99 and pf["queries"] <= 5000
    assert res.findings and res.findings[0].check == "model.extraction.exact"


def test_surrogate_curve_and_severity(tmp_path):
    spec = _pipeline(tmp_path, RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0), queries=2500)
    res = audit_one(spec, "model.extraction.surrogate")
    m = res.metrics
    assert m["budgets"] == [100, 1000] and m["budgets_not_run"] == [10_000]
    assert len(m["curve"]) == 2 * 2 * 3  # sources × budgets × policies
    assert m["queries_used"] == 2000 <= m["query_budget"]
    within = m["best_fidelity_within_1k"]["scores"]
    if within >= 0.9:
        assert res.findings[0].severity.value == "high"
    else:
        assert not res.findings or res.findings[0].severity.value == "medium"
    assert set(m["best_fidelity_within_1k"]) == {"scores", "rounded", "labels"}


def test_tiny_budget_skips_with_reason(tmp_path):
    res = audit_one(_pipeline(tmp_path, LogisticRegression(), queries=150), "model.extraction.surrogate")
    assert res.status == "skipped" and "attacks.queries" in res.message
