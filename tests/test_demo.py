"""End to end: `mlwarden demo` builds the pipeline, audits it, and the report shows the leak."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mlwarden.cli import main


def test_demo_end_to_end(tmp_path: Path, capsys) -> None:
    work = tmp_path / "demo"
    assert main(["demo", "--workdir", str(work)]) == 0
    err = capsys.readouterr().err
    assert f"open the report: {(work / 'report' / 'report.html').resolve()}" in err
    for name in ("report.html", "report.json", "report.sarif"):
        assert (work / "report" / name).stat().st_size > 0
    doc = json.loads((work / "report" / "report.json").read_text())
    leak = [f for f in doc["findings"]
            if f["check"] == "data.leakage.exact_duplicates" and f["evidence"]["split"] == "test"]
    assert len(leak) == 1 and leak[0]["severity"] == "critical"

    # ground truth, computed independently with pandas over the same feature columns
    train = pd.read_parquet(work / "data" / "train.parquet")
    test = pd.read_parquet(work / "data" / "test.parquet")
    features = sorted(set(train.columns) - {"approve", "applicant_id"})
    keys = set(map(tuple, train[features].astype("string").fillna("<NA>").itertuples(index=False)))
    in_train = test[features].astype("string").fillna("<NA>").apply(tuple, axis=1).isin(keys)
    assert leak[0]["evidence"]["duplicated_rows"] == int(in_train.sum())
    assert leak[0]["evidence"]["rows"] == len(test)
    leaked_ids = set(test.loc[in_train, "applicant_id"])
    assert set(leak[0]["evidence"]["sample_row_ids"]) <= leaked_ids
    assert leak[0]["location"]["artifact"] == "data/test.parquet"
    # the demo's --fail-on defaults to none; asking for high fails the run
    assert main(["demo", "--workdir", str(work), "--fail-on", "high"]) == 1
