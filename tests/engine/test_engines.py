"""The engines agree: local (in-process and worker processes) and Dask give the same report.

A generated pipeline carries planted duplicates whose count and ids are known by
construction: test rows copied from train with ints stored as floats, NaN as null,
-0.0 for 0.0, categories as plain strings and columns reordered; a production folder of
several parquet files; a CSV feedback file. Each engine must find exactly the planted
rows, and the reports must match finding for finding and metric for metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mlwarden.audit as audit_mod
import mlwarden.sources.datasets as datasets_mod
from mlwarden.audit import open_sources, run_audit
from mlwarden.engine import make_engine
from mlwarden.engine.local import LocalEngine
from mlwarden.errors import EngineError, SourceError
from mlwarden.registry import REGISTRY, FoldCheck, all_checks
from mlwarden.sources.datasets import open_dataset
from mlwarden.spec import load_spec

ONLY = ("data.leakage.exact_duplicates", "data.integrity.fingerprint")
LEAK = "data.leakage.exact_duplicates"
TRAIN_ROWS = 30_000
TRAIN_GROUP = 1_000  # rows per parquet row group: 30 row groups
TEST_ROWS, TEST_DUPS = 2_000, 137
PROD_FILES, PROD_ROWS, PROD_DUPS = 3, 1_000, 15  # per file
FEEDBACK_ROWS, FEEDBACK_DUPS = 500, 40
SEED = 7

SPEC = """\
name: engines
data:
  train: data/train.parquet
  test: data/test.parquet
  production: data/prod/
  feedback: data/feedback.csv
  label: label
  id: uid
"""


def _train(rng: np.random.Generator) -> pd.DataFrame:
    n = TRAIN_ROWS
    b = rng.normal(size=n).round(6)
    b[::50] = np.nan  # copies carry null instead: NaN and null are one missing value
    b[3::97] = 0.0  # copies carry -0.0
    return pd.DataFrame({
        "uid": np.arange(n, dtype=np.int64),
        "label": rng.integers(0, 2, n),
        "a": np.arange(n, dtype=np.int64) * 3,  # unique: train rows are all distinct
        "k": rng.integers(0, 10, n),
        "b": b,
        "c": rng.choice(["red", "green", "blue", "x y, z"], n),
        "d": pd.Categorical(rng.choice(["north", "south", "east", "west"], n)),
        "e": rng.integers(0, 2, n).astype(bool),
        "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
    })


def _fresh(rng: np.random.Generator, n: int, start: int) -> pd.DataFrame:
    """Rows that cannot equal a training row (``a`` outside train's range)."""
    return pd.DataFrame({
        "label": rng.integers(0, 2, n),
        "a": (np.arange(n, dtype=np.int64) + start) * 3 + 1,
        "k": rng.integers(0, 10, n),
        "b": rng.normal(size=n).round(6),
        "c": rng.choice(["red", "green", "blue"], n),
        "d": rng.choice(["north", "south", "east", "west"], n),
        "e": rng.integers(0, 2, n).astype(bool),
        "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
    })


def _copies(train: pd.DataFrame, rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Train rows as a careless pipeline re-exports them: new label, other dtypes."""
    out = train.iloc[rows].drop(columns=["uid"]).reset_index(drop=True)
    out["label"] = rng.integers(0, 2, len(out))  # the label is excluded: still a duplicate
    out["a"] = out["a"].astype("float64")
    out["k"] = out["k"].astype("float64")
    out["b"] = out["b"].mask(out["b"] == 0.0, -0.0).astype(object).where(out["b"].notna(), None)
    out["d"] = out["d"].astype(str)
    return out


def _mix(rng: np.random.Generator, fresh: pd.DataFrame, dups: pd.DataFrame, id0: int) -> tuple[pd.DataFrame, list]:
    """Shuffle duplicates into fresh rows; give ids; return the frame and the ids of its duplicates."""
    frame = pd.concat([fresh.assign(_dup=False), dups.assign(_dup=True)], ignore_index=True)
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    frame.insert(0, "uid", np.arange(id0, id0 + len(frame), dtype=np.int64))
    ids = frame.loc[frame["_dup"], "uid"].tolist()
    return frame.drop(columns=["_dup"]), ids


def _with_time_unit(frame: pd.DataFrame, unit: str) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    i = table.schema.get_field_index("t")
    return table.cast(table.schema.set(i, pa.field("t", pa.timestamp(unit))))


def build_pipeline(root: Path) -> dict[str, Any]:
    """Write the pipeline under ``root``; return the truth: duplicate ids per split, in row order."""
    rng = np.random.default_rng(SEED)
    data = root / "data"
    (data / "prod").mkdir(parents=True)
    train = _train(rng)
    pq.write_table(_with_time_unit(train, "ms"), data / "train.parquet", row_group_size=TRAIN_GROUP)

    picked = rng.choice(TRAIN_ROWS, size=TEST_DUPS + PROD_FILES * PROD_DUPS + FEEDBACK_DUPS, replace=False)
    picked[:3] = [0, 3, 50]  # make sure NaN→null and 0.0→-0.0 copies are among them
    truth: dict[str, Any] = {}

    test, truth["test"] = _mix(rng, _fresh(rng, TEST_ROWS - TEST_DUPS, 10**6),
                               _copies(train, picked[:TEST_DUPS], rng), 100_000)
    test = test[list(reversed(test.columns))]  # column order must not matter
    pq.write_table(_with_time_unit(test, "us"), data / "test.parquet", row_group_size=300)

    used, truth["production"] = TEST_DUPS, []
    for i in range(PROD_FILES):
        part, ids = _mix(rng, _fresh(rng, PROD_ROWS - PROD_DUPS, 2 * 10**6 + i * PROD_ROWS),
                         _copies(train, picked[used:used + PROD_DUPS], rng), 200_000 + i * PROD_ROWS)
        used += PROD_DUPS
        truth["production"] += ids
        pq.write_table(pa.Table.from_pandas(part.drop(columns=["label"]), preserve_index=False),
                       data / "prod" / f"part-{i}.parquet", row_group_size=250)

    feedback, truth["feedback"] = _mix(rng, _fresh(rng, FEEDBACK_ROWS - FEEDBACK_DUPS, 3 * 10**6),
                                       _copies(train, picked[used:used + FEEDBACK_DUPS], rng), 300_000)
    feedback["t"] = feedback["t"].dt.strftime("%Y-%m-%d %H:%M:%S")
    feedback.to_csv(data / "feedback.csv", index=False)

    (root / "mlwarden.yaml").write_text(SPEC, encoding="utf-8")
    return truth


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("engines")
    return root, build_pipeline(root)


@pytest.fixture
def small_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions are cut in the parent (open_sources), so patching the module here is enough."""
    monkeypatch.setattr(datasets_mod, "PARTITION_ROWS", 4_000)


def _with_workers(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Pin the worker count run_audit's engines get, whatever this machine's core count."""
    monkeypatch.setattr(audit_mod, "make_engine",
                        lambda name, *, scheduler=None: make_engine(name, scheduler=scheduler, workers=workers))


def summary(report) -> list[tuple]:
    """Everything an engine could change: statuses, messages, metrics, findings (not timings)."""
    return [(c.id, c.status, c.message, c.metrics, [f.to_dict() for f in c.findings]) for c in report.checks]


def _leak(report):
    return next(c for c in report.checks if c.id == LEAK)


def assert_truth(report, truth: dict[str, Any]) -> None:
    leak = _leak(report)
    assert leak.status == "fail"
    expected = {"test": (TEST_ROWS, truth["test"], "high"),  # 6.85 %
                "production": (PROD_FILES * PROD_ROWS, truth["production"], "low"),  # 1.5 %
                "feedback": (FEEDBACK_ROWS, truth["feedback"], "medium")}  # 8 %
    assert leak.metrics["train_distinct_rows"] == TRAIN_ROWS
    assert leak.metrics["feature_columns"] == 7  # a b c d e k t: uid and label excluded
    by_split = {f.evidence["split"]: f for f in leak.findings}
    assert set(by_split) == set(expected)
    for split, (rows, ids, severity) in expected.items():
        f = by_split[split]
        assert leak.metrics[split]["rows"] == rows
        assert leak.metrics[split]["duplicated_rows"] == len(ids)
        assert leak.metrics[split]["distinct_duplicated"] == len(ids)
        assert f.severity.value == severity
        assert f.evidence["duplicated_rows"] == len(ids)
        assert f.evidence["sample_row_ids"] == ids[:20]
        assert list(f.location.rows) == ids[:20]
        assert f.evidence["id_column"] == "uid"
    fp = next(c for c in report.checks if c.id == "data.integrity.fingerprint")
    assert fp.metrics["rows"] == {"train": TRAIN_ROWS, "test": TEST_ROWS, "production": PROD_FILES * PROD_ROWS,
                                  "feedback": FEEDBACK_ROWS}


def test_partitions_are_cut_in_the_parent(pipeline, small_partitions) -> None:
    root, _ = pipeline
    sources = open_sources(load_spec(root / "mlwarden.yaml"))
    train = sources.datasets["train"].partitions
    assert len(train) == 8  # 30 row groups of 1,000 rows, grouped up to 4,000
    assert [p.offset for p in train] == list(range(0, TRAIN_ROWS, 4_000))
    assert [len(p.row_groups) for p in train] == [4] * 7 + [2]
    prod = sources.datasets["production"].partitions
    assert len({p.path for p in prod}) == PROD_FILES
    assert [p.offset for p in prod] == [0, 1_000, 2_000]


def test_local_engine_finds_exactly_the_planted_rows(pipeline, small_partitions, monkeypatch) -> None:
    root, truth = pipeline
    _with_workers(monkeypatch, 2)
    report = run_audit(load_spec(root / "mlwarden.yaml"), engine="local", only=ONLY)
    assert [c.id for c in report.checks] == sorted(ONLY)
    assert_truth(report, truth)


def test_one_batch_or_many_gives_the_same_report(pipeline, monkeypatch) -> None:
    root, truth = pipeline
    spec = load_spec(root / "mlwarden.yaml")
    _with_workers(monkeypatch, 1)  # in this process, so BATCH_ROWS patches reach the fold
    monkeypatch.setattr(datasets_mod, "PARTITION_ROWS", 10**9)
    monkeypatch.setattr(datasets_mod, "BATCH_ROWS", 10**9)
    whole = run_audit(spec, engine="local", only=ONLY)
    monkeypatch.setattr(datasets_mod, "PARTITION_ROWS", 3_000)
    monkeypatch.setattr(datasets_mod, "BATCH_ROWS", 97)
    sliced = run_audit(spec, engine="local", only=ONLY)
    assert_truth(whole, truth)
    assert summary(sliced) == summary(whole)


@pytest.mark.dask
def test_dask_and_local_reports_are_identical(pipeline, small_partitions, monkeypatch) -> None:
    pytest.importorskip("distributed")
    root, truth = pipeline
    spec = load_spec(root / "mlwarden.yaml")
    _with_workers(monkeypatch, 2)
    local = run_audit(spec, engine="local", only=ONLY)
    dask = run_audit(spec, engine="dask", only=ONLY)
    assert dask.engine == "dask" and local.engine == "local"
    assert_truth(dask, truth)
    assert summary(dask) == summary(local)
    assert [f.to_dict() for f in dask.findings] == [f.to_dict() for f in local.findings]


class PlantedFailure(FoldCheck):
    """A check whose update raises once it reaches row 5,000 of train (test only)."""

    id = "test.planted_failure"
    title = "Raises while folding"
    needs = ("train",)
    stage = "data"
    references = ("NIST-MEASURE",)
    splits = ("train",)

    def columns(self, split: str) -> list[str]:
        return ["a"]

    def init(self) -> int:
        return 0

    def update(self, state: int, batch) -> int:
        if batch.offset >= 5_000:
            raise ValueError("planted failure")
        return state + batch.data.num_rows

    def merge(self, a: int, b: int) -> int:
        return a + b

    def finalize(self, state: int, ctx) -> Any:
        raise AssertionError("finalize must not run for a failed fold")


@pytest.mark.parametrize("engine", ["local", pytest.param("dask", marks=pytest.mark.dask)])
def test_a_failing_check_errors_and_the_others_still_run(pipeline, small_partitions, monkeypatch, engine) -> None:
    if engine == "dask":
        pytest.importorskip("distributed")
    root, truth = pipeline
    spec = load_spec(root / "mlwarden.yaml")
    _with_workers(monkeypatch, 2)
    all_checks()  # register the real families first, so the fake is the only extra
    monkeypatch.setitem(REGISTRY, PlantedFailure.id, PlantedFailure)
    report = run_audit(spec, engine=engine, only=(*ONLY, PlantedFailure.id))
    failed = next(c for c in report.checks if c.id == PlantedFailure.id)
    assert failed.status == "error"
    assert failed.message == "ValueError: planted failure"
    assert failed.findings == ()
    assert_truth(report, truth)
    monkeypatch.undo()
    assert PlantedFailure.id not in REGISTRY


def _corrupt_middle_file(root: Path, dest: Path) -> Path:
    """Copy the production folder with its middle file's pages overwritten (footer intact)."""
    bad = dest / "bad-prod"
    bad.mkdir()
    for src in sorted((root / "data" / "prod").glob("*.parquet")):
        (bad / src.name).write_bytes(src.read_bytes())
    victim = bad / "part-1.parquet"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 10: len(raw) // 2] = b"\xab" * (len(raw) // 2 - len(raw) // 10)
    victim.write_bytes(bytes(raw))
    return victim


@pytest.mark.parametrize("engine", ["local", pytest.param("dask", marks=pytest.mark.dask)])
def test_a_corrupt_file_in_a_folder_is_a_source_error_naming_it(tmp_path, pipeline, monkeypatch, engine) -> None:
    if engine == "dask":
        pytest.importorskip("distributed")
    root, _ = pipeline
    victim = _corrupt_middle_file(root, tmp_path)
    open_dataset("production", str(victim.parent))  # the footer reads: the failure comes from the fold
    spec_path = tmp_path / "mlwarden.yaml"
    spec_path.write_text(SPEC.replace("data/", f"{root}/data/").replace(f"{root}/data/prod/", str(victim.parent)))
    _with_workers(monkeypatch, 2)
    with pytest.raises(SourceError) as err:
        run_audit(load_spec(spec_path), engine=engine, only=ONLY)
    assert str(victim) in str(err.value)
    assert "data.production: unreadable at row" in str(err.value)


def test_a_truncated_file_in_a_folder_is_a_source_error_before_any_engine_starts(tmp_path, pipeline) -> None:
    root, _ = pipeline
    folder = tmp_path / "prod"
    folder.mkdir()
    for src in sorted((root / "data" / "prod").glob("*.parquet")):
        (folder / src.name).write_bytes(src.read_bytes())
    victim = folder / "part-1.parquet"
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(SourceError, match="corrupt or truncated parquet") as err:
        open_dataset("production", str(folder))
    assert str(err.value).startswith(f"{victim}: data.production:")


def test_engine_errors() -> None:
    with pytest.raises(EngineError, match="unknown engine 'nope'"):
        make_engine("nope")
    with pytest.raises(EngineError, match="--scheduler needs --engine dask"):
        make_engine("local", scheduler="tcp://127.0.0.1:8786")


@pytest.mark.dask
@pytest.mark.timeout(90)  # the client gives up after its 10 s connect timeout; a hang fails here
def test_dask_unreachable_scheduler_is_an_engine_error_not_a_hang() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(EngineError, match=r"cannot reach the Dask scheduler tcp://127\.0\.0\.1:1: .*10 s"):
        make_engine("dask", scheduler="tcp://127.0.0.1:1")


def test_local_engine_map_keeps_order_and_pool_closes() -> None:
    with LocalEngine(workers=3) as eng:
        assert eng.map(lambda x: x * x, list(range(20))) == [x * x for x in range(20)]
        assert eng.fold([], []) == {}
    assert eng._pool is None


def test_finalizers_start_longest_first() -> None:
    """Model fits first, then per-row finalizers by the seconds their fold took, then the rest
    in the order given: a big per-row finalizer left for last ran alone on one core."""
    from mlwarden.audit import finalize_order
    from mlwarden.engine.base import Folded

    by_id = all_checks()
    ids = ["data.drift.columns", "data.leakage.entity", "data.privacy.k_anonymity", "data.poisoning.label_issues",
           "data.quality.columns", "data.leakage.near_duplicates", "fairness.proxies"]
    checks = [by_id[i] for i in ids]
    assert all(issubclass(c, FoldCheck) for c in checks)
    spent = {"data.leakage.entity": 0.3, "data.privacy.k_anonymity": 5.7, "data.leakage.near_duplicates": 8.8,
             "data.drift.columns": 8.0, "data.quality.columns": 4.9, "data.poisoning.label_issues": 3.3,
             "fairness.proxies": 8.4}
    folded = {i: Folded(None, s) for i, s in spent.items()}
    got = [c.id for c in finalize_order(checks, folded)]  # type: ignore[arg-type]
    assert got == ["data.poisoning.label_issues", "fairness.proxies",  # model fits, as given
                   "data.leakage.near_duplicates", "data.privacy.k_anonymity", "data.leakage.entity",
                   "data.drift.columns", "data.quality.columns"]  # the rest keep their order


@pytest.mark.parametrize(("before", "in_workers"), [(None, None), ("65536", None), ("1000000", "1000000")])
def test_dask_workers_keep_glibcs_own_malloc_tuning(monkeypatch, before, in_workers) -> None:
    """Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive mmap
    threshold (a partition's fold then took 2.8x the CPU). mlwarden's LocalCluster workers start
    without it, also when an earlier nanny left it in this process; a user's own value stays."""
    import os

    pytest.importorskip("distributed")
    from mlwarden.engine.dask import DaskEngine

    if before is None:
        monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    else:
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", before)
    with DaskEngine(workers=1) as eng:
        got = eng.client.run(_malloc_env_at_start)
    assert list(got.values()) == [in_workers]
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == before  # this process's environment as it was


def _malloc_env_at_start() -> str | None:
    """MALLOC_TRIM_THRESHOLD_ as the process was started with it: what glibc read (a later
    ``os.environ`` change, as the worker's nanny code makes, does not reach malloc)."""
    with open("/proc/self/environ", "rb") as f:
        for entry in f.read().split(b"\0"):
            if entry.startswith(b"MALLOC_TRIM_THRESHOLD_="):
                return entry.split(b"=", 1)[1].decode()
    return None


@pytest.mark.dask
def test_dask_local_cluster_states_come_as_files_and_go(pipeline, small_partitions) -> None:
    """Workers of mlwarden's own LocalCluster leave their states as files on this host, like
    the local engine's: each read once and removed, the folder removed on close."""
    import os

    pytest.importorskip("distributed")
    from mlwarden.engine.dask import DaskEngine
    from mlwarden.registry import plan

    root, _ = pipeline
    spec = load_spec(root / "mlwarden.yaml")
    sources = open_sources(spec)
    checks = [c for c in plan(spec, sources, only=ONLY).checks if isinstance(c, FoldCheck)]
    parts = [p for ds in sources.datasets.values() for p in ds.partitions]
    assert len(parts) > 2
    with DaskEngine(workers=2) as eng:
        folded = eng.fold(checks, parts)
        folder = eng._states
        assert folder is not None and os.path.isdir(folder) and os.listdir(folder) == []
    assert not os.path.exists(folder)
    from mlwarden.registry import AuditContext

    with LocalEngine(workers=1) as one:
        alone = one.fold(checks, parts)
        ctx = AuditContext(spec=spec, sources=sources, engine=one)
        for c in checks:  # the same states as one process folding every partition
            assert c.finalize(folded[c.id].state, ctx).metrics == c.finalize(alone[c.id].state, ctx).metrics
