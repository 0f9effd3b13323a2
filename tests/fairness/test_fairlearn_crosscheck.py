"""Our group metrics and disparities equal fairlearn's, to 1e-9, on generated and demo data."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fairlearn import metrics as flm
from sklearn.metrics import accuracy_score, precision_score

from mlwarden.fairness.groups import MISSING, group_codes, group_labels
from mlwarden.fairness.metrics import AGGREGATES, METRICS, confusion_cells, summaries, values

FAIRLEARN = {
    "selection_rate": flm.selection_rate,
    "true_positive_rate": flm.true_positive_rate,
    "false_positive_rate": flm.false_positive_rate,
    "false_negative_rate": flm.false_negative_rate,
    "precision": partial(precision_score, zero_division=np.nan),
    "accuracy": accuracy_score,
}
SUMMARY = {
    "demographic_parity_difference": flm.demographic_parity_difference,
    "demographic_parity_ratio": flm.demographic_parity_ratio,
    "equalized_odds_difference": flm.equalized_odds_difference,
    "equalized_odds_ratio": flm.equalized_odds_ratio,
    "equal_opportunity_difference": flm.equal_opportunity_difference,
    "equal_opportunity_ratio": flm.equal_opportunity_ratio,
}


def _ours(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> tuple[list[str], dict[str, np.ndarray]]:
    codes, labels = group_codes(pa.table({"g": groups}), "g")
    order = np.argsort(labels)
    cells = confusion_cells(y.astype(bool), p.astype(bool), codes, len(labels))[order]
    return [labels[i] for i in order], values(cells)


def _compare(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> None:
    labels, ours = _ours(y, p, groups)
    mf = flm.MetricFrame(metrics=FAIRLEARN, y_true=y, y_pred=p, sensitive_features=pd.Series(groups, name="g"))
    by = mf.by_group
    assert [str(i) for i in by.index] == labels
    for m in METRICS:
        np.testing.assert_allclose(ours[m], by[m].to_numpy(dtype=float), rtol=0, atol=1e-9, err_msg=m)
        for agg, fl in (("difference", mf.difference()), ("ratio", mf.ratio()),
                        ("group_min", mf.group_min()), ("group_max", mf.group_max())):
            assert AGGREGATES[agg](ours[m]) == pytest.approx(fl[m], abs=1e-9), (m, agg)
        ref = int(np.argmax([np.sum(groups == g) for g in labels]))
        np.testing.assert_allclose(ours[m] - ours[m][ref], by[m].to_numpy(float) - by[m].iloc[ref], atol=1e-9)
    s = summaries(ours)
    for name, fn in SUMMARY.items():
        assert s[name] == pytest.approx(fn(y, p, sensitive_features=groups), abs=1e-9), name
    assert s["predictive_parity_difference"] == pytest.approx(mf.difference()["precision"], abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_data_matches_fairlearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 20_000
    groups = rng.choice(["a", "b", "c", "d", "e"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    base = pd.Series(groups).map({"a": 0.6, "b": 0.45, "c": 0.5, "d": 0.3, "e": 0.55}).to_numpy()
    y = (rng.random(n) < base).astype(int)
    p = np.where(rng.random(n) < 0.8, y, 1 - y)
    p[groups == "d"] = np.where(rng.random((groups == "d").sum()) < 0.5, 0, p[groups == "d"])
    _compare(y, p, groups)


def test_intersections_match_fairlearn_on_generated_data() -> None:
    rng = np.random.default_rng(9)
    n = 10_000
    race = rng.choice(["x", "y", "z"], n)
    sex = rng.choice(["f", "m"], n)
    y = (rng.random(n) < 0.5).astype(int)
    p = np.where(rng.random(n) < np.where(race == "z", 0.6, 0.85), y, 1 - y)
    inter = group_labels(pa.table({"race": race, "sex": sex}), ["race", "sex"])
    _compare(y, p, inter)
    mf = flm.MetricFrame(metrics=flm.selection_rate, y_true=y, y_pred=p,
                         sensitive_features=pd.DataFrame({"race": race, "sex": sex}))
    _, ours = _ours(y, p, inter)
    np.testing.assert_allclose(ours["selection_rate"], mf.by_group.to_numpy(float), atol=1e-9)


def test_demo_check_output_matches_fairlearn(demo_dir) -> None:
    import mlwarden.checks.fairness.disparity  # noqa: F401  (registers the checks)
    from mlwarden.audit import run_audit
    from mlwarden.loader import load_model
    from mlwarden.spec import load_spec

    report = run_audit(load_spec(demo_dir / "mlwarden.yaml"), only=["fairness.model_disparity"])
    (result,) = report.checks
    assert result.status in ("pass", "fail"), result.message
    test = pq.read_table(demo_dir / "data" / "test.parquet")
    model = load_model(demo_dir / "models" / "model.joblib")
    frame = test.to_pandas()
    y = frame["approve"].to_numpy().astype(int)
    p = np.asarray(model.predict(frame[list(model.feature_names_in_)])).astype(int)
    for attr in ("race", "sex"):
        out = result.metrics["groups"][attr]
        groups = group_labels(test, [attr])
        mf = flm.MetricFrame(metrics=FAIRLEARN, y_true=y, y_pred=p, sensitive_features=pd.Series(groups, name=attr))
        for g, row in mf.by_group.iterrows():
            for m in METRICS:
                ours = out["groups"][str(g)]["metrics"][m]["value"]
                if out["groups"][str(g)]["metrics"][m]["n"] == 0:
                    assert ours is None  # undefined: fairlearn reports 0 (or NaN) here
                else:
                    assert ours == pytest.approx(row[m], abs=1e-9), (attr, g, m)
        ref = out["reference"]
        for g, cmp in out["vs_reference"].items():
            for m in METRICS:
                want = mf.by_group.loc[g, m] - mf.by_group.loc[ref, m]
                assert cmp[m]["difference"]["value"] == pytest.approx(want, abs=1e-9)
        judged = [g for g, v in out["groups"].items() if v["judged"]]
        keep = np.isin(groups, judged)
        for name, fn in SUMMARY.items():
            want = fn(y[keep], p[keep], sensitive_features=groups[keep])
            assert out["summary"][name]["value"] == pytest.approx(want, abs=1e-9), (attr, name)
    assert MISSING in result.metrics["groups"]["sex"]["groups"]
