"""Every fold check gives the same result on one batch or many, locally or on Dask.

Runs over the planted-flaws pipeline (tests/pipelines.py), so it covers each check that
applies to it — new checks are covered as soon as they register.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlwarden.audit import run_audit
from mlwarden.sources import datasets
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines import make_pipeline  # noqa: E402


def _comparable(report) -> dict:
    return {
        c.id: (c.status, c.message, c.metrics, [f.to_dict() for f in c.findings])
        for c in report.checks
    }


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    return make_pipeline(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def baseline(pipeline) -> dict:
    return _comparable(run_audit(load_spec(pipeline.spec)))


def test_many_small_batches_equal_one_batch(pipeline, baseline, monkeypatch) -> None:
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)  # a partition per row group
    small = _comparable(run_audit(load_spec(pipeline.spec)))
    assert small.keys() == baseline.keys()
    for cid in baseline:
        assert small[cid] == baseline[cid], cid
    assert any(status in ("pass", "fail") for status, *_ in baseline.values())


@pytest.mark.dask
def test_dask_equals_local(pipeline, baseline) -> None:
    distributed = _comparable(run_audit(load_spec(pipeline.spec), engine="dask"))
    for cid in baseline:
        assert distributed[cid] == baseline[cid], cid
