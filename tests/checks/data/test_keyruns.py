"""KeyRuns: per-key records that spill to disk by key bucket and read back whole, one bucket at a time."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mlwarden.checks.data.keyruns import BUCKET_BITS, KeyRuns, key_order


def count_by_key(c: dict) -> dict:
    """A reducer: one record per key, counts summed, sorted by key."""
    u, inv = np.unique(c["key"], return_inverse=True)
    return {"key": u, "cnt": np.bincount(inv.ravel(), weights=c["cnt"], minlength=u.size).astype(np.int64)}


def chunks(seed: int, n: int = 5):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        key = rng.integers(0, 2**64, 500, dtype=np.uint64)
        key[:100] = key[0]  # repeated keys, within and across chunks
        yield {"key": key, "cnt": np.ones(key.size, np.int64)}


def folded(limit: int | None) -> tuple[KeyRuns, dict]:
    acc = KeyRuns(count_by_key, limit=limit)
    for c in chunks(1):
        part = KeyRuns(count_by_key)
        part.add(c)
        acc.merge(part)
    return acc, count_by_key({"key": np.concatenate([c["key"] for c in chunks(1)]),
                              "cnt": np.ones(2500, np.int64)})


def test_spilled_buckets_hold_every_key_once() -> None:
    acc, truth = folded(limit=1)
    assert acc.runs and not acc.chunks  # everything went to disk
    seen = list(acc.buckets())
    assert len(seen) == 1 << BUCKET_BITS
    for b, c in enumerate(seen):  # each bucket: its own key range only
        assert ((c["key"] >> np.uint64(64 - BUCKET_BITS)) == b).all()
    keys = np.concatenate([c["key"] for c in seen])
    cnt = np.concatenate([c["cnt"] for c in seen])
    assert np.array_equal(keys, truth["key"]) and np.array_equal(cnt, truth["cnt"])
    with pytest.raises(TypeError):
        pickle.dumps(acc)
    d = acc._dir
    acc.close()
    assert d is not None and not __import__("os").path.exists(d)


def test_in_memory_equals_spilled() -> None:
    mem, truth = folded(limit=None)
    assert not mem.runs
    [c] = list(mem.buckets())
    assert np.array_equal(c["key"], truth["key"]) and np.array_equal(c["cnt"], truth["cnt"])
    assert pickle.loads(pickle.dumps(mem)).memory()["cnt"].sum() == 2500


def test_text_ids_spill_and_mixed_objects_stay_in_memory() -> None:
    text = KeyRuns(limit=1)
    text.add({"key": np.array([1, 2**63], np.uint64), "id": np.array(["a", "b"], dtype=object)})
    text.spill()
    assert text.runs
    got = sorted(v for c in text.buckets() for v in c["id"].tolist())
    assert got == ["a", "b"]
    mixed = KeyRuns(limit=1)
    mixed.add({"key": np.array([1, 2], np.uint64), "id": np.array(["a", 3], dtype=object)})
    mixed.spill()  # would need pickle: kept in memory
    assert not mixed.runs and [c["id"].tolist() for c in mixed.buckets()] == [["a", 3]]


def test_key_order_breaks_ties_by_the_named_columns() -> None:
    c = {"key": np.array([5, 3, 5, 5, 3], np.uint64), "a": np.array([1, 0, 0, 1, 0]), "b": np.array([9, 8, 7, 6, 5])}
    order = key_order(c, ("a", "b"))
    assert order.tolist() == np.lexsort((c["b"], c["a"], c["key"])).tolist() == [4, 1, 2, 3, 0]


def distinct_chunks(seed: int, n: int = 6, size: int = 40_000):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield {"key": rng.integers(0, 2**64, size, dtype=np.uint64), "cnt": np.ones(size, np.int64)}


@pytest.mark.parametrize("limit", [None, 1 << 20])
def test_distinct_keys_stop_reducing_and_read_back_reduced(limit: int | None) -> None:
    """Keys that are nearly all distinct make the store lazy (no sort per merge); what it reads
    back is still one record per key, sorted, counts summed, in memory or spilled."""
    acc = KeyRuns(count_by_key, limit=limit)
    every = list(distinct_chunks(5))
    every[-1]["key"][:500] = every[0]["key"][:500]  # repeats across chunks, after the store went lazy
    for c in every:
        part = KeyRuns(count_by_key)
        part.add(c)
        acc.merge(part)
    assert acc.lazy
    assert (limit is None) == (not acc.runs)
    got = list(acc.buckets())
    keys = np.concatenate([c["key"] for c in got])
    cnt = np.concatenate([c["cnt"] for c in got])
    truth = count_by_key({"key": np.concatenate([c["key"] for c in every]),
                          "cnt": np.ones(sum(c["key"].size for c in every), np.int64)})
    assert np.array_equal(keys, truth["key"]) and np.array_equal(cnt, truth["cnt"])
    assert cnt.max() == 2 and keys.size == 6 * 40_000 - 500
    acc.close()


def test_repeated_keys_keep_reducing() -> None:
    acc = KeyRuns(count_by_key)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        key = rng.integers(0, 1_000, 60_000).astype(np.uint64)  # 1,000 keys: reducing pays
        acc.merge(KeyRuns(count_by_key, chunks=[{"key": key, "cnt": np.ones(key.size, np.int64)}],
                          held=key.nbytes * 2))
    assert not acc.lazy
    assert len(acc.chunks) == 1 and acc.chunks[0]["key"].size <= 1_000  # held reduced, not 360,000 records
