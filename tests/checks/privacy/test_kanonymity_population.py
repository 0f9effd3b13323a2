"""data.privacy.k_anonymity: population risk (sample vs population uniqueness) and quasi-identifier strength.

A population is generated with known class sizes, samples of two sizes are drawn from it, and
the check's estimates are compared with the truth: the sample shares move with the sample size,
the population estimates must not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mlwarden.checks.privacy.kanon_risk import strength
from mlwarden.errors import SpecError
from mlwarden.findings import Severity

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_one, write_parquet  # noqa: E402

CHECK = "data.privacy.k_anonymity"
N = 200_000


def _population(seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    zipw = 1.0 / np.arange(1, 201) ** 0.8  # a few big zip codes, many small ones
    return {"age": rng.integers(18, 90, N), "sex": rng.choice(np.array(["f", "m"]), N),
            "zip": np.array([f"{z:05d}" for z in rng.choice(200, N, p=zipw / zipw.sum())])}


def _audit(root: Path, cols: dict, extra: str = ""):
    write_parquet(root / "train.parquet", cols, row_group_size=1000)
    (root / "mlwarden.yaml").write_text(f"name: k\ndata:\n  train: train.parquet\n{extra}", encoding="utf-8")
    return audit_one(root / "mlwarden.yaml", CHECK)


def test_population_estimate_matches_the_known_population(tmp_path: Path) -> None:
    pop = _population()
    key = np.array([f"{a}|{s}|{z}" for a, s, z in zip(pop["age"], pop["sex"], pop["zip"])])
    _, inverse, sizes = np.unique(key, return_inverse=True, return_counts=True)
    size_of = sizes[inverse]  # each person's class size in the population
    rng = np.random.default_rng(9)
    estimates = {}
    for n in (5_000, 20_000):
        pick = rng.choice(N, n, replace=False)
        res = _audit(tmp_path / str(n), {k: v[pick] for k, v in pop.items()}, f"  population_size: {N}\n")
        m = res.metrics["splits"]["train"]
        p = m["population"]
        assert p["sampling_fraction"] == round(n / N, 6) and p["population_size"] == N
        truth_lt5 = float(np.mean(size_of[pick] < 5))
        truth_unique = float(np.mean(size_of[pick] == 1))
        # the Poisson log-linear estimate is right within 3 points (QIs independent, as the model assumes)
        assert abs(p["share_k_lt_5"] - truth_lt5) < 0.03, (n, p, truth_lt5)
        assert abs(p["share_unique"] - truth_unique) < 0.01, (n, p, truth_unique)
        estimates[n] = (m["share_k_lt"]["5"], p["share_k_lt_5"])
    (sample_small, pop_small), (sample_big, pop_big) = estimates[5_000], estimates[20_000]
    assert sample_small > sample_big + 0.15  # sample uniqueness grows as the sample shrinks…
    assert abs(pop_small - pop_big) < 0.02  # …the population risk does not


def test_planted_zip_birth_date_sex_stays_high(tmp_path: Path) -> None:
    """30 % of people singled out by zip + full birth date + sex: high, even in a population of 10M."""
    rng = np.random.default_rng(4)
    n = 4000
    rare = rng.random(n) < 0.3
    zips = np.where(rare, np.array([f"{z:05d}" for z in rng.integers(1000, 99999, n)]), "02139")
    births = np.where(rare, (np.datetime64("1940-01-01") + rng.integers(0, 25_000, n)).astype(str), "1980-01-01")
    res = _audit(tmp_path, {"zip": zips, "birth_date": births, "sex": rng.choice(["f", "m"], n)},
                 "  population_size: 10000000\n")
    m = res.metrics["splits"]["train"]
    assert m["strongest"] == "strong" and m["per_column"]["birth_date"]["kind"] == "full birth date"
    assert m["population"]["share_k_lt_5"] > 0.25 and m["population"]["share_unique"] > 0.15
    (f,) = res.findings
    assert f.severity is Severity.HIGH and "in a population of 10,000,000" in f.title


def test_coarse_quasi_identifiers_are_at_most_medium(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 600  # one split and no population size: a census, so the population is these rows
    cols = {"age": rng.integers(18, 90, n), "marital_status": rng.choice(["single", "married", "divorced"], n),
            "race": rng.choice(["a", "b", "c"], n), "sex": rng.choice(["f", "m"], n)}
    res = _audit(tmp_path, cols)
    m = res.metrics["splits"]["train"]
    assert m["population"]["sampling_fraction"] == 1.0
    assert m["population"]["share_k_lt_5"] == m["share_k_lt"]["5"] > 0.9
    assert {c["strength"] for c in m["per_column"].values()} == {"weak"}
    (f,) = res.findings
    assert f.severity is Severity.MEDIUM and f.title.endswith("coarse quasi-identifiers only")


def test_default_population_is_the_measured_rows(tmp_path: Path) -> None:
    """No data.population_size: train and feedback together are the smallest population the data fit."""
    pop = _population()
    write_parquet(tmp_path / "train.parquet", {k: v[:8000] for k, v in pop.items()})
    write_parquet(tmp_path / "feedback.parquet", {k: v[8000:10000] for k, v in pop.items()})
    (tmp_path / "mlwarden.yaml").write_text("name: k\ndata:\n  train: train.parquet\n  feedback: feedback.parquet\n")
    res = audit_one(tmp_path / "mlwarden.yaml", CHECK)
    assert res.metrics["population_size"] == 10_000 and "upper bound" in res.metrics["population_source"]
    fb = res.metrics["splits"]["feedback"]
    assert fb["population"]["sampling_fraction"] == 0.2
    assert fb["population"]["share_k_lt_5"] < fb["share_k_lt"]["5"]


@pytest.mark.parametrize("value", ["0", "-5", "many", "1.5"])
def test_population_size_is_validated(tmp_path: Path, value: str) -> None:
    from mlwarden.spec import load_spec

    (tmp_path / "s.yaml").write_text(f"name: k\ndata:\n  train: t.parquet\n  population_size: {value}\n")
    with pytest.raises(SpecError, match="population_size"):
        load_spec(tmp_path / "s.yaml")


def test_population_smaller_than_the_data_is_a_census(tmp_path: Path) -> None:
    res = _audit(tmp_path, {"zip": ["a"] * 10 + ["b", "c"]}, "  population_size: 5\n")
    assert res.metrics["splits"]["train"]["population"]["sampling_fraction"] == 1.0


@pytest.mark.parametrize(("name", "distinct", "expected"), [
    ("zip", 40, "strong"), ("postcode", 3, "strong"), ("birth_date", 9000, "strong"), ("birth_year", 70, "medium"),
    ("city", 30, "medium"), ("age", 72, "weak"), ("marital_status", 4, "weak"), ("sex", 2, "weak"),
    ("race", None, "strong"), ("religion", 6, "weak"), ("employer", 300, "medium"), ("age", 5000, "strong"),
])
def test_strength(name: str, distinct: int | None, expected: str) -> None:
    assert strength(set(name.split("_")), distinct)[0] == expected
