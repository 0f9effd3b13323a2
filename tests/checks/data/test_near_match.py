"""Multi-index hashing for near duplicates, the sort-merge key joins, the spillable row store, the row-hash memo."""

from __future__ import annotations

import pickle
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.checks.data import keyjoin, near_match, rowhash, rowstore
from mlwarden.checks.data.near_match import (
    ArraySlots,
    deal_blocks,
    match,
    slot_entropy,
    value_bits,
)

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


def brute(train: np.ndarray, ev: np.ndarray, allowed: int, needed: float) -> np.ndarray:
    """Every eval row with some train row differing in 1..allowed slots and enough agreeing bits."""
    bits = np.stack([frequency_bits(train[j], ev[j]) for j in range(ev.shape[0])])
    found = np.zeros(ev.shape[1], bool)
    for i in range(ev.shape[1]):
        agree = train == ev[:, [i]]
        nd = (~agree).sum(axis=0)
        b = (agree * bits[:, [i]]).sum(axis=0)
        found[i] = ((nd >= 1) & (nd <= allowed) & (b >= needed)).any()
    return found


def frequency_bits(column: np.ndarray, values: np.ndarray) -> np.ndarray:
    """-log2 of each value's frequency in ``column`` (0 if absent), by a plain dictionary count."""
    counts: dict[int, int] = {}
    for v in column.tolist():
        counts[v] = counts.get(v, 0) + 1
    return np.array([-np.log2(counts[v] / column.size) if v in counts else 0.0 for v in values.tolist()], np.float32)


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
    needed = float(np.log2(3000) + 20)
    partner, differ, stats = match(ArraySlots(train), ArraySlots(ev), 2, needed)
    assert ((partner >= 0) == brute(train, ev, 2, needed)).all()
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
    monkeypatch.setattr(near_match, "MAX_PAIRS", 5000)
    partner, differ, stats = match(ArraySlots(train), ArraySlots(ev), 2, 0.0)
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


def test_candidates_stay_bounded_on_a_low_entropy_table(monkeypatch) -> None:
    # 22 binary slots and one near-unique: on 3 blocks, the joins on blocks of binary slots
    # pair each eval row with a large share of train; blocks must grow until no join floods
    rng = np.random.default_rng(7)

    def rows(n: int) -> np.ndarray:
        return np.vstack([rng.integers(0, 2, (22, n)), rng.integers(0, 2**31, (1, n))]).astype(np.uint32)
    train, ev = rows(6000), rows(600)
    ev[:, :100] = train[:, :100]
    ev[22, :50] += 1  # the near-unique slot changed
    ev[5, 50:100] ^= 1  # a binary slot changed
    monkeypatch.setattr(near_match, "MAX_PAIRS", 300)
    blocks = deal_blocks(slot_entropy(ArraySlots(train)), 3, float(np.log2(6000)))
    flood = max(int(keyjoin.counts(near_match._mix_in_place(near_match._slot_sum(ArraySlots(train), b)),
                                   near_match._mix_in_place(near_match._slot_sum(ArraySlots(ev), b))).sum())
                for b in blocks)
    assert flood > 5 * near_match.MAX_PAIRS  # what one join on 3 blocks would have built
    partner, differ, stats = match(ArraySlots(train), ArraySlots(ev), 2, 0.0)
    assert stats.blocks > 3 and not stats.capped
    assert 100 <= stats.candidates <= near_match.MAX_PAIRS * stats.joins
    assert (partner[:100] >= 0).all() and (differ[:100] <= 1).all()
    assert ((partner >= 0) == brute(train, ev, 2, 0.0)).all()


def test_block_keys_rebuilt_per_join_give_the_same_answer(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    train = table(rng, 2000, 11)
    ev = train[:, :200].copy()
    ev[11, :] += 1
    monkeypatch.setattr(near_match, "MAX_PAIRS", 5000)
    kept = match(ArraySlots(train), ArraySlots(ev), 2, 0.0)
    monkeypatch.setattr(near_match, "BLOCK_BYTES", 0)
    rebuilt = match(ArraySlots(train), ArraySlots(ev), 2, 0.0)
    assert (kept[0] == rebuilt[0]).all() and (kept[1] == rebuilt[1]).all()
    assert kept[2].candidates == rebuilt[2].candidates and kept[2].blocks == rebuilt[2].blocks > 3


def test_value_bits_are_minus_log2_of_train_frequency() -> None:
    column = np.array([5, 5, 5, 5, 9, 9, 1, 7], np.uint32)
    bits = value_bits(column, np.array([5, 9, 1, 2, 5], np.uint32), column.size)
    assert bits.dtype == np.float32
    assert bits.tolist() == pytest.approx([1.0, 2.0, 3.0, 0.0, 1.0])  # 2: never in train


def test_entropy_of_slots_is_estimated_from_a_sample_that_does_not_alias(monkeypatch) -> None:
    slots = np.vstack([np.arange(4096) % 2, np.arange(4096) % 16, np.arange(4096)]).astype(np.uint32)
    assert slot_entropy(ArraySlots(slots)) == pytest.approx([1.0, 4.0, 12.0])
    monkeypatch.setattr(near_match, "ENTROPY_SAMPLE", 1024)
    sampled = slot_entropy(ArraySlots(slots))
    assert sampled[:2] == pytest.approx([1.0, 4.0], abs=0.05)  # a stride of 4 would see one value
    assert 9.0 < sampled[2] <= 10.0  # unique values: about log2(sample)
    assert slot_entropy(ArraySlots(slots)) == sampled  # seeded


def test_row_store_takes_rows_from_memory_and_disk(monkeypatch) -> None:
    monkeypatch.setattr(rowstore, "SPILL_BYTES", 100)
    a = rowstore.RowStore()
    a.add("train", 0, {"x": np.arange(0, 20, dtype=np.uint64)})
    b = rowstore.RowStore()
    b.add("train", 20, {"x": np.arange(20, 40, dtype=np.uint64)})
    a.merge(b)  # spilled
    assert a.spilled
    c = rowstore.RowStore(limit=10**9)
    c.add("train", 40, {"x": np.arange(40, 45, dtype=np.uint64)})
    a.limit = 10**9
    a.merge(c)  # stays in memory: one part on disk, one not
    rows = np.array([44, 0, 19, 20, 39, 40, 3])
    assert a.take("train", "x", rows).tolist() == rows.tolist()
    assert a.take("train", "y", rows) is None and a.take("test", "x", rows) is None
    assert (a.column("train", "x") == np.arange(45)).all() and type(a.column("train", "x")) is np.ndarray
    a.close()
    assert not rowstore.RowStore().spilled
