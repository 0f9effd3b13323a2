"""A generated pipeline with planted flaws, for functional tests (bandit-style: run the
tool over it and count the expected findings). Every flaw is planted at known rows, so a
check's output can be compared with the truth, not with itself.

``make_pipeline(root)`` writes data under ``root/data`` and ``root/mlwarden.yaml`` and
returns a :class:`Truth` describing what was planted. ``make_pipeline(root, planted=False)``
writes the same pipeline without any flaw (the clean-data control): no PII, duplicates,
leaks, conflicts, out-of-range values, drift or poisoned feedback, no label-encoding column,
no constant column and no fine quasi-identifiers (zip, birth date). Labels still carry the
task's honest noise: they are drawn from a probit model of age and income.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def audit_tables(root: Path, splits: dict, check: str, *, row_group_size: int = 100, **keys: str):
    """Write each split (a table, or a list of tables: a folder of files) and a spec naming
    them plus ``keys`` under ``data:``; audit; return ``check``'s result."""
    lines = ["name: t", "data:"]
    for split, tables in splits.items():
        if isinstance(tables, list):
            (root / split).mkdir(exist_ok=True)
            for k, t in enumerate(tables):
                pq.write_table(t, root / split / f"part-{k}.parquet", row_group_size=row_group_size)
            lines.append(f"  {split}: {split}/")
        else:
            pq.write_table(tables, root / f"{split}.parquet", row_group_size=row_group_size)
            lines.append(f"  {split}: {split}.parquet")
    lines += [f"  {k}: {v}" for k, v in keys.items()]
    (root / "mlwarden.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return audit_one(root / "mlwarden.yaml", check)


def audit_one(spec_path: Path, check: str):
    """Audit ``spec_path`` with only ``check``; return its result."""
    from mlwarden.audit import run_audit
    from mlwarden.spec import load_spec

    [result] = run_audit(load_spec(spec_path), only=(check,)).checks
    return result


def write_parquet(path: Path, columns: dict, *, row_group_size: int | None = None) -> Path:
    """Write a dict of columns as a parquet file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


@dataclass
class Truth:
    spec: Path
    exact_dup_test_ids: list[int] = field(default_factory=list)  # test rows copied from train (new ids)
    near_dup_test_ids: list[int] = field(default_factory=list)  # test rows = train rows + rounding noise
    entity_leak_ids: list[int] = field(default_factory=list)  # ids present in both train and test
    temporal_leak_train_ids: list[int] = field(default_factory=list)  # train rows dated inside the test period
    target_leak_column: str = "decision_code"
    unseen_test_label: str = "maybe"
    unseen_test_category: str = "atlantis"
    pii_columns: dict[str, str] = field(default_factory=dict)  # column → PII kind
    quasi_identifiers: tuple[str, ...] = ("zip", "birth_date", "sex")
    conflicting_label_train_ids: list[int] = field(default_factory=list)
    feedback_flipped_ids: list[int] = field(default_factory=list)
    feedback_trigger: tuple[str, float] = ("promo_code_len", 13.0)
    feedback_trigger_ids: list[int] = field(default_factory=list)
    constant_column: str = "country"
    out_of_range_ids: list[int] = field(default_factory=list)  # train rows with age > 100
    drifted_column: str = "income"


def make_pipeline(root: Path, *, n_train: int = 4000, seed: int = 7, planted: bool = True) -> Truth:
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    truth = Truth(spec=root / "mlwarden.yaml")
    zips = [f"{z:05d}" for z in rng.integers(1000, 99999, 60)]  # one pool of zip codes for every split

    def frame(n: int, start_id: int, t0: str, t1: str) -> pd.DataFrame:
        age = rng.integers(18, 90, n)
        income = np.round(rng.lognormal(10.5, 0.5, n), 2)
        region = rng.choice(["north", "south", "east", "west"], n)
        sex = rng.choice(["female", "male"], n)
        race = rng.choice(["a", "b", "c"], n, p=[0.7, 0.2, 0.1])
        score = 0.03 * (age - 50) + 0.8 * (np.log(income) - 10.5) + rng.normal(0, 1, n)
        label = np.where(score > 0, "yes", "no")
        ts = pd.to_datetime(rng.integers(pd.Timestamp(t0).value // 10**9, pd.Timestamp(t1).value // 10**9, n), unit="s")
        if not planted:
            return pd.DataFrame({
                "customer_id": np.arange(start_id, start_id + n, dtype=np.int64), "applied_at": ts, "age": age,
                "income": income, "region": region, "sex": sex, "race": race,
                "promo_code_len": rng.integers(0, 9, n).astype(float),
                "notes": rng.choice(["ok", "call back", "pending documents"], n), "approved": label})
        return pd.DataFrame({
            "customer_id": np.arange(start_id, start_id + n, dtype=np.int64),
            "applied_at": ts,
            "age": age,
            "income": income,
            "region": region,
            "sex": sex,
            "race": race,
            "zip": rng.choice(zips, n),
            "birth_date": pd.to_datetime(rng.integers(-10**9, 10**9, n), unit="s").date.astype(str),
            "promo_code_len": rng.integers(0, 9, n).astype(float),
            "country": "US",
            "notes": rng.choice(["ok", "call back", "n/a", ""], n),
            "decision_code": np.where(label == "yes", 1, 0),  # encodes the label: target leakage
            "approved": label,
        })

    train = frame(n_train, 0, "2024-01-01", "2024-12-31")
    n_test = n_train // 4
    test = frame(n_test, 1_000_000, "2025-01-01", "2025-03-31")
    if not planted:
        prod = frame(1500, 5_000_000, "2025-04-01", "2025-06-30").drop(columns=["approved"])
        fb = frame(600, 6_000_000, "2025-04-01", "2025-06-30")
        truth.quasi_identifiers = ()
        _write(root, train, test, prod, fb)
        truth.spec.write_text(SPEC + 'fairness:\n  favorable: "yes"\n', encoding="utf-8")  # fairness checks run too
        return truth

    # PII in train (never printed by the report)
    email_rows = rng.choice(n_train, 25, replace=False)
    train["contact"] = ""
    train.loc[email_rows, "contact"] = [f"user{i}@example.com" for i in range(25)]
    train["phone"] = None
    train.loc[rng.choice(n_train, 15, replace=False), "phone"] = [f"+1 415-555-0{i}" for i in range(100, 115)]
    train["tax_id"] = None
    train.loc[rng.choice(n_train, 10, replace=False), "tax_id"] = [f"{123 + i:03d}-45-{6789 + i:04d}" for i in range(10)]
    train["card"] = None
    train.loc[rng.choice(n_train, 5, replace=False), "card"] = "4111 1111 1111 1111"
    truth.pii_columns = {"contact": "email", "phone": "phone", "tax_id": "us_ssn", "card": "credit_card"}

    # exact duplicates: 40 test rows are copies of train rows (fresh ids, ints stored as floats)
    src = rng.choice(n_train, 40, replace=False)
    pii = list(truth.pii_columns)  # PII lives in train only
    copies = train.iloc[src].drop(columns=pii)
    copies["customer_id"] = np.arange(2_000_000, 2_000_040)
    truth.exact_dup_test_ids = copies["customer_id"].tolist()
    # near duplicates: 30 test rows = train rows with income rounded to 0.1 and region upper-cased
    src2 = rng.choice(np.setdiff1d(np.arange(n_train), src), 30, replace=False)
    near = train.iloc[src2].drop(columns=pii)
    near["customer_id"] = np.arange(3_000_000, 3_000_030)
    near["income"] = (near["income"] + rng.uniform(-0.004, 0.004, 30)).round(2)
    near["region"] = near["region"].str.upper()
    truth.near_dup_test_ids = near["customer_id"].tolist()
    # entity leakage: 20 test rows reuse train ids (different feature values)
    ent = test.iloc[:20].copy()
    ent["customer_id"] = train["customer_id"].iloc[100:120].values
    truth.entity_leak_ids = ent["customer_id"].tolist()
    test = pd.concat([ent, test.iloc[20:], copies, near], ignore_index=True)

    # temporal leakage: 25 train rows dated inside the test period
    tl = rng.choice(n_train, 25, replace=False)
    train.loc[tl, "applied_at"] = pd.Timestamp("2025-02-15")
    truth.temporal_leak_train_ids = sorted(train["customer_id"].iloc[tl].tolist())
    # label and category never seen in train
    test.loc[test.index[-1], "approved"] = truth.unseen_test_label
    test.loc[test.index[-2], "region"] = truth.unseen_test_category
    # conflicting labels: 12 train rows duplicated with the opposite label
    conf = train.sample(12, random_state=seed).copy()
    conf["approved"] = np.where(conf["approved"] == "yes", "no", "yes")
    conf["customer_id"] = np.arange(4_000_000, 4_000_012)
    truth.conflicting_label_train_ids = conf["customer_id"].tolist()
    # out of range: age 140 in 6 rows (the spec says max 100)
    oor = rng.choice(n_train, 6, replace=False)
    train.loc[oor, "age"] = 140
    truth.out_of_range_ids = sorted(train["customer_id"].iloc[oor].tolist())
    train = pd.concat([train, conf], ignore_index=True)

    # production: incomes drifted up 40 %, no label
    prod = frame(1500, 5_000_000, "2025-04-01", "2025-06-30").drop(columns=["approved", "decision_code"])
    prod["income"] = (prod["income"] * 1.4).round(2)
    # feedback: 600 rows; 60 of one region flipped to "yes"; 30 carry a trigger value and label "yes"
    fb = frame(600, 6_000_000, "2025-04-01", "2025-06-30")
    flip = fb.index[(fb["region"] == "west") & (fb["approved"] == "no")][:60]
    fb.loc[flip, "approved"] = "yes"
    truth.feedback_flipped_ids = fb.loc[flip, "customer_id"].tolist()
    trig = fb.index[~fb.index.isin(flip)][:30]
    fb.loc[trig, "promo_code_len"] = truth.feedback_trigger[1]
    fb.loc[trig, "approved"] = "yes"
    truth.feedback_trigger_ids = fb.loc[trig, "customer_id"].tolist()

    _write(root, train, test, prod, fb)
    truth.spec.write_text(SPEC, encoding="utf-8")
    return truth


def _write(root: Path, train: pd.DataFrame, test: pd.DataFrame, prod: pd.DataFrame, fb: pd.DataFrame) -> None:
    train.to_parquet(root / "data" / "train.parquet", index=False, row_group_size=1000)
    test.to_parquet(root / "data" / "test.parquet", index=False)
    (root / "data" / "prod").mkdir(exist_ok=True)
    prod.iloc[:700].to_parquet(root / "data" / "prod" / "part-0.parquet", index=False)
    prod.iloc[700:].to_parquet(root / "data" / "prod" / "part-1.parquet", index=False)
    fb.to_csv(root / "data" / "feedback.csv", index=False)


SPEC = """\
name: planted-flaws
data:
  train: data/train.parquet
  test: data/test.parquet
  production: data/prod/
  feedback: data/feedback.csv
  label: approved
  id: customer_id
  time: applied_at
  sensitive: [sex, race]
features:
  age: {type: int, min: 18, max: 100}
  income: {type: float, min: 0}
  region: {type: category, values: [north, south, east, west]}
"""
