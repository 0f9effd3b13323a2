"""Run one peer tool on the bench_audit.py files; print one JSON line. Runs in the peers' venv.

    python peers_audit.py deepchecks_integrity|deepchecks_train_test|evidently_drift DATA_DIR

Each tool runs with its defaults (Deepchecks samples 10,000 rows in several checks; the
report says so). "found" lists which of bench_audit.py's planted flaws a failed check or a
drifted column of the tool points at.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

CATEGORICAL = ["purpose", "home_ownership", "employment_type", "region", "state", "education", "marital_status",
               "branch", "sex", "race", "zip"]
LABEL, ID, TIME = "approved", "loan_id", "application_date"
# which peer check (by name, lower case) points at which planted flaw
DEEPCHECKS_FLAWS = {
    "train test samples mix": "exact_duplicates",
    "feature label correlation": "target_leakage",
    "conflicting labels": "conflicting_labels",
    "feature drift": "drift",
    "new category": "unseen_category",
    "category mismatch": "unseen_category",
    "date train test leakage": "temporal_leakage",
    "index train test leakage": "entity_leakage",
}


def load(data: Path, split: str):
    import pandas as pd

    df = pd.read_parquet(data / f"{split}.parquet")
    for c in ("birth_date", "earliest_credit_line"):
        df[c] = pd.to_datetime(df[c])
    return df


def deepchecks(kind: str, data: Path) -> dict:
    from deepchecks.tabular import Dataset
    from deepchecks.tabular.suites import data_integrity, train_test_validation

    def ds(df):
        return Dataset(df, label=LABEL, cat_features=CATEGORICAL, index_name=ID, datetime_name=TIME)

    train = ds(load(data, "train"))
    if kind == "deepchecks_integrity":
        result = data_integrity().run(train)
    else:
        result = train_test_validation().run(train, ds(load(data, "test")))
    failed = [r.get_header() for r in result.get_not_passed_checks()]
    found = sorted({flaw for name in failed for key, flaw in DEEPCHECKS_FLAWS.items()
                    if key in name.lower().replace("-", " ")})
    return {"failed_checks": failed, "found": found}


def evidently(data: Path) -> dict:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    train, test = load(data, "train"), load(data, "test")
    cols = [c for c in train.columns if c not in (ID, LABEL)]
    snapshot = Report([DataDriftPreset()]).run(reference_data=train[cols], current_data=test[cols])
    drifted = []
    for m in snapshot.dict()["metrics"]:
        name, value = str(m.get("metric_name", "")), m.get("value")
        if name.startswith("ValueDrift") and isinstance(value, (int, float)):
            col = name.split("column=", 1)[1].split(",", 1)[0] if "column=" in name else name
            threshold = 0.1 if "method=Wasserstein" in name or "Jensen" in name else 0.05
            is_distance = "Wasserstein" in name or "Jensen" in name or "PSI" in name
            if (value >= threshold) if is_distance else (value < threshold):
                drifted.append(col)
    return {"drifted_columns": drifted, "found": ["drift"] if "interest_rate" in drifted else []}


def main() -> None:
    kind, data = sys.argv[1], Path(sys.argv[2])
    t0 = time.perf_counter()
    out = evidently(data) if kind == "evidently_drift" else deepchecks(kind, data)
    out["wall_s"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
