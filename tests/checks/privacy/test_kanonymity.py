"""data.privacy.k_anonymity: exact classes on small data, the planted pipeline, the budget."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mlwarden.audit import run_audit
from mlwarden.checks.privacy import kanonymity
from mlwarden.checks.privacy.kanonymity import ClassCounts
from mlwarden.findings import Severity
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import write_parquet  # noqa: E402
from pipelines import make_pipeline  # noqa: E402

CHECK = "data.privacy.k_anonymity"


def _audit(tmp_path: Path, columns: dict, extra: str = "") -> object:
    write_parquet(tmp_path / "train.parquet", columns, row_group_size=5)
    (tmp_path / "mlwarden.yaml").write_text(f"name: t\ndata:\n  train: train.parquet\n{extra}", encoding="utf-8")
    report = run_audit(load_spec(tmp_path / "mlwarden.yaml"), only=[CHECK])
    return next(c for c in report.checks if c.id == CHECK)


def _data() -> dict:
    # classes by (zip, sex): (a,f)×12, (a,m)×6, (b,f)×3, (b,m)×1, (c,f)×1 → 23 rows
    rows = [("a", "f")] * 12 + [("a", "m")] * 6 + [("b", "f")] * 3 + [("b", "m")] + [("c", "f")]
    return {"id": list(range(100, 123)), "zip": [z for z, _ in rows], "sex": [s for _, s in rows],
            "income": [float(i) for i in range(23)]}


def test_exact_classes_and_shares(tmp_path: Path) -> None:
    res = _audit(tmp_path, _data(), "  id: id\n")
    m = res.metrics["splits"]["train"]
    assert res.metrics["quasi_identifiers"]["train"] == ["sex", "zip"]
    assert (m["rows"], m["classes"], m["k"], m["unique_rows"]) == (23, 5, 1, 2)
    assert m["share_k_lt"] == {"2": round(2 / 23, 6), "5": round(5 / 23, 6), "10": round(11 / 23, 6)}
    assert m["per_column"]["zip"] == {"distinct": 3, "unique_rows": 1, "share_unique": round(1 / 23, 6),
                                      "strength": "strong", "kind": "fine location"}
    assert m["per_column"]["sex"]["strength"] == "weak"
    # one split and no data.population_size: these rows are the whole population (a census)
    assert m["population"]["sampling_fraction"] == 1.0 and m["population"]["share_k_lt_5"] == round(5 / 23, 6)
    assert m["population"]["estimated_population_uniques"] == 2.0
    # dropping zip leaves sex alone: f×16, m×7 → nobody under 5
    assert m["drop_one"]["zip"] == {"k": 7, "classes": 2, "share_k_lt_5": 0.0, "unique_rows": 0}
    assert m["most_identifying"] == "zip"
    (f,) = res.findings
    assert f.severity is Severity.HIGH  # 5/23 > 10 %
    assert list(f.location.rows) == [118, 119, 120, 121, 122]  # the rows of classes under 5, by id
    assert len(res.charts) == 1 and res.charts[0].labels == ("k < 2", "k < 5", "k < 10")


def test_medium_low_and_pass(tmp_path: Path) -> None:
    big = {"zip": ["a"] * 60 + ["b"] * 39 + ["c"], "x": list(range(100))}
    res = _audit(tmp_path / "low", big)
    assert [f.severity for f in res.findings] == [Severity.LOW]  # 1 % exactly: not above it
    big = {"zip": ["a"] * 60 + ["b"] * 38 + ["c", "d"], "x": list(range(100))}
    assert [f.severity for f in _audit(tmp_path / "med", big).findings] == [Severity.MEDIUM]
    ok = {"zip": ["a"] * 50 + ["b"] * 50, "age": [30, 40] * 50}
    res = _audit(tmp_path / "ok", ok)
    assert res.status == "pass" and res.findings == () and res.metrics["splits"]["train"]["k"] == 25


def test_sensitive_attributes_are_quasi_identifiers(tmp_path: Path) -> None:
    cols = {"religion": ["x", "y"] * 10, "score": list(range(20))}
    res = _audit(tmp_path, cols, "  sensitive: [religion]\n")
    assert res.metrics["quasi_identifiers"]["train"] == ["religion"]
    assert res.findings == ()


def test_skips_without_quasi_identifiers(tmp_path: Path) -> None:
    res = _audit(tmp_path, {"income": [1.0, 2.0], "state_of_account": ["x", "y"]})
    assert res.status == "skipped" and "no quasi-identifier columns" in res.message


def test_over_budget_is_a_finding_not_a_guess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kanonymity, "MAX_CLASSES", 10)
    monkeypatch.setattr(kanonymity, "MAX_AUX_CLASSES", 10)
    n = 40
    res = _audit(tmp_path, {"birth_date": [f"19{i:02d}-01-01" for i in range(n)], "sex": ["f", "m"] * (n // 2)})
    m = res.metrics["splits"]["train"]
    assert m["over_budget"] and m["classes"] == "> 10" and "k" not in m
    assert m["per_column"]["birth_date"] == {"over_budget": True, "distinct": "> 10",
                                             "strength": "strong", "kind": "full birth date"}
    assert m["per_column"]["sex"]["distinct"] == 2
    (f,) = res.findings
    assert "k not computed exactly" in f.title and f.severity.rank >= Severity.MEDIUM.rank


def test_class_counts_merge_in_any_order() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 50, 30).astype(np.uint64) for _ in range(6)]
    one = ClassCounts(1000)
    one.add(np.concatenate(parts))
    one.compact()
    for order in ([0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 2, 4]):
        acc = ClassCounts(1000)
        for i in order:
            piece = ClassCounts(1000)
            piece.add(parts[i])
            acc.absorb(piece)
        acc.compact()
        assert acc.keys.tolist() == one.keys.tolist() and acc.counts.tolist() == one.counts.tolist()
    capped = ClassCounts(10)
    capped.add(np.arange(11, dtype=np.uint64))
    capped.compact()
    assert capped.over and capped.keys.size == 0


def test_planted_pipeline_is_mostly_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = make_pipeline(tmp_path)
    res = next(c for c in run_audit(load_spec(truth.spec), only=[CHECK]).checks if c.id == CHECK)
    assert set(truth.quasi_identifiers) <= set(res.metrics["quasi_identifiers"]["train"])
    train = res.metrics["splits"]["train"]
    assert train["k"] == 1 and train["share_k_lt"]["2"] > 0.9
    assert train["most_identifying"] == "birth_date"
    by_split = {f.evidence["split"]: f for f in res.findings}
    assert by_split["train"].severity is Severity.HIGH
    assert len(by_split["train"].location.rows) == 20
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    small = next(c for c in run_audit(load_spec(truth.spec), only=[CHECK]).checks if c.id == CHECK)
    assert small.metrics == res.metrics
    assert [f.to_dict() for f in small.findings] == [f.to_dict() for f in res.findings]


def test_spec_names_quasi_identifiers(tmp_path) -> None:
    """data.quasi_identifiers replaces the name heuristic (and must name real columns)."""
    import pandas as pd

    from mlwarden.audit import run_audit
    from mlwarden.errors import SpecError
    from mlwarden.spec import load_spec

    df = pd.DataFrame({"zip": ["02139"] * 50 + ["10001"] * 50, "hobby": [f"h{i}" for i in range(100)]})
    df.to_parquet(tmp_path / "t.parquet", index=False)
    spec = tmp_path / "mlwarden.yaml"
    spec.write_text("name: k\ndata:\n  train: t.parquet\n  quasi_identifiers: [hobby]\n")
    [check] = run_audit(load_spec(spec), only=["data.privacy.k_anonymity"]).checks
    assert check.metrics["quasi_identifiers"] == {"train": ["hobby"]}
    assert check.metrics["splits"]["train"]["unique_rows"] == 100
    spec.write_text("name: k\ndata:\n  train: t.parquet\n  quasi_identifiers: [hobbies]\n")
    with pytest.raises(SpecError, match="data.quasi_identifiers: column 'hobbies' is not in data.train"):
        run_audit(load_spec(spec))
