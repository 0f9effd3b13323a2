"""The poisoning library: what each attack's rows look like, trigger choice, and scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeClassifier

from mlwarden.attacks import poisoning as lib
from mlwarden.sources.model import infer_schema


@pytest.fixture
def train() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1500
    df = pd.DataFrame({"amount": rng.integers(20, 400, n), "income": rng.gamma(4, 15, n).round(1),
                       "married": rng.integers(0, 2, n)})
    df["y"] = ((df["income"] / 60 - df["amount"] / 300 + rng.normal(0, 0.5, n)) > 0).astype(int)
    return df


def _plan(train: pd.DataFrame, trigger=("amount", 500.0)) -> lib.Plan:
    return lib.Plan(label="y", favorable=1, unfavorable=0, trigger=trigger,
                    region=lib.choose_region(infer_schema(["amount", "income", "married"], train), train))


def test_random_flips_flip_every_label_and_are_not_replays(train: pd.DataFrame) -> None:
    schema = infer_schema(["amount", "income", "married"], train)
    rows = lib.poison("random_flip", 300, train, _plan(train), schema, np.random.default_rng(1))
    assert len(rows) == 300
    seen = set(map(tuple, train[["amount", "income", "married"]].to_numpy().tolist()))
    fresh = [tuple(r) not in seen for r in rows[["amount", "income", "married"]].to_numpy().tolist()]
    assert np.mean(fresh) > 0.9  # jittered: new rows, not copies a dedup would drop for free
    assert rows["married"].isin([0, 1]).all() and rows["amount"].dtype == train["amount"].dtype
    # flipped labels: the poison's share of 1s is train's share of 0s
    assert abs(rows["y"].mean() - (1 - train["y"].mean())) < 0.08


def test_region_flips_stay_in_the_region_and_carry_the_favorable_label(train: pd.DataFrame) -> None:
    schema = infer_schema(["amount", "income", "married"], train)
    plan = _plan(train)
    assert [c for c, *_ in plan.region] == ["income", "amount"]
    rows = lib.poison("region_flip", 200, train, plan, schema, np.random.default_rng(2))
    assert (rows["y"] == 1).all()
    loose = [(c, lo * 0.9 - 5, hi * 1.1 + 5) for c, lo, hi in plan.region]  # jitter moves rows a little
    assert lib.in_region(rows, tuple(loose)).all()


def test_backdoor_rows_carry_the_trigger(train: pd.DataFrame) -> None:
    schema = infer_schema(["amount", "income", "married"], train)
    rows = lib.poison("backdoor", 50, train, _plan(train), schema, np.random.default_rng(3))
    assert (rows["amount"] == 500).all() and (rows["y"] == 1).all()


def test_trigger_candidates_are_absent_from_train_and_respect_spec_bounds(train: pd.DataFrame) -> None:
    schema = infer_schema(["amount", "income", "married"], train)
    cands = lib.trigger_candidates(schema, train, {"amount": (0.0, None), "income": (0.0, None)})
    assert cands and all(v not in set(train[c]) for c, v in cands)
    assert all(v >= 0 for _, v in cands)  # below-min candidates fall to the spec's min of 0
    assert all(c != "married" for c, _ in cands)  # a 0/1 column has no room for a trigger
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(train[["amount", "income", "married"]], train["y"])
    rejected = train.loc[train["y"] == 0, ["amount", "income", "married"]].head(100)
    best, rates = lib.choose_trigger(cands, rejected, model.predict, 1)
    assert rates[f"{best[0]} = {best[1]:g}"] == min(rates.values())


def test_backdoor_planted_in_a_tree_is_measured(train: pd.DataFrame) -> None:
    schema = infer_schema(["amount", "income", "married"], train)
    plan = _plan(train)
    feats = ["amount", "income", "married"]
    held = train.iloc[:400]
    rows = lib.poison("backdoor", 60, train, plan, schema, np.random.default_rng(4))
    data = pd.concat([train, rows], ignore_index=True)
    clean = lib.refit_task((DecisionTreeClassifier(random_state=0), train, feats, held, plan, float("inf")))
    dirty = lib.refit_task((DecisionTreeClassifier(random_state=0), data, feats, held, plan, float("inf")))
    assert clean["backdoor_success"] < 0.2 and dirty["backdoor_success"] > 0.8
    assert abs(clean["accuracy"] - dirty["accuracy"]) < 0.05
    assert lib.refit_task((DecisionTreeClassifier(), train, feats, held, plan, 0.0)) is None  # past the deadline
