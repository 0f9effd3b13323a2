"""Looking up many 64-bit keys in a sorted array: the shapes the finalizers meet at 10M rows.

    python bench/bench_sorted_search.py [--rows 10000000]

1. Membership of an evaluation split's row hashes in train's distinct hashes
   (``data.leakage.entity``, the replay screen of ``data.poisoning.feedback``): ``--rows``
   sorted train hashes, ``--rows / 4`` needles in random order, a fifth of them present.
   ``np.searchsorted`` as is, then :func:`mlwarden.checks.data.rowhash.search_sorted`
   (needles sorted first, argsort and scatter included).
2. Each equivalence class's value of one quasi-identifier, looked up among that column's
   distinct values (``data.privacy.k_anonymity``'s population model): ``1.05 × --rows``
   needles against 25,933 / 2,957 / 73 distinct keys (zip, a date, age on the bench table).
   ``np.searchsorted`` against :func:`mlwarden.checks.data.rowhash.index_of` (a hash table).

Best of three for each, in seconds, with a check that both give the same answer. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from mlwarden.checks.data.rowhash import index_of, search_sorted


def best(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(3):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    assert out is not None
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    n = ap.parse_args().rows
    rng = np.random.default_rng(0)
    hay = np.unique(rng.integers(0, 2**64 - 1, n, dtype=np.uint64))
    m = n // 4
    needles = np.concatenate([rng.choice(hay, m // 5), rng.integers(0, 2**64 - 1, m - m // 5, dtype=np.uint64)])
    rng.shuffle(needles)
    print("| lookup | haystack | needles | np.searchsorted s | mlwarden s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    a, ra = best(lambda: np.searchsorted(hay, needles))
    b, rb = best(lambda: search_sorted(hay, needles))
    assert np.array_equal(ra, rb)
    print(f"| rows in train (search_sorted) | {hay.size:,} | {needles.size:,} | {a:.3f} | {b:.3f} | {a / b:.1f}x |")
    classes = int(1.05 * n)
    for k in (25_933, 2_957, 73):
        keys = np.sort(rng.integers(0, 2**64 - 1, k, dtype=np.uint64))
        v = keys[rng.integers(0, k, classes)]
        a, ra = best(lambda keys=keys, v=v: np.searchsorted(keys, v))
        b, rb = best(lambda keys=keys, v=v: index_of(keys, v))
        assert np.array_equal(ra, rb)
        print(f"| class value in a column (index_of) | {k:,} | {classes:,} | {a:.3f} | {b:.3f} | {a / b:.1f}x |")


if __name__ == "__main__":
    main()
