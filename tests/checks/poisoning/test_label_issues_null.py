"""data.poisoning.label_issues against its noise null: honest noise is low, concentrated flips are high.

Tables are drawn from a logistic model of the features, so about 10 % of honest labels disagree
with the likeliest class; flips are then planted in a region or a time window at known rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlwarden.checks.poisoning.label_noise import calibrate, confident_issues, simulate
from mlwarden.findings import Severity

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_one  # noqa: E402

CHECK = "data.poisoning.label_issues"


def logistic_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    region = rng.choice(["north", "south", "east", "west"], n)
    logit = 4.0 * x[:, 0] - 2.7 * x[:, 1] + 1.4 * x[:, 2] + np.where(region == "south", 0.5, 0.0)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    at = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s")
    return pd.DataFrame({"id": np.arange(n), "at": at, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3],
                         "region": region, "channel": rng.choice(["web", "branch", "phone"], n),
                         "y": np.where(y, "yes", "no")})


def flip(df: pd.DataFrame, where: pd.Series, seed: int) -> tuple[pd.DataFrame, set[int]]:
    """Flip the labels of 5 % of all rows, every one of them inside ``where``."""
    out = df.copy()
    idx = np.random.default_rng(seed).choice(np.flatnonzero(where.to_numpy()), len(df) // 20, replace=False)
    out.loc[idx, "y"] = np.where(out.loc[idx, "y"] == "yes", "no", "yes")
    return out, set(out.loc[idx, "id"].tolist())


def audit(root: Path, df: pd.DataFrame):
    root.mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / "train.parquet", index=False, row_group_size=2000)
    (root / "s.yaml").write_text("name: t\ndata:\n  train: train.parquet\n  label: y\n  id: id\n  time: at\n")
    return audit_one(root / "s.yaml", CHECK)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return logistic_table(8000, seed=5)


def test_honest_noise_is_expected_not_mislabelling(table: pd.DataFrame, tmp_path: Path) -> None:
    r = audit(tmp_path, table)
    m = r.metrics
    null = m["noise_null"]
    assert 0.02 < m["share"] < 0.15  # confident learning flags part of the task's ~10 % honest noise…
    assert null["interval_95"][0] <= m["issues"] <= null["interval_95"][1]  # …which the null expects
    assert m["slices"]["concentrated"] == [] and m["slices"]["slices_tested"] > 40
    (f,) = r.findings
    assert f.severity is Severity.LOW
    assert f"{null['expected']:.0f} (95 % " in f.title and "expected from label noise" in f.title
    assert f.evidence["noise_null"]["simulations"] == 200


@pytest.mark.parametrize("kind", ["region", "time window"])
def test_concentrated_flips_are_high_and_located(table: pd.DataFrame, tmp_path: Path, kind: str) -> None:
    where = table["region"] == "west" if kind == "region" else table["at"] >= pd.Timestamp("2024-10-01")
    flipped, truth = flip(table, where, seed=11)
    r = audit(tmp_path, flipped)
    (f,) = r.findings
    assert f.severity is Severity.HIGH
    top = f.evidence["concentrated"][0]
    assert top["dimension"] == ("region" if kind == "region" else "at")
    assert top["q_value"] < 1e-3 and top["observed"] > 1.25 * top["expected"]
    # the rows shown are the slice's least plausible labels: mostly the planted flips
    shown = {s["id"] for s in f.evidence["sample"]}
    assert len(shown & truth) >= 0.7 * len(shown) and set(f.location.rows) == shown
    assert "concentrated in" in f.title


def test_rule_is_cleanlabs_confident_learning() -> None:
    filt = pytest.importorskip("cleanlab.filter")
    rng = np.random.default_rng(0)
    for k, n in ((2, 3000), (3, 2000), (6, 1500)):
        logits = rng.normal(size=(n, k)) * 2
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        probs[:50] = np.round(probs[:50], 1)  # ties and exact thresholds
        probs[:50] /= probs[:50].sum(axis=1, keepdims=True)
        labels = np.array([rng.choice(k, p=p) for p in probs])
        labels[:k] = np.arange(k)
        ours = confident_issues(labels, probs)
        theirs = filt.find_label_issues(labels, probs, filter_by="confident_learning")
        assert ours.sum() > 0 and np.array_equal(ours, theirs)


def test_calibration_undoes_overconfidence() -> None:
    """An overconfident model makes honest noise look like excess; calibration fixes the null."""
    rng = np.random.default_rng(1)
    n = 20_000
    logit = rng.normal(0, 2.5, n)
    truth = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < truth).astype(np.int64)
    over = 1 / (1 + np.exp(-3 * logit))  # three times too sure
    probs = np.c_[1 - over, over]
    folds = [(np.flatnonzero(np.arange(n) % 5 != i), np.flatnonzero(np.arange(n) % 5 == i)) for i in range(5)]
    cal = calibrate(probs, y, folds)
    assert np.abs(cal[:, 1] - truth).mean() < 0.02 < np.abs(over - truth).mean()
    observed = int(confident_issues(y, probs).sum())
    honest = simulate(observed, probs, cal, seed=0)
    naive = simulate(observed, probs, probs, seed=0)
    assert honest.low <= observed <= honest.high and naive.high < observed
    again = simulate(observed, probs, cal, seed=0)
    assert again.expected == honest.expected and np.array_equal(again.row_rate, honest.row_rate)


def test_binary_calibration_is_platt_scaling() -> None:
    """The 2-parameter Newton fit equals sklearn's logistic regression on the log-odds."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    n = 5000
    z = rng.normal(0, 4, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-0.4 * z + 0.3))).astype(np.int64)
    p1 = 1 / (1 + np.exp(-z))
    probs = np.c_[1 - p1, p1]
    train, test = np.arange(n) < 4000, np.arange(n) >= 4000
    ours = calibrate(probs, y, [(np.flatnonzero(train), np.flatnonzero(test))])[test]
    ref = LogisticRegression(C=1e6, max_iter=1000).fit(z[train, None], y[train]).predict_proba(z[test, None])
    assert np.abs(ours - ref).max() < 1e-4
