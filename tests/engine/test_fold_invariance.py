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


def test_worker_processes_equal_in_process(pipeline, baseline, monkeypatch) -> None:
    """The path users hit at scale: partitions folded in the forkserver pool, not in-process."""
    from mlwarden.engine import local

    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    monkeypatch.setattr(local, "INPROCESS_BYTES", 0)
    pools = []
    real = local.LocalEngine._processes

    def counting(self):
        pools.append(self)
        return real(self)

    monkeypatch.setattr(local.LocalEngine, "_processes", counting)
    pooled = _comparable(run_audit(load_spec(pipeline.spec)))
    assert pools, "the process pool was never used"
    for cid in baseline:
        assert pooled[cid] == baseline[cid], cid


@pytest.mark.dask
def test_dask_equals_local(pipeline, baseline) -> None:
    distributed = _comparable(run_audit(load_spec(pipeline.spec), engine="dask"))
    for cid in baseline:
        assert distributed[cid] == baseline[cid], cid


@pytest.mark.dask
def test_dask_scheduler_address(pipeline, baseline) -> None:
    """--scheduler joins an existing cluster (here one started on loopback) instead of starting one."""
    from distributed import LocalCluster

    from mlwarden.cli import main

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      host="127.0.0.1") as cluster:
        remote = _comparable(run_audit(load_spec(pipeline.spec), engine="dask", scheduler=cluster.scheduler_address))
        out = pipeline.spec.parent / "r"
        code = main(["audit", str(pipeline.spec), "--engine", "dask", "--scheduler", cluster.scheduler_address,
                     "--format", "json", "--out", str(out), "--fail-on", "none"])
        assert code in (0, 3)  # 3 only if a check errored, which the comparison below would show
        assert len(cluster.scheduler_info["workers"]) == 2  # the audit did not tear down the cluster it joined
    for cid in baseline:
        assert remote[cid] == baseline[cid], cid
    assert (out / "report.json").exists()
