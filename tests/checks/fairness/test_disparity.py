"""fairness.model_disparity and fairness.intersectional on small data with planted disparities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlwarden.checks.fairness.disparity  # noqa: F401  (registers the checks)
from mlwarden.audit import run_audit
from mlwarden.fairness.groups import MISSING
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

# group: (TN, FP, FN, TP). b is selected at half a's rate; (missing) has exactly a's rates.
PLANTED = {"a": (140, 60, 20, 180), "b": (180, 20, 100, 100), "c": (3, 2, 1, 4), None: (21, 9, 3, 27)}

SPEC = """\
name: planted-fairness
data:
  train: data/test.parquet
  test: data/test.parquet
  label: y
  id: rid
  prediction: p
  sensitive: [{sensitive}]
fairness:
  reference: {{grp: a, sex: f}}
  resamples: 400
"""


def _pipeline(root: Path, sensitive: str = "grp, sex") -> Path:
    rows = []
    for g, cells in PLANTED.items():
        for cell, k in enumerate(cells):
            rows += [{"grp": g, "y": cell // 2, "p": cell % 2}] * k
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
    df["sex"] = np.where(np.arange(len(df)) % 2 == 0, "f", "m")
    df["rid"] = np.arange(1000, 1000 + len(df))
    (root / "data").mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / "data" / "test.parquet", index=False, row_group_size=100)
    spec = root / "mlwarden.yaml"
    spec.write_text(SPEC.format(sensitive=sensitive), encoding="utf-8")
    return spec


def _result(report, cid: str):
    return next(c for c in report.checks if c.id == cid)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    return run_audit(load_spec(_pipeline(tmp_path_factory.mktemp("fair"))), only=["fairness.*"])


def test_planted_selection_gap_is_high_with_ci_and_q(report) -> None:
    res = _result(report, "fairness.model_disparity")
    assert res.status == "fail"
    by_key = {(f.evidence.get("group"), f.evidence.get("metric")): f for f in res.findings}
    f = by_key[("b", "selection_rate")]
    assert f.severity.value == "high"
    assert f.evidence["value"]["value"] == pytest.approx(0.3) and f.evidence["reference_value"]["value"] == 0.6
    lo, hi = f.evidence["ratio"]["ci"]
    assert lo < 0.5 < hi < 0.8 and f.evidence["q"] < 1e-6 and f.evidence["reference"] == "a"
    assert by_key[("b", "true_positive_rate")].severity.value == "high"  # 0.5 vs 0.9
    assert "Chouldechova" in f.description and f.location.column == "grp"


def test_missing_values_form_a_group_and_equal_rates_are_not_flagged(report) -> None:
    res = _result(report, "fairness.model_disparity")
    groups = res.metrics["groups"]["grp"]["groups"]
    assert groups[MISSING]["n"] == 60 and groups[MISSING]["judged"]
    assert res.metrics["groups"]["grp"]["vs_reference"][MISSING]["selection_rate"]["p"] == pytest.approx(1.0)
    assert not [f for f in res.findings if f.evidence.get("group") == MISSING]
    assert res.metrics["rows"] == 870


def test_small_group_is_reported_too_small_not_dropped(report) -> None:
    res = _result(report, "fairness.model_disparity")
    info = [f for f in res.findings if f.severity.value == "info"]
    assert len(info) == 1 and "c (n=10)" in info[0].description
    grp = res.metrics["groups"]["grp"]
    assert grp["too_small"] == ["c"] and grp["groups"]["c"]["n"] == 10
    assert "c" not in grp["vs_reference"]


def test_summary_measures_and_four_fifths(report) -> None:
    grp = _result(report, "fairness.model_disparity").metrics["groups"]["grp"]
    dp = grp["summary"]["demographic_parity_ratio"]
    assert dp["value"] == pytest.approx(0.5) and dp["ci"][0] < 0.5 < dp["ci"][1]
    assert grp["summary"]["equalized_odds_difference"]["value"] == pytest.approx(0.4)
    assert grp["four_fifths"]["b"]["passes"] is False and grp["four_fifths"]["a"]["passes"] is True
    sel = grp["groups"]["b"]["metrics"]["selection_rate"]
    assert sel["ci"][0] < 0.3 < sel["ci"][1] and sel["n"] == 400


def test_intersections_compare_with_the_reference_intersection(report) -> None:
    res = _result(report, "fairness.intersectional")
    inter = res.metrics["groups"]["grp × sex"]
    assert inter["reference"] == "grp=a & sex=f" and inter["reference_source"] == "spec"
    assert inter["worst_off"][0]["group"].startswith("grp=b")
    assert any(f.severity.value == "high" and f.evidence["group"].startswith("grp=b") for f in res.findings)
    assert f"grp={MISSING} & sex=f" in inter["groups"]


def test_same_output_with_tiny_batches(tmp_path: Path, report, monkeypatch) -> None:
    spec = _pipeline(tmp_path)
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    small = run_audit(load_spec(spec), only=["fairness.*"])
    for cid in ("fairness.model_disparity", "fairness.intersectional"):
        a, b = _result(report, cid), _result(small, cid)
        assert a.metrics == b.metrics
        assert [f.to_dict() for f in a.findings] == [f.to_dict() for f in b.findings]


def test_skips_without_predictions_or_second_attribute(tmp_path: Path) -> None:
    spec = _pipeline(tmp_path, sensitive="grp")
    text = spec.read_text().replace("  prediction: p\n", "")
    (tmp_path / "nopred.yaml").write_text(text)
    r = run_audit(load_spec(tmp_path / "nopred.yaml"), only=["fairness.*"])
    assert _result(r, "fairness.model_disparity").message == "needs model.artifact or data.prediction in the spec"
    r = run_audit(load_spec(spec), only=["fairness.*"])
    assert _result(r, "fairness.intersectional").message == "needs two or more attributes in data.sensitive"
