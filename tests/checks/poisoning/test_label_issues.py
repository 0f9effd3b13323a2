"""data.poisoning.label_issues: planted flipped copies found, sampling reported, skips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlwarden.checks.poisoning import label_issues
from mlwarden.findings import Severity
from mlwarden.sources import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_one, make_pipeline  # noqa: E402

CHECK = "data.poisoning.label_issues"



@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    return make_pipeline(tmp_path_factory.mktemp("planted"), n_train=1500)


def result(spec_path: Path):
    return audit_one(spec_path, CHECK)


def test_planted_flipped_copies_are_the_issues(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    r = result(planted.spec)
    m = r.metrics
    assert m["sampled"] is False and m["rows_used"] == m["rows_total"] == 1512
    flagged = {s["id"] for s in m["sample"]}
    assert set(planted.conflicting_label_train_ids) <= flagged
    assert 12 <= m["issues"] <= 14 and sum(m["class_pairs"].values()) == m["issues"]  # ≥ 85 % precision
    assert "birth_date" in m["dropped_columns"]  # free text: one value a row
    (f,) = r.findings
    assert f.severity == Severity.LOW  # 12 / 1512 < 1 %
    assert all(s["given"] != s["suggested"] and s["self_confidence"] < 0.05 for s in f.evidence["sample"])
    # the same answer in tiny batches, and the sample says so when it is one
    monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    many = result(planted.spec)
    assert (many.metrics, [x.to_dict() for x in many.findings]) == (r.metrics, [x.to_dict() for x in r.findings])
    monkeypatch.setattr(label_issues.LabelIssues, "sample_rows", 1000)
    sampled = result(planted.spec)
    assert sampled.metrics["sampled"] is True and sampled.metrics["rows_used"] == 1000
    assert "sample of 1000 of 1512 rows" in sampled.findings[0].title


def test_bottom_k_sample_is_partition_independent(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(label_issues.LabelIssues, "sample_rows", 300)
    monkeypatch.setattr(label_issues, "_oof_probabilities", lambda x, y, used: np.eye(2)[y] * 0.98 + 0.01)
    a = result(planted.spec).metrics
    monkeypatch.setattr(datasets, "BATCH_ROWS", 41)
    monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
    b = result(planted.spec).metrics
    assert a == b and a["rows_used"] == 300 and a["issues"] == 0


def test_one_class_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    pd.DataFrame({"x": np.arange(50.0), "y": ["a"] * 50}).to_parquet(tmp_path / "d" / "t.parquet")
    (tmp_path / "s.yaml").write_text("name: x\ndata:\n  train: d/t.parquet\n  label: y\n")
    r = result(tmp_path / "s.yaml")
    assert r.status == "skipped" and r.message == "fewer than two classes with at least 5 rows"


def _flipped_cell_table(tmp_path: Path, flip: float) -> Path:
    """Labels decided by the features (a score threshold), except that ``flip`` of one
    region × purpose cell has its label flipped: the bench's planted flaw, at 12,000 rows."""
    rng = np.random.default_rng(11)
    n = 12_000
    region = rng.choice(["north", "south", "east", "west"], n)
    purpose = rng.choice(["car", "home", "medical", "study"], n)
    score = rng.normal(0, 1, n)
    income = rng.gamma(3, 10, n)
    label = np.where(score + 0.02 * income > 0.6, "yes", "no")
    cell = (region == "west") & (purpose == "medical") & (rng.random(n) < flip)
    label = np.where(cell, np.where(label == "yes", "no", "yes"), label)
    (tmp_path / "d").mkdir()
    pd.DataFrame({"region": region, "purpose": purpose, "score": score, "income": income,
                  "y": label}).to_parquet(tmp_path / "d" / "t.parquet")
    (tmp_path / "s.yaml").write_text("name: x\ndata:\n  train: d/t.parquet\n  label: y\n")
    return tmp_path / "s.yaml"


def test_a_flipped_cell_shows_as_label_noise_piled_in_its_slices(tmp_path: Path) -> None:
    # the model learns the cell's 65/35 mix, so the flips are no confident errors and the noise
    # null calls them noise; what gives them away is noise concentrated in one group
    r = result(_flipped_cell_table(tmp_path, 0.35))
    noisy = r.metrics["slices"]["noisy"]
    assert {s["slice"] for s in noisy} & {"region = west", "purpose = medical"}
    assert all(s["ratio"] >= 3 for s in noisy)
    [f] = r.findings
    assert f.severity is Severity.MEDIUM and "label noise piles up in" in f.title
    assert f.evidence["noisy"] == noisy


def test_without_the_flips_no_group_is_called_noisy(tmp_path: Path) -> None:
    r = result(_flipped_cell_table(tmp_path, 0.0))
    assert r.metrics["slices"]["noisy"] == []
    assert all(f.severity is Severity.LOW for f in r.findings)


def test_a_partitions_sample_travels_as_at_most_k_rows(planted) -> None:
    # a worker's state is pickled to the main process: it must carry the bottom k rows only,
    # not the up to 2k pending between compactions, nor the whole buffers a slice points into
    import pickle

    import pyarrow as pa

    from mlwarden.audit import open_sources
    from mlwarden.spec import load_spec

    spec = load_spec(planted.spec)
    sources = open_sources(spec)
    check = label_issues.LabelIssues(spec, sources)
    check.sample_rows = 1000  # one 1,512-row batch: under 2k, so nothing is compacted yet
    state = check.init()
    for part in sources.datasets["train"].partitions:
        for batch in datasets.iter_batches(part, check.columns("train")):
            state = check.update(state, batch)
    assert state.pending > 1000
    everything = pa.concat_tables(state.parts)
    order = np.argsort(everything.column(label_issues._PRIO).to_numpy(), kind="stable")[:1000]
    compact = everything.take(order)
    back = pickle.loads(pickle.dumps(state, protocol=5))
    assert [p.num_rows for p in back.parts] == [1000]
    assert back.parts[0].column(label_issues._ORD).to_pylist() == compact.column(label_issues._ORD).to_pylist()
    assert len(pickle.dumps(state, protocol=5)) < len(pickle.dumps(compact, protocol=5)) + 4096
