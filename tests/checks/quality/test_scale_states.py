"""data.quality.columns and data.quality.duplicates: per-distinct-value work, bounded per-row state.

Duplicates keeps a record per distinct row in a KeyRuns that spills to disk: the answer must
be the same spilled or not, in one batch or many, and equal to a brute-force count."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.checks.data import keyruns
from mlwarden.checks.quality.columns import MAX_DISTINCT, ColumnProfile, profile
from mlwarden.sources import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_tables

DUP = "data.quality.duplicates"


def table(ids: str) -> tuple[pa.Table, int, list]:
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.integers(0, 10**9, n)
    src = rng.integers(0, n, 400)
    dst = rng.integers(0, n, 400)
    x[dst] = x[src]  # copies pointing both ways: a later row equal to an earlier one, and the reverse
    c = np.where(x % 2, "a", "b")
    uid = [f"r{i}" for i in range(n)] if ids == "text" else np.arange(n) + 10_000
    seen: set = set()
    repeats = []
    for i, key in enumerate(zip(x.tolist(), c.tolist())):
        if key in seen:
            repeats.append(uid[i] if ids == "text" else int(uid[i]))
        seen.add(key)
    return pa.table({"uid": uid, "x": x, "c": c}), len(repeats), repeats[:20]


@pytest.mark.parametrize("ids", ["int", "text"])
@pytest.mark.parametrize("tiny", [False, True])
def test_duplicates_match_brute_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ids: str, tiny: bool) -> None:
    t, count, first = table(ids)
    if tiny:  # many partitions, merged one by one, every merge spilling to disk
        monkeypatch.setattr(datasets, "BATCH_ROWS", 97)
        monkeypatch.setattr(datasets, "PARTITION_ROWS", 1)
        monkeypatch.setattr(keyruns, "SPILL_BYTES", 1)
    runs: list[int] = []
    spill = keyruns.KeyRuns.spill

    def counted(self: keyruns.KeyRuns) -> None:
        spill(self)
        runs.append(len(self.runs))

    monkeypatch.setattr(keyruns.KeyRuns, "spill", counted)
    r = audit_tables(tmp_path, {"train": t}, DUP, row_group_size=250, id="uid")
    assert (max(runs, default=0) > 1) == tiny  # the tiny case reads several spilled runs back
    assert r.metrics["train"]["repeated_rows"] == count > 0
    [f] = r.findings
    assert f.evidence["sample_row_ids"] == first


def reference(values: list) -> ColumnProfile:
    """Row by row, as the profile is defined."""
    markers: dict = {}
    numeric = other = 0
    import re

    from mlwarden.checks.quality.columns import _NUMERIC, NULL_MARKERS
    for v in values:
        if v is None:
            continue
        if v.strip().lower() in NULL_MARKERS:
            markers[v] = markers.get(v, 0) + 1
        elif re.match(_NUMERIC, v.strip()):
            numeric += 1
        else:
            other += 1
    counts: dict = {}
    for v in values:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return ColumnProfile(rows=len(values), nulls=values.count(None), markers=markers, numeric_strings=numeric,
                         other_strings=other, counts=counts)


def test_text_profile_per_distinct_value_equals_row_by_row() -> None:
    values = ["1", " 2.5 ", "x", "NA", " na", "n/a", None, "", "x", "1e3", "-", "abc 1", None, "1"] * 7
    for arr in (pa.array(values), pa.array(values).dictionary_encode()):
        assert profile(arr) == reference(values)


def test_counts_skipped_once_past_the_cap() -> None:
    wide = pa.array([f"v{i}" for i in range(MAX_DISTINCT + 1)] + ["NA", "3"])
    full = profile(wide)
    assert full.counts is None
    light = profile(wide, counts=False)  # text still profiled: markers and numbers
    assert light == full and light.markers == {"NA": 1} and light.numeric_strings == 1
    assert profile(pa.array(np.arange(10.0)), counts=False).counts is None
    assert profile(pa.array([1.0, 1, 2.5]), counts=True).counts == {1: 2, 2.5: 1}
