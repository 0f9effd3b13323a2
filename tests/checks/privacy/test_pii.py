"""data.privacy.pii on the planted pipeline and on small targeted data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlwarden.audit import run_audit
from mlwarden.checks.privacy import pii  # noqa: F401  (registers the check)
from mlwarden.findings import Severity
from mlwarden.report import Format
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import write_parquet  # noqa: E402
from pipelines import make_pipeline  # noqa: E402

CHECK = "data.privacy.pii"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    truth = make_pipeline(tmp_path_factory.mktemp("planted"))
    report = run_audit(load_spec(truth.spec), only=["data.privacy.*"])
    return truth, report


def _result(report, cid: str = CHECK):
    return next(c for c in report.checks if c.id == cid)


def test_finds_exactly_the_planted_pii(planted) -> None:
    truth, report = planted
    res = _result(report)
    assert res.status == "fail"
    got = {(f.evidence["column"], f.evidence["kind"]): f for f in res.findings}
    assert set(got) == {(c, k) for c, k in truth.pii_columns.items()}
    assert {c: got[(c, k)].evidence["rows"] for c, k in truth.pii_columns.items()} == {
        "contact": 25, "phone": 15, "tax_id": 10, "card": 5}
    assert all(f.evidence["split"] == "train" for f in res.findings)
    assert got[("tax_id", "us_ssn")].severity is Severity.HIGH
    assert got[("card", "credit_card")].severity is Severity.HIGH
    assert got[("contact", "email")].severity is Severity.MEDIUM
    assert got[("phone", "phone")].severity is Severity.MEDIUM
    assert res.metrics["rows_by_kind"]["email"] == 25


def test_sample_ids_are_the_planted_rows(planted) -> None:
    truth, report = planted
    train = pd.read_parquet(truth.spec.parent / "data" / "train.parquet")
    has = {"contact": train["contact"] != "", "phone": train["phone"].notna(),
           "tax_id": train["tax_id"].notna(), "card": train["card"].notna()}
    for f in _result(report).findings:
        expected = train.loc[has[f.evidence["column"]], "customer_id"].tolist()[:20]
        assert list(f.location.rows) == expected
        assert f.evidence["id_column"] == "customer_id"


def test_no_raw_pii_anywhere_in_the_reports(planted) -> None:
    truth, report = planted
    train = pd.read_parquet(truth.spec.parent / "data" / "train.parquet")
    raw = set()
    for col in truth.pii_columns:
        for v in train[col].dropna():
            if v:
                raw |= {v, v.replace(" ", "").replace("-", ""), v.split("@")[0]}
    assert len(raw) > 50
    for fmt in Format:
        text = fmt.formatter().render(report)
        leaked = [v for v in raw if v in text]
        assert not leaked, (fmt, leaked[:3])


def test_same_result_whatever_the_batching(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    truth, report = planted
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    small = run_audit(load_spec(truth.spec), only=["data.privacy.*"])
    for cid in (CHECK, "data.privacy.k_anonymity"):
        a, b = _result(report, cid), _result(small, cid)
        assert (a.status, a.metrics, [f.to_dict() for f in a.findings]) == \
               (b.status, b.metrics, [f.to_dict() for f in b.findings])


def _audit(tmp_path: Path, columns: dict, *, id_line: str = "") -> object:
    write_parquet(tmp_path / "train.parquet", columns, row_group_size=7)
    (tmp_path / "mlwarden.yaml").write_text(f"name: t\ndata:\n  train: train.parquet\n{id_line}", encoding="utf-8")
    return _result(run_audit(load_spec(tmp_path / "mlwarden.yaml"), only=[CHECK]))


def test_negatives_give_no_findings(tmp_path: Path) -> None:
    n = 40
    res = _audit(tmp_path, {
        "id": list(range(n)),
        "amount": [f"{1000 + i * 13.37:.2f}" for i in range(n)],
        "date": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
        "version": [f"1.{i}.3" for i in range(n)],
        "isbn": ["978-3-16-148410-0", "0-306-40615-2"] * (n // 2),
        "bad": ["4111 1111 1111 1112", "000-12-3456"] * (n // 2),
        "big": [10**15 + i for i in range(n)],
    })
    assert res.status == "pass" and res.findings == ()
    assert res.metrics["found"] == []


def test_free_text_and_critical_share(tmp_path: Path) -> None:
    n = 50
    notes = ["all good"] * n
    notes[3] = "customer SSN is 123-45-6789, call +44 20 7946 0958"
    notes[10] = "iban DE89 3704 0044 0532 0130 00"
    res = _audit(tmp_path, {"notes": notes, "customer_name": ["Jane Doe"] * 5 + ["n/a"] * (n - 5)})
    got = {(f.evidence["column"], f.evidence["kind"]): f for f in res.findings}
    assert set(got) == {("notes", "us_ssn"), ("notes", "phone"), ("notes", "iban"), ("customer_name", "names")}
    assert got[("notes", "us_ssn")].severity is Severity.CRITICAL  # 1 of 50 rows: over 1 %
    assert list(got[("notes", "us_ssn")].location.rows) == [3]  # no id column: the row number
    assert got[("customer_name", "names")].evidence["rows"] == 5
    assert got[("customer_name", "names")].severity is Severity.MEDIUM


def test_id_column_holding_pii_is_not_used_to_name_rows(tmp_path: Path) -> None:
    emails = [f"person{i}@example.com" for i in range(20)]
    res = _audit(tmp_path, {"user": emails, "x": list(range(20))}, id_line="  id: user\n")
    f = next(f for f in res.findings if f.evidence["column"] == "user")
    assert f.evidence["rows"] == 20 and f.evidence["id_column"] == "(row number)"
    assert list(f.location.rows) == list(range(20))
    assert not any(e in json.dumps(f.to_dict()) for e in emails)
