"""fairness.proxies: planted proxies are named, ids and noise are not, and the demo's are."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.audit import run_audit
from mlwarden.checks.fairness import proxies
from mlwarden.checks.fairness.bins import EXACT_BINS, PairCounts, merge_counts, table
from mlwarden.checks.fairness.proxies import leakage
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import write_parquet  # noqa: E402

SPEC = """\
name: planted-proxies
data:
  train: train.parquet
  label: y
  sensitive: [grp]
"""


def _pipeline(root: Path, n: int = 3000) -> Path:
    """``flag`` marks grp=b exactly; ``income`` separates the groups (>128 distinct values, so binned);
    ``row_key`` is unique per row (an id the check must not mistake for a proxy); ``noise`` is noise;
    ``city`` is text that carries grp for 85 % of rows."""
    rng = np.random.default_rng(11)
    grp = rng.choice(["a", "b"], n, p=[0.7, 0.3])
    b = grp == "b"
    city = np.where(rng.random(n) < 0.85, np.where(b, "north", "south"), rng.choice(["north", "south"], n))
    write_parquet(root / "train.parquet", {
        "grp": grp,
        "flag": b.astype(np.int64),
        "income": np.round(np.where(b, rng.lognormal(9, 0.2, n), rng.lognormal(11, 0.2, n)), 2),
        "row_key": rng.permutation(n).astype(np.float64) * 7.3,
        "noise": rng.normal(size=n),
        "city": city,
        "y": rng.integers(0, 2, n),
    }, row_group_size=500)
    (root / "mlwarden.yaml").write_text(SPEC, encoding="utf-8")
    return root / "mlwarden.yaml"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pipeline(tmp_path_factory.mktemp("proxies"))


@pytest.fixture(scope="module")
def result(planted: Path):
    [c] = run_audit(load_spec(planted), only=["fairness.proxies"]).checks
    return c


def test_planted_proxies_are_named_and_ids_are_not(result) -> None:
    assert result.status == "fail"
    found = {f.evidence["column"]: f for f in result.findings if "column" in f.evidence}
    assert set(found) == {"flag", "income", "city"}
    assert found["flag"].severity.value == "high" and found["flag"].evidence["auc"] == 1.0
    assert "a near-perfect proxy" in found["flag"].title and found["flag"].evidence["group"] in ("a", "b")
    assert found["income"].severity.value == "high" and found["income"].evidence["binning"] == "log-scale bins"
    assert found["city"].severity.value == "medium" and 0.8 <= found["city"].evidence["auc"] < 0.95
    assert found["flag"].evidence["model_reads_it"] is None  # no model in this spec
    rows = {r["column"]: r for r in result.metrics["attributes"]["grp"]["features"]}
    assert abs(rows["row_key"]["auc"] - 0.5) < 0.05 and rows["row_key"]["nmi"] < 0.05, "cross-fitting: ids leak nothing"
    assert abs(rows["noise"]["auc"] - 0.5) < 0.06


def test_feature_set_is_cross_validated_with_and_without_proxies(result) -> None:
    fs = result.metrics["attributes"]["grp"]["feature_set"]
    assert fs["rows"] == 3000 and fs["sampled"] is False
    assert fs["cv_auc"] > 0.99
    assert set(fs["without_proxies"]) == {"flag", "income", "city"}
    assert 0.4 < fs["without_proxies_cv_auc"] < 0.65, "only an id and noise are left"
    assert not any(f.evidence.get("attribute") == "grp" and "column" not in f.evidence for f in result.findings)


def test_sampling_is_reported_and_mergeable(planted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxies, "SAMPLE_ROWS", 1000)
    [one] = run_audit(load_spec(planted), only=["fairness.proxies"]).checks
    monkeypatch.setattr(datasets, "BATCH_ROWS", 61)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    [many] = run_audit(load_spec(planted), only=["fairness.proxies"]).checks
    fs = one.metrics["attributes"]["grp"]["feature_set"]
    assert fs["sampled"] is True and fs["rows"] == 1000
    assert one.metrics == many.metrics
    assert [f.to_dict() for f in one.findings] == [f.to_dict() for f in many.findings]


def test_coarsening_is_the_same_whatever_the_merge_order() -> None:
    def cell(values: range) -> PairCounts:
        return PairCounts.from_dict({(float(v), "a", 0): 1 for v in values})

    half = EXACT_BINS // 2 + 10  # each side exact, the union past the cap
    a, ca = {("x", "g"): cell(range(half))}, set()
    b, cb = {("x", "g"): cell(range(half, 2 * half))}, set()
    merge_counts(a, ca, b, cb)
    assert ca == {("x", "g")} and all(isinstance(k[0], tuple) for k in a[("x", "g")].to_dict())
    c, cc = {("x", "g"): cell(range(2 * half))}, set()
    from mlwarden.checks.fairness.bins import _settle

    _settle(c, cc, ("x", "g"))
    assert c == a


def test_leakage_of_a_perfect_and_a_useless_binary_feature() -> None:
    m = np.zeros((2, 2, 2))
    m[0, 0, :] = 50  # value 0 → group a
    m[1, 1, :] = 30  # value 1 → group b
    r = leakage(m, ["a", "b"], 30)
    assert r["auc"] == 1.0 and r["nmi"] > 0.95
    m[:, :, :] = 20
    r = leakage(m, ["a", "b"], 30)
    assert r["auc"] == 0.5 and r["nmi"] == 0.0
    keys, groups, t = table({(1.0, "b", 0): 3, (None, "(missing)", 1): 2, (0.0, "a", 1): 4})
    assert keys == [None, 0.0, 1.0] and groups == ["a", "b"] and t.sum() == 7


def test_skip_without_feature_columns(tmp_path: Path) -> None:
    write_parquet(tmp_path / "train.parquet", {"grp": pa.array(["a", "b"] * 20), "y": pa.array([0, 1] * 20)})
    (tmp_path / "mlwarden.yaml").write_text(SPEC, encoding="utf-8")
    [c] = run_audit(load_spec(tmp_path / "mlwarden.yaml"), only=["fairness.proxies"]).checks
    assert c.status == "skipped"
    assert c.message == "the training data has no column besides the sensitive attributes, label and id"


def test_demo_names_the_race_and_sex_indicators(demo_dir: Path) -> None:
    [c] = run_audit(load_spec(demo_dir / "mlwarden.yaml"), only=["fairness.proxies"]).checks
    high = {(f.evidence["attribute"], f.evidence["column"]) for f in c.findings
            if f.severity.value == "high" and "column" in f.evidence}
    assert {("race", "white"), ("race", "black"), ("race", "hispan"), ("sex", "male")} <= high
    assert all(f.evidence["model_reads_it"] is True for f in c.findings if "column" in f.evidence)
    assert set(c.metrics["attributes"]["race"]["proxies"]) >= {"white", "black", "hispan"}
