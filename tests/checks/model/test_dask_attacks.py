"""Model attacks fan out through the engine's map: on a Dask cluster they give the local answers."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from mlwarden.audit import run_audit
from mlwarden.sources.model import BudgetExceeded, QueryBudget
from mlwarden.spec import load_spec

TIMING = {"seconds", "seconds_per_row_median", "seconds_per_row_mean"}


def test_a_budget_crosses_processes_as_a_snapshot_with_its_own_lock() -> None:
    b = QueryBudget(10)
    b.charge(4)
    copy = pickle.loads(pickle.dumps(b))
    assert (copy.limit, copy.used) == (10, 4)
    copy.charge(6)
    with pytest.raises(BudgetExceeded):
        copy.charge(1)
    assert b.used == 4  # the original is not charged by the copy: attacks add chunk usage back themselves


@pytest.mark.dask
def test_attacks_on_dask_equal_local(demo_dir: Path) -> None:
    only = ["model.evasion.constrained", "model.extraction.surrogate", "model.privacy.membership"]
    spec = load_spec(demo_dir / "mlwarden.yaml")
    local = {c.id: c for c in run_audit(spec, only=only).checks}
    dask = {c.id: c for c in run_audit(spec, engine="dask", only=only).checks}
    for cid in only:
        assert local[cid].status in ("pass", "fail"), (cid, local[cid].message)
        assert dask[cid].status == local[cid].status, (cid, dask[cid].message)
        strip = lambda m: {k: v for k, v in m.items() if k not in TIMING}  # noqa: E731
        assert strip(dask[cid].metrics) == strip(local[cid].metrics), cid
        assert [f.to_dict() for f in dask[cid].findings] == [f.to_dict() for f in local[cid].findings]
