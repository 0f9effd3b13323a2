"""data.poisoning.feedback on unlabelled rows, missing numbers and signed numbers, in any batch cut.

The fold skips per-row masking when every row is labelled and every number present, and
keys numeric buckets by offset when their range is narrow and non-negative: this table
has null labels, NaNs, zeros and negative numbers, so each batch takes the other paths
too, and the result must not depend on where batches are cut.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlwarden.checks.poisoning.feedback  # noqa: F401  (registers the check)
from mlwarden.sources import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_one

CHECK = "data.poisoning.feedback"


def frame(rng: np.random.Generator, n: int, id0: int) -> pd.DataFrame:
    age = rng.integers(18, 90, n).astype(float)
    age[rng.random(n) < 0.05] = np.nan
    signed = rng.normal(0, 5, n)
    signed[rng.random(n) < 0.1] = 0.0
    region = rng.choice(np.array(["north", "south", "east", "west", None], dtype=object), n)
    y = rng.choice(np.array(["yes", "no", "maybe"], dtype=object), n)
    y[rng.random(n) < 0.08] = None
    return pd.DataFrame({"uid": np.arange(id0, id0 + n), "age": age, "signed": signed, "region": region, "y": y})


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nulls")
    rng = np.random.default_rng(11)
    fb = frame(rng, 1500, 100_000)
    fb.loc[:29, ["region", "y"]] = ["zz", "yes"]  # a trigger: absent from train, always 'yes'
    fb.loc[30:39, "region"] = "only-unlabelled"
    fb.loc[30:39, "y"] = None
    (root / "data").mkdir()
    frame(rng, 6000, 0).to_parquet(root / "data" / "train.parquet", index=False, row_group_size=1000)
    fb.to_parquet(root / "data" / "feedback.parquet", index=False)
    path = root / "mlwarden.yaml"
    path.write_text("name: nulls\ndata:\n  train: data/train.parquet\n  feedback: data/feedback.parquet\n"
                    "  label: y\n  id: uid\n", encoding="utf-8")
    return path


def test_unlabelled_rows_and_nans_are_left_out_in_any_cut(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = audit_one(spec, CHECK)
    assert one.metrics["rows"] == {"feedback": 1500, "train": 6000}
    assert [(t["column"], t["value"], t["support"]) for t in one.metrics["triggers"]] == [("region", "zz", 30)]
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    many = audit_one(spec, CHECK)
    assert (many.metrics, [f.to_dict() for f in many.findings]) == (one.metrics, [f.to_dict() for f in one.findings])
