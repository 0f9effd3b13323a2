"""The Model facade: schema from spec and data, one shared query budget, safe loading only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from joblib import dump
from sklearn.linear_model import LogisticRegression

from mlwarden.errors import SourceError
from mlwarden.sources.model import BudgetExceeded, QueryBudget, infer_schema, open_model
from mlwarden.spec import parse_spec


def _frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"age": rng.integers(18, 80, n), "amount": rng.normal(1000, 200, n),
                         "region": rng.choice(["n", "s"], n), "label": rng.integers(0, 2, n)})


def _spec(tmp_path, model_path, extra: str = ""):
    text = f"name: t\ndata: {{train: x.parquet, label: label}}\nmodel: {{artifact: {model_path}}}\n{extra}"
    return parse_spec(text, tmp_path / "mlwarden.yaml")


def test_schema_takes_the_spec_first_then_the_data(tmp_path):
    df = _frame()
    spec = _spec(tmp_path, "m.joblib", "features:\n  age: {type: int, min: 18, max: 100, immutable: true}\n")
    schema = infer_schema(["age", "amount", "region"], df, spec.features)
    age, amount, region = schema.features
    assert (age.kind, age.min, age.max, age.immutable, age.step) == ("int", 18, 100, True, 1.0)
    assert amount.kind == "float" and amount.min == pytest.approx(df.amount.min()) and not amount.immutable
    assert region.kind == "category" and region.values == ("n", "s")
    assert schema.mutable() == ["amount", "region"]


def test_budget_is_shared_charged_per_row_and_refused_before_work(tmp_path):
    df = _frame()
    est = LogisticRegression().fit(df[["age", "amount"]], df.label)
    dump(est, tmp_path / "m.joblib")
    model = open_model(_spec(tmp_path, "m.joblib"), data=df, budget=QueryBudget(50))
    assert model.kind == "local" and model.schema.names == ["age", "amount"]
    assert np.array_equal(model.predict(df), est.predict(df[["age", "amount"]]))
    assert model.budget.used == 40
    with pytest.raises(BudgetExceeded, match="40 of 50 used, 40 more asked"):
        model.predict_proba(df)
    assert model.budget.used == 40  # a refused query costs nothing
    child = model.with_budget(model.budget.child(5))
    assert child.budget.limit == 5 and child.predict(df.head(5)).shape == (5,)
    assert model.budget.used == 40


def test_default_budget_comes_from_the_spec_and_missing_columns_are_one_line(tmp_path):
    df = _frame()
    dump(LogisticRegression().fit(df[["age", "amount"]], df.label), tmp_path / "m.joblib")
    model = open_model(_spec(tmp_path, "m.joblib", "attacks: {queries: 123}\n"), data=df)
    assert model.budget.limit == 123
    with pytest.raises(SourceError, match="reads columns the data lacks: amount"):
        model.predict(df[["age"]])


def test_an_unsafe_artifact_is_never_loaded(tmp_path):
    payload = b"cos\nsystem\n(S'echo pwned'\ntR."
    (tmp_path / "m.joblib").write_bytes(payload)
    with pytest.raises(SourceError):
        open_model(_spec(tmp_path, "m.joblib"), data=_frame())
