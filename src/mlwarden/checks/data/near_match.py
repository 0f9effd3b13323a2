"""Multi-index hashing: evaluation rows that agree with a training row on all but one or two column slots.

Pigeonhole: split the S column slots into m disjoint blocks; two rows that differ in at
most r slots differ in at most r blocks, so they agree exactly on the union of some
m - r blocks. Joining evaluation rows to training rows on each of the C(m, r) unions
therefore finds every such pair as a *candidate*, and each candidate is then confirmed
exactly (slot by slot: at most r differ, at least one, and the agreeing values carry
enough bits to be improbable by chance).

Blocks are chosen by entropy: slots are dealt, most informative first, to the block with
the least entropy so far, so no block is made of low-cardinality columns only (whose
join would pair every row with a large part of the training set). m starts at r + 1
(3 joins for r = 2, against the C(S, 1) + C(S, 2) = 496 joins of leaving out each slot
pair of 31) and grows only while some join would yield more candidates than
:data:`MAX_PAIRS` (measured exactly from the key counts before any pair is built). Past
m = S a join keeps at most :data:`MAX_PER_KEY` training rows per key, and the metrics say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from .rowhash import _mix

_U64 = np.uint64
MAX_PAIRS = 4_000_000
MAX_PER_KEY = 64


@dataclass
class MatchStats:
    blocks: int = 0
    joins: int = 0
    candidates: int = 0
    capped: bool = False
    block_bits: list[float] = field(default_factory=list)


class SlotFrequencies:
    """Per slot: how often each value occurs in train, as bits (-log2 frequency), and its entropy."""

    def __init__(self, train_slot: Callable[[int], np.ndarray], slots: int, n_train: int) -> None:
        self.n, self.index, self.bits, self.entropy = n_train, [], [], []
        for j in range(slots):
            codes, uniques = pd.factorize(train_slot(j), sort=False)
            counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
            p = counts / max(n_train, 1)
            self.index.append(pd.Index(uniques))
            self.bits.append(-np.log2(p))
            self.entropy.append(float(-(p * np.log2(p)).sum()) if p.size else 0.0)

    def of(self, j: int, values: np.ndarray) -> np.ndarray:
        """Bits of ``values`` in slot j (0 for values train never has)."""
        pos = self.index[j].get_indexer(values)
        return np.where(pos >= 0, self.bits[j][np.maximum(pos, 0)], 0.0).astype(np.float32)


def deal_blocks(entropy: list[float], m: int, cap: float) -> list[list[int]]:
    """Slots into m blocks of about equal entropy (each slot's counted up to ``cap`` bits)."""
    blocks: list[list[int]] = [[] for _ in range(m)]
    load = [0.0] * m
    for j in sorted(range(len(entropy)), key=lambda j: (-min(entropy[j], cap), j)):
        b = min(range(m), key=lambda b: (load[b], b))
        blocks[b].append(j)
        load[b] += min(entropy[j], cap)
    return blocks


def _g(slot: np.ndarray, j: int) -> np.ndarray:
    return _mix(slot.astype(_U64) | (_U64(j) << _U64(32)))


def match(train_slot: Callable[[int], np.ndarray], ev_slots: np.ndarray, freq: SlotFrequencies,
          allowed: int, needed: float) -> tuple[np.ndarray, np.ndarray, MatchStats]:
    """For each row of ``ev_slots`` (S × n_ev uint32): its training partner (-1: none) and differing slots.

    ``train_slot(j)`` gives slot j of every training row (read one slot at a time, so
    memory holds m block keys and one slot, not the n × S table).
    """
    s, n_ev = ev_slots.shape
    partner, differ = np.full(n_ev, -1, np.int64), np.zeros(n_ev, np.int64)
    stats = MatchStats()
    if not n_ev or not freq.n:
        return partner, differ, stats
    bits_ev = np.stack([freq.of(j, ev_slots[j]) for j in range(s)])
    cap = float(np.log2(max(freq.n, 2)))
    for m in range(allowed + 1, s + 1):
        blocks = deal_blocks(freq.entropy, m, cap)
        pairs = _candidates(train_slot, ev_slots, blocks, allowed, freq.n, last=m == s, stats=stats)
        if pairs is None:
            continue  # some join would flood: more, smaller blocks
        stats.blocks = m
        stats.block_bits = [round(sum(min(freq.entropy[j], cap) for j in b), 1) for b in blocks]
        e, t = pairs
        stats.candidates = int(e.size)
        if not e.size:
            break
        nd, ok = _confirm(train_slot, ev_slots, bits_ev, e, t, allowed, needed)
        best = np.full(n_ev, np.iinfo(np.int64).max, np.int64)  # (differing slots, train row) packed
        np.minimum.at(best, e[ok], nd[ok] * (1 << 40) + t[ok])
        hit = best < np.iinfo(np.int64).max
        partner[hit], differ[hit] = best[hit] & ((1 << 40) - 1), best[hit] >> 40
        break
    return partner, differ, stats


def _candidates(train_slot: Callable[[int], np.ndarray], ev_slots: np.ndarray, blocks: list[list[int]],
                allowed: int, n_train: int, *, last: bool, stats: MatchStats) -> tuple[np.ndarray, np.ndarray] | None:
    """Distinct (eval row, train row) pairs that agree on some union of m - r blocks; None if too many."""
    m, n_ev = len(blocks), ev_slots.shape[1]
    bt, be = _block_keys(train_slot, ev_slots, blocks)
    es, ts = [], []
    stats.joins = 0
    for combo in combinations(range(m), m - allowed):
        kt, ke = _join_key(bt, combo), _join_key(be, combo)
        order = np.argsort(kt)
        ks = kt[order]
        del kt
        lo = np.searchsorted(ks, ke, side="left")
        cnt = np.searchsorted(ks, ke, side="right") - lo
        del ks
        stats.joins += 1
        if int(cnt.sum()) > MAX_PAIRS:
            if not last:
                return None
            cnt = np.minimum(cnt, MAX_PER_KEY)  # every block is one slot: keep the first rows of a key
            stats.capped = True
        e = np.repeat(np.arange(n_ev, dtype=np.int64), cnt)
        starts = np.repeat(lo - np.cumsum(cnt) + cnt, cnt)
        es.append(e)
        ts.append(order[starts + np.arange(e.size)])
    if not es:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    packed = np.unique(np.concatenate(es) * np.int64(n_train) + np.concatenate(ts))  # < n_ev · n_train < 2**63
    return packed // n_train, packed % n_train


def _block_keys(train_slot: Callable[[int], np.ndarray], ev_slots: np.ndarray,
                blocks: list[list[int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    bt, be = [], []
    with np.errstate(over="ignore"):
        for block in blocks:
            kt = np.zeros(0, _U64)
            ke = np.zeros(ev_slots.shape[1], _U64)
            for j in block:
                g = _g(train_slot(j), j)
                kt = g if not kt.size else kt + g
                ke += _g(ev_slots[j], j)
            bt.append(kt)
            be.append(ke)
    return bt, be


def _join_key(keys: list[np.ndarray], combo: tuple[int, ...]) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = keys[combo[0]].copy()
        for b in combo[1:]:
            out += keys[b]
        return _mix(out)


def _sorted_counts(kt: np.ndarray, ke: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train rows sorted by key, and for each eval key where its equal run starts and how long it is."""
    order = np.argsort(kt, kind="stable")
    ks = kt[order]
    lo = np.searchsorted(ks, ke, side="left")
    hi = np.searchsorted(ks, ke, side="right")
    return order, ks, lo, hi - lo


def _confirm(train_slot: Callable[[int], np.ndarray], ev_slots: np.ndarray, bits_ev: np.ndarray,
             e: np.ndarray, t: np.ndarray, allowed: int, needed: float) -> tuple[np.ndarray, np.ndarray]:
    nd = np.zeros(e.size, np.int64)
    bits = np.zeros(e.size, np.float64)
    for j in range(ev_slots.shape[0]):
        agree = ev_slots[j][e] == train_slot(j)[t]
        nd += ~agree
        bits += np.where(agree, bits_ev[j][e], 0.0)
    return nd, (nd >= 1) & (nd <= allowed) & (bits >= needed)
