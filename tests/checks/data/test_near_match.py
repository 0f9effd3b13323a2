"""Multi-index hashing for near duplicates, the spillable row store, and the shared row-hash memo."""

from __future__ import annotations

import pickle
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.checks.data import near_match, rowhash, rowstore
from mlwarden.checks.data.near_match import SlotFrequencies, deal_blocks, match

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import make_pipeline

from mlwarden.audit import run_audit
from mlwarden.spec import load_spec

NEAR = "data.leakage.near_duplicates"


def table(rng: np.random.Generator, n: int, low: int) -> np.ndarray:
    """S × n uint32 slots: ``low`` binary slots (1 bit each), then near-unique ones."""
    lo = rng.integers(0, 2, (low, n))
    hi = rng.integers(0, 2**31, (12 - low, n))
    return np.vstack([lo, hi]).astype(np.uint32)


def brute(train: np.ndarray, ev: np.ndarray, freq: SlotFrequencies, allowed: int, needed: float) -> np.ndarray:
    """Every eval row with some train row differing in 1..allowed slots and enough agreeing bits."""
    bits = np.stack([freq.of(j, ev[j]) for j in range(ev.shape[0])])
    found = np.zeros(ev.shape[1], bool)
    for i in range(ev.shape[1]):
        agree = train == ev[:, [i]]
        nd = (~agree).sum(axis=0)
        b = (agree * bits[:, [i]]).sum(axis=0)
        found[i] = ((nd >= 1) & (nd <= allowed) & (b >= needed)).any()
    return found


@pytest.mark.parametrize("low", [0, 4, 8])
def test_every_pair_within_two_slots_is_found_as_by_brute_force(low: int) -> None:
    rng = np.random.default_rng(low)
    train = table(rng, 3000, low)
    ev = table(rng, 400, low)
    src = rng.choice(3000, 150, replace=False)
    ev[:, :150] = train[:, src]
    for i in range(150):  # change 1 or 2 slots, anywhere (also in the low-entropy ones)
        for j in rng.choice(12, 1 + i % 2, replace=False):
            ev[j, i] = rng.integers(2**31, 2**32)
    freq = SlotFrequencies(lambda j: train[j], 12, 3000)
    needed = float(np.log2(3000) + 20)
    partner, differ, stats = match(lambda j: train[j], ev, freq, 2, needed)
    assert ((partner >= 0) == brute(train, ev, freq, 2, needed)).all()
    assert (partner[:150] >= 0).sum() >= 140  # the planted ones (a few lack the bits with 8 binary slots)
    hit = partner >= 0
    assert (differ[hit] == (ev[:, hit] != train[:, partner[hit]]).sum(axis=0)).all()
    assert stats.blocks >= 3 and stats.joins == len(list(combinations(range(stats.blocks), stats.blocks - 2)))


def test_blocks_balance_entropy_so_low_cardinality_slots_spread_out() -> None:
    entropy = [1.0] * 8 + [20.0] * 4
    blocks = deal_blocks(entropy, 3, cap=18.0)
    assert sorted(j for b in blocks for j in b) == list(range(12))
    assert all(any(entropy[j] > 1 for j in b) for b in blocks)  # no block of binary slots only


def test_a_flooding_join_makes_more_smaller_blocks(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    train = table(rng, 2000, 11)  # 11 binary slots: two of 3 blocks hold only those (5–6 bits)
    ev = train[:, :200].copy()
    ev[11, :] += 1  # differ in one near-unique slot
    freq = SlotFrequencies(lambda j: train[j], 12, 2000)
    monkeypatch.setattr(near_match, "MAX_PAIRS", 5000)
    partner, differ, stats = match(lambda j: train[j], ev, freq, 2, 0.0)
    assert stats.blocks > 3 and not stats.capped
    assert (partner >= 0).all() and (differ == 1).all()  # the source row, or a twin of it as close


def test_row_store_spills_and_reads_back_in_row_order(monkeypatch) -> None:
    monkeypatch.setattr(rowstore, "SPILL_BYTES", 100)
    a, b = rowstore.RowStore(), rowstore.RowStore()
    b.add("train", 10, {"x": np.arange(10, 20, dtype=np.uint64), "ids": np.array(list("abcdefghij"), object)})
    a.add("train", 0, {"x": np.arange(0, 10, dtype=np.uint64), "ids": np.array(list("klmnopqrst"), object)})
    a.merge(b)
    assert a._dir is not None and a.held < 200  # numbers on disk; object ids stay in memory
    c = rowstore.RowStore()
    c.add("train", 20, {"x": np.arange(20, 25, dtype=np.uint64), "ids": np.array(list("uvwxy"), object)})
    a.merge(c)
    assert (a.column("train", "x") == np.arange(25)).all()
    assert "".join(a.column("train", "ids")) == "klmnopqrstabcdefghijuvwxy"
    assert (a.offsets("train") == np.arange(25)).all() and a.rows("train") == 25
    with pytest.raises(TypeError):
        pickle.dumps(a)
    folder = Path(a._dir)
    a.close()
    assert not folder.exists()


def test_spilled_state_gives_the_same_result(tmp_path: Path, monkeypatch) -> None:
    truth = make_pipeline(tmp_path)
    [before] = run_audit(load_spec(truth.spec), only=(NEAR,)).checks
    monkeypatch.setattr(rowstore, "SPILL_BYTES", 1)
    [after] = run_audit(load_spec(truth.spec), only=(NEAR,)).checks
    assert before.metrics == after.metrics and before.metrics["test"]["near_duplicate_rows"] == 30
    assert [f.to_dict() for f in before.findings] == [f.to_dict() for f in after.findings]


def test_row_hash_memo_is_shared_read_only_and_per_batch() -> None:
    b1 = pa.record_batch({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    b2 = pa.record_batch({"a": [1, 2, 4], "b": ["x", "y", "z"]})
    h1 = rowhash.row_hashes(b1, ["a", "b"])
    assert rowhash.row_hashes(b1, ["b", "a"]) is h1  # the second check gets the first's hashes
    with pytest.raises(ValueError):
        h1[0] = 0
    h2 = rowhash.row_hashes(b2, ["a", "b"])
    assert (h1[:2] == h2[:2]).all() and h1[2] != h2[2]
    fresh = rowhash._Memo()
    fresh.of(b1)["x"] = 1
    assert fresh.of(pa.record_batch({"a": [1, 2, 3], "b": ["x", "y", "z"]})) == {}  # equal data, other batch
