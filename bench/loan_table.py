"""The generated 31-column loan table of bench_audit.py, with planted flaws at known rows.

Columns: an id, an application date (train: 2023–2024, test: 2025 Q1, feedback: 2025 Q2),
the label ``approved``, 13 numbers, 8 categories (``branch`` stands in for ``race``), 2 sensitive
attributes, 2 dates, a zip code, a free-text e-mail column and ``decision_code`` (the label
in disguise). Rows are written in chunks of ``CHUNK`` through ``ParquetWriter``, so 10M
rows take no more memory than 250k.

Planted flaws (the truth goes to ``truth.json``):

- ``exact_duplicates`` — 0.1 % of test rows are training rows under new ids;
- ``near_duplicates`` — 0.1 % of test rows are training rows with income jittered
  by < 0.01 %, the region upper-cased and the e-mail reformatted;
- ``entity_leakage`` — 0.05 % of test rows reuse a training id;
- ``temporal_leakage`` — 0.05 % of training rows are dated inside the test period;
- ``target_leakage`` — ``decision_code`` encodes the label;
- ``pii`` — 0.5 % of training rows carry an e-mail address;
- ``label_flip_region`` — in training, 35 % of one region × purpose cell has its label flipped;
- ``conflicting_labels`` — 0.02 % of training rows repeated with the opposite label;
- ``poisoned_feedback`` — one contiguous batch of feedback rows carries a trigger value
  (``promo_code_len`` = 13) and the label "yes";
- ``out_of_range`` — 0.01 % of training rows have age 140 (the spec says ≤ 100);
- ``drift`` — test interest rates are 25 % higher;
- ``unseen_category`` — a test purpose ("crypto") that training never has;
- ``proxy`` — ``branch`` determines ``race`` for most rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 250_000
PURPOSES = np.array(["car", "home", "education", "business", "medical", "debt", "travel", "other"])
REGIONS = np.array(["north", "south", "east", "west"])
STATES = np.array([f"S{i:02d}" for i in range(50)])
EDU = np.array(["none", "high_school", "bachelor", "master", "phd"])
MARITAL = np.array(["single", "married", "divorced", "widowed"])
HOME = np.array(["rent", "own", "mortgage", "other"])
EMPLOY = np.array(["salaried", "self_employed", "unemployed", "retired", "student"])
RACES = np.array(["a", "b", "c", "d"])
BRANCHES = np.array([f"B{i:03d}" for i in range(200)])
ZIPS = np.array([f"{z:05d}" for z in np.random.default_rng(99).integers(1000, 99999, 3000)])
DAY = 86_400


def _epoch(date: str) -> int:
    return int(np.datetime64(date, "s").astype(np.int64))


def frame(rng: np.random.Generator, n: int, id0: int, t0: str, t1: str, *, rate_shift: float = 1.0) -> dict:
    """``n`` fresh rows as a dict of numpy arrays (label drawn from a logistic model)."""
    age = rng.integers(18, 90, n)
    income = np.round(rng.lognormal(10.8, 0.6, n), 2)
    loan = np.round(rng.lognormal(9.5, 0.8, n), 2)
    term = rng.choice([12, 24, 36, 48, 60], n)
    rate = np.round(rng.uniform(0.03, 0.25, n) * rate_shift, 4)
    score = np.clip(rng.normal(680, 70, n), 300, 850).round()
    dti = np.round(rng.beta(2, 5, n) * 0.8, 4)
    total_acc = rng.integers(1, 40, n)
    open_acc = np.minimum(total_acc, rng.integers(0, 20, n))
    branch_i = rng.integers(0, len(BRANCHES), n)
    race_i = np.where(rng.random(n) < 0.85, branch_i % len(RACES), rng.integers(0, len(RACES), n))
    logit = (0.015 * (score - 680) - 3.0 * (dti - 0.23) + 0.6 * (np.log(income) - 10.8)
             - 0.8 * (np.log(loan) - 9.5) + rng.logistic(0, 0.6, n))
    label = np.where(logit > 0, "yes", "no")
    birth = rng.integers(_epoch("1935-01-01") // DAY, _epoch("2006-01-01") // DAY, n).astype("datetime64[D]")
    return {
        "loan_id": np.arange(id0, id0 + n, dtype=np.int64),
        "application_date": rng.integers(_epoch(t0), _epoch(t1), n).astype("datetime64[s]"),
        "age": age, "income": income, "loan_amount": loan, "term_months": term, "interest_rate": rate,
        "credit_score": score, "debt_to_income": dti, "open_accounts": open_acc, "total_accounts": total_acc,
        "delinquencies": rng.poisson(0.3, n), "years_employed": np.round(rng.exponential(6, n), 1),
        "monthly_payment": np.round(loan * (rate / 12) / (1 - (1 + rate / 12) ** -term), 2),
        "promo_code_len": rng.integers(0, 9, n).astype(float),
        "purpose": rng.choice(PURPOSES, n), "home_ownership": rng.choice(HOME, n),
        "employment_type": rng.choice(EMPLOY, n), "region": rng.choice(REGIONS, n), "state": rng.choice(STATES, n),
        "education": rng.choice(EDU, n), "marital_status": rng.choice(MARITAL, n), "branch": BRANCHES[branch_i],
        "sex": rng.choice(np.array(["female", "male"]), n), "race": RACES[race_i],
        "birth_date": birth,
        "earliest_credit_line": (birth + rng.integers(18 * 365, 30 * 365, n)).astype("datetime64[D]"),
        "zip": ZIPS[rng.integers(0, len(ZIPS), n)],
        "email": np.full(n, "", dtype=object),
        "decision_code": np.where(label == "yes", 7, 3) + 10 * rng.integers(0, 2, n),
        "approved": label,
    }


def _take(cols: dict, idx: np.ndarray) -> dict:
    return {k: v[idx] for k, v in cols.items()}


def _cat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class _Writer:
    def __init__(self, path: Path) -> None:
        self.path, self.writer = path, None

    def write(self, cols: dict) -> None:
        table = pa.table({k: pa.array(v) for k, v in cols.items()})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema), row_group_size=CHUNK)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def generate(root: Path, rows: int, seed: int = 11) -> dict:
    """Write train (``rows``), test (rows/4) and feedback (rows/20) plus the spec; return the truth."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    n_test, n_fb = rows // 4, max(2000, rows // 20)
    truth: dict = {"rows": {"train": rows, "test": n_test, "feedback": n_fb}}
    donors: list[dict] = []  # training rows kept aside to copy into test
    temporal, pii, oor, conflict = [], 0, [], []
    w = _Writer(data / "train.parquet")
    for k, start in enumerate(range(0, rows, CHUNK)):
        rng = np.random.default_rng([seed, 1, k])
        n = min(CHUNK, rows - start)
        c = frame(rng, n, start, "2023-01-01", "2024-12-31")
        flip = (c["region"] == "west") & (c["purpose"] == "medical") & (rng.random(n) < 0.35)
        c["approved"] = np.where(flip, np.where(c["approved"] == "yes", "no", "yes"), c["approved"])
        t = rng.choice(n, max(1, n // 2000), replace=False)
        c["application_date"][t] = np.datetime64("2025-02-15T12:00:00", "s")
        temporal += (c["loan_id"][t]).tolist()
        e = rng.choice(n, n // 200, replace=False)
        c["email"][e] = [f"applicant{start + i}@example.com" for i in e]
        pii += e.size
        o = rng.choice(n, max(1, n // 10_000), replace=False)
        c["age"][o] = 140
        oor += c["loan_id"][o].tolist()
        donors.append(_take(c, rng.choice(n, max(4, n_test * 4 // 1000 * n // rows), replace=False)))
        cf = _take(c, rng.choice(n, max(1, n // 5000), replace=False))
        cf["approved"] = np.where(cf["approved"] == "yes", "no", "yes")
        cf["loan_id"] = cf["loan_id"] + 4 * 10**11
        conflict += cf["loan_id"].tolist()
        w.write(_cat([c, cf]))
    w.close()
    donor = _cat(donors)
    perm = np.random.default_rng([seed, 2]).permutation(donor["loan_id"].size)
    q = perm.size // 4
    exact_src, near_src, ent_src = (_take(donor, perm[i * q:(i + 1) * q]) for i in range(3))
    ent_src = _take(ent_src, np.arange(ent_src["loan_id"].size // 2))
    exact_ids, near_ids, ent_ids = [], [], []
    w = _Writer(data / "test.parquet")
    n_chunks = max(1, -(-n_test // CHUNK))
    for k, start in enumerate(range(0, n_test, CHUNK)):
        rng = np.random.default_rng([seed, 3, k])
        n = min(CHUNK, n_test - start)
        c = frame(rng, n, 10**11 + start, "2025-01-01", "2025-03-31", rate_shift=1.25)
        if k == 0:
            c["purpose"][-1] = "crypto"
        sl = slice(k * exact_src["loan_id"].size // n_chunks, (k + 1) * exact_src["loan_id"].size // n_chunks)
        ex = {key: v[sl].copy() for key, v in exact_src.items()}
        ex["loan_id"] = 2 * 10**11 + ex["loan_id"]
        exact_ids += ex["loan_id"].tolist()
        sl = slice(k * near_src["loan_id"].size // n_chunks, (k + 1) * near_src["loan_id"].size // n_chunks)
        nr = {key: v[sl].copy() for key, v in near_src.items()}
        nr["loan_id"] = 3 * 10**11 + nr["loan_id"]
        nr["income"] = np.round(nr["income"] * (1 + rng.uniform(-5e-5, 5e-5, nr["income"].size)), 2)
        nr["region"] = np.char.upper(nr["region"].astype(str)).astype(object)
        nr["email"] = np.full(nr["income"].size, " ", dtype=object)
        near_ids += nr["loan_id"].tolist()
        sl = slice(k * ent_src["loan_id"].size // n_chunks, (k + 1) * ent_src["loan_id"].size // n_chunks)
        en = _take(c, np.arange(sl.stop - sl.start))
        en["loan_id"] = ent_src["loan_id"][sl]
        ent_ids += en["loan_id"].tolist()
        w.write(_cat([_take(c, np.arange(en["loan_id"].size, n)), en, ex, nr]))
    w.close()
    rng = np.random.default_rng([seed, 4])
    fb = frame(rng, n_fb, 5 * 10**11, "2025-04-01", "2025-06-30")
    b0, b1 = n_fb // 2, n_fb // 2 + max(100, n_fb // 50)
    fb["promo_code_len"][b0:b1] = 13.0
    fb["approved"][b0:b1] = "yes"
    truth["poisoned_feedback_ids"] = [int(fb["loan_id"][b0]), int(fb["loan_id"][b1 - 1])]
    w = _Writer(data / "feedback.parquet")
    w.write(fb)
    w.close()
    truth.update(exact_duplicate_ids=len(exact_ids), near_duplicate_ids=len(near_ids), entity_ids=len(ent_ids),
                 temporal_ids=len(temporal), pii_rows=pii, out_of_range_ids=len(oor),
                 conflicting_label_rows=len(conflict))
    (root / "truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    (root / "mlwarden.yaml").write_text(SPEC, encoding="utf-8")
    return truth


SPEC = """\
name: loan-bench
data:
  train: data/train.parquet
  test: data/test.parquet
  feedback: data/feedback.parquet
  label: approved
  id: loan_id
  time: application_date
  sensitive: [sex, race]
features:
  age: {type: int, min: 18, max: 100}
  income: {type: float, min: 0}
fairness:
  favorable: "yes"
"""
