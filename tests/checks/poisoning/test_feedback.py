"""data.poisoning.feedback: planted flips and trigger found at their rows, clean feedback quiet."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlwarden.checks.poisoning.feedback  # registers the check; tests set its caps
from mlwarden.findings import Severity
from mlwarden.sources import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_one, make_pipeline  # noqa: E402

CHECK = "data.poisoning.feedback"



@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    return make_pipeline(tmp_path_factory.mktemp("planted"))


def result(spec_path: Path):
    return audit_one(spec_path, CHECK)


def test_planted_flips_and_trigger(planted) -> None:
    r = result(planted.spec)
    assert r.status == "fail"
    regions = r.metrics["regions"]["flagged"]
    assert [(g["column"], g["region"], g["label"]) for g in regions] == [("region", "west", "yes")]
    quarantined = r.metrics["quarantine"]
    assert set(planted.feedback_flipped_ids) <= set(quarantined["label_shift_region"])
    (trig,) = r.metrics["triggers"]
    assert (trig["column"], trig["value"]) == planted.feedback_trigger
    assert trig["train_rows"] == 0 and trig["purity"] == 1.0 and trig["support"] == 30
    assert set(quarantined["trigger"]) == set(planted.feedback_trigger_ids)
    sev = {f.title.split(":")[0]: f.severity for f in r.findings}
    assert sum(f.severity == Severity.HIGH for f in r.findings) == 2, sev
    assert r.metrics["overall"]["p"] < 1e-4 and r.metrics["overall"]["tvd_ci"][0] > 0.05


def write(root: Path, train: pd.DataFrame, fb: pd.DataFrame) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    train.to_parquet(root / "data" / "train.parquet", index=False, row_group_size=500)
    fb.to_parquet(root / "data" / "feedback.parquet", index=False)
    spec = root / "mlwarden.yaml"
    spec.write_text("name: clean\ndata:\n  train: data/train.parquet\n  feedback: data/feedback.parquet\n"
                    "  label: y\n  id: uid\n", encoding="utf-8")
    return spec


def frame(rng: np.random.Generator, n: int, id0: int) -> pd.DataFrame:
    age = rng.integers(18, 90, n)
    income = np.round(rng.lognormal(10.5, 0.5, n), 2)
    region = rng.choice(["north", "south", "east", "west"], n)
    promo = rng.integers(0, 9, n).astype(float)
    score = 0.03 * (age - 50) + 0.8 * (np.log(income) - 10.5) + rng.normal(0, 1, n)
    return pd.DataFrame({"uid": np.arange(id0, id0 + n), "age": age, "income": income, "region": region,
                         "promo": promo, "y": np.where(score > 0, "yes", "no")})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_feedback_has_no_high_findings(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    spec = write(tmp_path, frame(rng, 3000, 0), frame(rng, 600, 10_000))
    r = result(spec)
    assert not [f for f in r.findings if f.severity.rank >= Severity.HIGH.rank], [f.title for f in r.findings]
    assert r.metrics["triggers"] == [] and r.metrics["regions"]["flagged"] == []


def test_flood_of_copies(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    fb = frame(rng, 300, 10_000)
    copies = pd.concat([fb.iloc[[0]]] * 40, ignore_index=True)
    copies["uid"] = np.arange(20_000, 20_040)
    spec = write(tmp_path, frame(rng, 2000, 0), pd.concat([fb, copies], ignore_index=True))
    r = result(spec)
    d = r.metrics["duplicates"]
    assert d["flood_groups"] == 1 and d["flood_rows"] == 41
    assert set(r.metrics["quarantine"]["flood"]) == {10_000, *range(20_000, 20_040)}
    assert any(f.severity == Severity.HIGH and "copies" in f.title for f in r.findings)


def test_skipped_without_feedback(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    spec = write(tmp_path, frame(rng, 100, 0), frame(rng, 20, 100))
    text = spec.read_text().replace("  feedback: data/feedback.parquet\n", "")
    spec.write_text(text)
    r = result(spec)
    assert r.status == "skipped" and r.message == "needs data.feedback in the spec"


def test_same_result_in_tiny_batches(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    one = result(planted.spec)
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    many = result(planted.spec)
    assert (many.metrics, [f.to_dict() for f in many.findings]) == (one.metrics, [f.to_dict() for f in one.findings])


def days_table(rng: np.random.Generator, n: int, id0: int) -> pd.DataFrame:
    """2,000 day values (10 train rows each at 20,000 rows) and a numeric x, unrelated to y
    except that y is "yes" from x = 100 up."""
    x = np.round(rng.uniform(0, 200, n), 3)  # ~all distinct: over a small VALUE_CAP in train
    return pd.DataFrame({"uid": np.arange(id0, id0 + n), "day": [f"d{d:04d}" for d in rng.integers(0, 2000, n)],
                         "x": x, "y": np.where(x >= 100, "yes", "no")})


def test_only_values_rare_for_their_column_are_tested_as_triggers(tmp_path: Path) -> None:
    """A day with 10 train rows is under 0.1 % of train but as common as any day: 40 feedback
    rows all "yes" there is not a trigger (a chance run among 2,000 such values would pass a
    bar that common values' tests lowered). A value train never had still is."""
    rng = np.random.default_rng(8)
    train, fb = days_table(rng, 20_000, 0), days_table(rng, 3_000, 100_000)
    fb.loc[:39, "day"], fb.loc[:39, "y"] = "d0007", "yes"
    fb.loc[40:69, "day"], fb.loc[40:69, "y"] = "zz-new", "yes"
    assert 5 <= (train["day"] == "d0007").sum() <= 20
    r = result(write(tmp_path, train, fb))
    assert [(t["column"], t["value"], t["train_rows"]) for t in r.metrics["triggers"]] == [("day", "zz-new", 0)]


def test_numbers_over_the_cap_are_tested_against_train_near_them(tmp_path: Path, monkeypatch) -> None:
    """x has more distinct values in train than the cap, so no value's own train rate is known:
    its values are tested against train's rate within 2 %, not feedback's overall rate, under
    which every x over 100 (always "yes") looked like a trigger. The value a finding names is
    read back from the feedback file when the cap left no text for it."""
    monkeypatch.setattr(mlwarden.checks.poisoning.feedback, "VALUE_CAP", 500)
    rng = np.random.default_rng(9)
    train, fb = days_table(rng, 20_000, 0), days_table(rng, 3_000, 100_000)
    fb.loc[:14, "x"], fb.loc[:14, "y"] = 150.5, "yes"  # "yes" as train is near 150.5: honest
    fb.loc[15:44, "x"], fb.loc[15:44, "y"] = 12.25, "yes"  # "yes" where train says "no": a trigger
    r = result(write(tmp_path, train, fb))
    assert "x" in r.metrics["regions"]["high_cardinality_columns"]
    (trig,) = r.metrics["triggers"]
    assert (trig["column"], trig["value"], trig["train_rows"], trig["support"]) == ("x", 12.25, None, 30)
    assert trig["base"] == "train's rate within 2 % of this value" and trig["base_rate"] < 0.05
    (f,) = [f for f in r.findings if "x = 12.25" in f.title]
    assert f.severity == Severity.MEDIUM and "of unknown frequency in train" in f.title
