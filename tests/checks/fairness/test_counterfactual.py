"""fairness.counterfactual: flipping the attribute (or its proxies) changes exactly the planted decisions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlwarden.audit import run_audit
from mlwarden.checks.fairness import counterfactual  # noqa: F401  (registers the check)
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import write_parquet  # noqa: E402

CID = "fairness.counterfactual"
SPEC = """\
name: planted-counterfactual
data:
  train: train.parquet
  test: test.parquet
  label: y
  id: pid
  sensitive: [sex, race]
model:
  artifact: model.joblib
"""


def _frame(rng: np.random.Generator, n: int, start: int) -> pd.DataFrame:
    sex = rng.integers(0, 2, n)  # a numeric attribute the model reads
    race = rng.choice(["white", "black", "other"], n, p=[0.6, 0.3, 0.1])
    x = rng.normal(size=n)
    return pd.DataFrame({"pid": np.arange(start, start + n), "sex": sex, "race": race,
                         "white": (race == "white").astype(np.int64), "black": (race == "black").astype(np.int64),
                         "x": x, "y": ((x + 1.5 * sex - 1.5 * (race == "black")) > 0.5).astype(np.int64)})


def _pipeline(root: Path) -> tuple[Path, pd.DataFrame]:
    from joblib import dump
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(5)
    train, test = _frame(rng, 2000, 0), _frame(rng, 600, 100_000)
    feats = ["sex", "white", "black", "x"]  # race itself is not a feature; its indicators are
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(train[feats], train["y"])
    dump(model, root / "model.joblib")
    write_parquet(root / "train.parquet", {c: train[c].to_numpy() for c in train})
    write_parquet(root / "test.parquet", {c: test[c].to_numpy() for c in test}, row_group_size=100)
    (root / "mlwarden.yaml").write_text(SPEC, encoding="utf-8")
    return root / "mlwarden.yaml", test


def _expected(root: Path, test: pd.DataFrame) -> dict[str, set[int]]:
    """Changed rows computed by hand: the same flips, straight through the model."""
    from joblib import load

    model = load(root / "model.joblib")  # the test's own file
    feats = list(model.feature_names_in_)
    base = model.predict(test[feats])
    flipped = test[feats].assign(sex=1 - test["sex"])
    sex = set(test["pid"][model.predict(flipped) != base])
    race: set[int] = set()
    for target in ("white", "black", "other"):
        moved = test[feats].assign(white=int(target == "white"), black=int(target == "black"))
        hit = (model.predict(moved) != base) & (test["race"] != target).to_numpy()
        race |= set(test["pid"][hit])
    return {"sex/attribute": sex, "race/proxies": race}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cf")
    spec, test = _pipeline(root)
    return spec, _expected(root, test)


@pytest.fixture(scope="module")
def result(planted):
    [c] = run_audit(load_spec(planted[0]), only=[CID]).checks
    return c


def test_flips_match_the_model_by_hand(planted, result) -> None:
    _, expected = planted
    assert result.status == "fail"
    probes = result.metrics["probes"]
    assert set(probes) == {"sex/attribute", "race/proxies"}
    for key, rows in expected.items():
        assert probes[key]["rows"] == 600
        assert probes[key]["changed"] == len(rows) > 6, key
        assert set(probes[key]["sample_row_ids"]) <= rows and len(probes[key]["sample_row_ids"]) == 20
    subs = probes["race/proxies"]["substitutions"]
    assert subs["black"] == {"black": 1.0, "white": 0.0} and subs["other"] == {"black": 0.0, "white": 0.0}
    assert probes["sex/attribute"]["substitutions"] == {"0": {"sex": 0}, "1": {"sex": 1}}


def test_findings_severity_direction_and_interval(result) -> None:
    by = {f.evidence["probe"] + "/" + f.evidence["attribute"]: f for f in result.findings}
    f = by["attribute/sex"]
    assert f.severity.value == "high" and f.location.column == "sex" and len(f.location.rows) == 20
    lo, hi = f.evidence["rate_ci"]
    assert lo < f.evidence["rate"] < hi
    dirs = f.evidence["directions"]
    # moving sex 0 → 1 can only help (the planted label rewards sex=1), and 1 → 0 only hurt
    assert dirs["0 → 1"]["favorable_to_unfavorable"] == 0 and dirs["0 → 1"]["unfavorable_to_favorable"] > 0
    assert dirs["1 → 0"]["unfavorable_to_favorable"] == 0
    assert by["proxies/race"].severity.value == "high" and "white" in by["proxies/race"].title


def test_same_counts_with_tiny_batches(planted, result, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "BATCH_ROWS", 37)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    [small] = run_audit(load_spec(planted[0]), only=[CID]).checks
    assert small.metrics == result.metrics
    assert [f.to_dict() for f in small.findings] == [f.to_dict() for f in result.findings]


def test_skip_without_a_model(tmp_path: Path) -> None:
    spec, _ = _pipeline(tmp_path)
    spec.write_text(SPEC.replace("model:\n  artifact: model.joblib\n", "  prediction: y\n"), encoding="utf-8")
    [c] = run_audit(load_spec(spec), only=[CID]).checks
    assert c.status == "skipped"
    assert c.message == ("re-predicting rows with the attribute changed needs model.artifact; data.prediction only "
                         "holds the decisions that were made")


def test_demo_probes_the_race_and_sex_indicators(demo_dir: Path) -> None:
    [c] = run_audit(load_spec(demo_dir / "mlwarden.yaml"), only=[CID]).checks
    assert c.status in ("pass", "fail")
    probes = c.metrics["probes"]
    assert set(probes) == {"race/proxies", "sex/proxies"}, "race and sex are not model features; their indicators are"
    assert probes["race/proxies"]["substitutions"]["black"] == {"black": 1.0, "hispan": 0.0, "white": 0.0}
    assert probes["sex/proxies"]["substitutions"] == {"male": {"male": 1.0}, "female": {"male": 0.0}}
    assert probes["race/proxies"]["rows"] == sum(g["rows"] for g in probes["race/proxies"]["groups"].values())
