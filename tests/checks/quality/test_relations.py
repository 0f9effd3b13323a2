"""data.quality.out_of_range with the spec's relations, steps and one-hot groups (several batches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from tests.pipelines import audit_tables

CHECK = "data.quality.out_of_range"


def test_broken_relations_steps_and_groups_are_findings(tmp_path: Path) -> None:
    n = 500
    rng = np.random.default_rng(2)
    open_acc = rng.integers(0, 10, n)
    total = open_acc + rng.integers(0, 5, n)
    bad_rel = [7, 123, 321, 499]
    total[bad_rel] = open_acc[bad_rel] - 1
    term = rng.choice([12, 24, 36], n).astype(float)
    term[[5, 6]] = [13.0, 30.0]
    own = (rng.random(n) < 0.5).astype(int)
    rent = 1 - own
    rent[[40, 41, 42]] = own[[40, 41, 42]]  # both or neither set
    gap = rng.normal(size=n)
    gap[[9]] = np.nan  # not applicable, not a violation
    t = pa.table({"id": np.arange(1000, 1000 + n), "open_acc": open_acc, "total_acc": total, "term": term,
                  "own": own, "rent": rent, "gap": gap})
    root = tmp_path
    res = None
    (root / "extra").mkdir()
    res = audit_tables(root, {"train": t}, CHECK, id="id")
    assert res.status == "skipped"  # no constraints yet
    spec = (root / "mlwarden.yaml").read_text() + (
        "features:\n  term: {type: float, step: 12}\n  own: {type: int, group: home}\n  rent: {type: int, group: home}\n"
        "constraints:\n  - \"open_acc <= total_acc\"\n  - \"abs(gap) < 100\"\n  - \"missing_col > 0\"\n")
    (root / "mlwarden.yaml").write_text(spec)
    from tests.pipelines import audit_one

    res = audit_one(root / "mlwarden.yaml", CHECK)
    assert res.status == "fail", res.message
    by = {f.evidence.get("constraint", f.location.column): f for f in res.findings}
    rel = by["open_acc <= total_acc"]
    assert rel.evidence["violations"] == 4 and sorted(rel.evidence["sample_row_ids"]) == [1000 + i for i in bad_rel]
    assert rel.severity.value == "medium"
    grp = by["one-hot group home: exactly one of own, rent is 1"]
    assert sorted(grp.evidence["sample_row_ids"]) == [1040, 1041, 1042]
    assert by["term"].evidence["by_kind"] == {"not a multiple of step 12": 2}
    assert by["missing_col > 0"].evidence["missing_columns"] == ["missing_col"]
    assert "abs(gap) < 100" not in by
    m = res.metrics["train"]["constraints"]["abs(gap) < 100"]
    assert m["not_applicable"] == 1 and m["bad"] == 0 and m["rows"] == n
