"""model.poisoning.wargame on a generated loan pipeline, and its screen against data.poisoning.feedback."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.ensemble import RandomForestClassifier

import mlwarden.checks.model.poisoning  # noqa: F401  (registers the check)
from mlwarden.attacks import poisoning as lib
from mlwarden.audit import run_audit
from mlwarden.checks.model.screening import Screen
from mlwarden.checks.poisoning.feedback import FeedbackScreen
from mlwarden.registry import AuditContext, Sources
from mlwarden.sources.datasets import Batch, Dataset
from mlwarden.spec import load_spec
from tests.pipelines import audit_one

CHECK = "model.poisoning.wargame"


def _loans(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"amount": rng.integers(20, 400, n), "income": rng.gamma(4, 15, n).round(1),
                       "married": rng.integers(0, 2, n), "years": rng.integers(0, 30, n)})
    logit = 0.04 * df["income"] - 0.01 * df["amount"] + 0.5 * df["married"] + 0.03 * df["years"] - 0.6
    df["approve"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wargame")
    train, test = _loans(2000, 1), _loans(1000, 2)
    (root / "data").mkdir()
    train.to_parquet(root / "data/train.parquet", index=False)
    test.to_parquet(root / "data/test.parquet", index=False)
    feats = ["amount", "income", "married", "years"]
    model = RandomForestClassifier(n_estimators=20, min_samples_leaf=2, random_state=0).fit(train[feats], train["approve"])
    (root / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    (root / "mlwarden.yaml").write_text(
        "name: t\ndata:\n  train: data/train.parquet\n  test: data/test.parquet\n  label: approve\n"
        "fairness:\n  favorable: 1\nfeatures:\n  amount: {type: int, min: 0}\n"
        "model:\n  artifact: model.pkl\nattacks:\n  seed: 3\n  time_limit_s: 600\n", encoding="utf-8")
    return root / "mlwarden.yaml"


@pytest.fixture(scope="module")
def result(pipeline: Path):
    return audit_one(pipeline, CHECK)


def test_undefended_backdoor_succeeds_and_the_screen_stops_it(result) -> None:
    assert result.status == "fail", result.message
    m = result.metrics
    assert m["trigger"][0] == "amount" and m["trigger"][1] > 399  # beyond every training amount
    bd = {r["rate_pct"]: r for r in m["runs"] if r["kind"] == "backdoor"}
    assert sorted(bd) == [0.1, 0.5, 1.0, 2.0, 5.0, 10.0]
    assert bd[1.0]["undefended"]["backdoor_success"] >= 0.5 and bd[10.0]["undefended"]["backdoor_success"] >= 0.8
    assert bd[1.0]["caught"] == bd[1.0]["poison_rows"] == 20 and bd[1.0]["caught_by"]["trigger"] == 20
    assert bd[1.0]["screened"]["backdoor_success"] <= m["clean"]["backdoor_success"] + 0.1
    [f] = [f for f in result.findings if f.evidence.get("kind") == "backdoor"]
    assert f.severity.value == "high" and "screen defeats this backdoor" in f.description


def test_every_attack_kind_and_rate_is_reported_with_its_bounds(result) -> None:
    m = result.metrics
    assert {(r["kind"], r["rate_pct"]) for r in m["runs"]} == {(k, r * 100) for k in lib.KINDS for r in lib.RATES}
    assert m["train_rows"] == 2000 and m["held_out_rows"] == 500 and m["honest_feedback_rows"] == 500
    assert m["seed"] == 3 and m["stopped_early"] is False
    assert 0 < m["queries_used"] <= 200 * (1 + len(m["trigger_candidates_clean_flip"]))  # choosing the trigger
    assert m["trigger_candidates_clean_flip"][f"amount = {m['trigger'][1]:g}"] == min(
        m["trigger_candidates_clean_flip"].values())  # the value the current model ignores most
    rand = {r["rate_pct"]: r for r in m["runs"] if r["kind"] == "random_flip"}
    assert rand[10.0]["undefended"]["accuracy_drop"] > rand[0.1]["undefended"]["accuracy_drop"] - 0.02
    region = [r for r in m["runs"] if r["kind"] == "region_flip"]
    assert region[-1]["undefended"]["region_gain"] > 0.2  # 10 % of train flipped in the box moves it
    titles = [c.title for c in result.charts]
    assert titles == ["Clean-accuracy drop vs poison rate", "Backdoor success vs poison rate",
                      "Region-flip success vs poison rate"]
    assert all(c.x_log for c in result.charts)


def test_same_spec_gives_the_same_numbers(pipeline: Path, result) -> None:
    again = audit_one(pipeline, CHECK)
    assert again.metrics["runs"] == result.metrics["runs"] and again.metrics["clean"] == result.metrics["clean"]


def test_time_limit_stops_early_and_says_so(pipeline: Path, tmp_path: Path) -> None:
    text = pipeline.read_text().replace("time_limit_s: 600", "time_limit_s: 0.001")
    spec = pipeline.parent / "quick.yaml"
    spec.write_text(text)
    r = audit_one(spec, CHECK)
    assert r.status == "skipped" and "time limit" in r.message


def test_screen_quarantines_what_the_data_check_quarantines(pipeline: Path) -> None:
    """The wargame's screen and data.poisoning.feedback's finalize agree row for row in count."""
    spec = load_spec(pipeline)
    train = pd.read_parquet(pipeline.parent / "data/train.parquet")
    honest = _loans(600, 9)
    plan = lib.Plan(label="approve", favorable=1, unfavorable=0, trigger=("amount", 777.0),
                    region=(("income", 60.0, 90.0),))
    from mlwarden.sources.model import infer_schema

    schema = infer_schema(list(train.columns[:-1]), train)
    rng = np.random.default_rng(0)
    fb = pd.concat([honest, lib.poison("backdoor", 30, train, plan, schema, rng),
                    lib.poison("region_flip", 60, train, plan, schema, rng), train.iloc[:15]], ignore_index=True)
    caught = Screen(spec, train)(fb)
    assert set(np.flatnonzero(fb["amount"] == 777)) <= set(caught["trigger"].tolist())
    assert set(range(len(fb) - 15, len(fb))) <= set(caught["replays_train"].tolist())

    table = pa.Table.from_pandas(train, preserve_index=False)
    ds = {s: Dataset(split=s, uri=s, files=(), schema=table.schema, partitions=()) for s in ("train", "feedback")}
    data = spec.data.model_copy(update={"feedback": "fb"})
    check = FeedbackScreen(spec.model_copy(update={"data": data}), Sources(datasets=ds))
    st = check.update(check.init(), Batch(split="train", offset=0, data=table.to_batches()[0]))
    st = check.update(st, Batch(split="feedback", offset=0,
                                data=pa.Table.from_pandas(fb, schema=table.schema, preserve_index=False).to_batches()[0]))
    out = check.finalize(st, AuditContext(spec=spec, sources=Sources(datasets=ds), engine=None))  # type: ignore[arg-type]
    every = np.unique(np.concatenate([v for v in caught.values()]))
    assert out.metrics["quarantine_count"] == every.size
    assert out.metrics["quarantine_counts"] == {k: int(v.size) for k, v in caught.items()}


def test_endpoint_only_models_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_bytes(b"")
    _loans(100, 1).to_parquet(tmp_path / "d.parquet", index=False)
    (tmp_path / "mlwarden.yaml").write_text(
        "name: t\ndata:\n  train: d.parquet\n  test: d.parquet\n  label: approve\n"
        "model:\n  endpoint: http://127.0.0.1:9/v2/models/m\n", encoding="utf-8")
    [r] = run_audit(load_spec(tmp_path / "mlwarden.yaml"), only=(CHECK,)).checks
    assert r.status == "skipped"
