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
:data:`MAX_PAIRS` (counted exactly from the sorted keys before any pair is built) or all
joins together more than :data:`MAX_HELD` distinct ones, so candidates, and the memory
they take, stay bounded whatever the table. Past m = S a join keeps at most
:data:`MAX_PER_KEY` training rows per key, and the metrics say so.

Cost is linear in rows plus sorts: entropies come from a seeded random sample of at most
:data:`ENTROPY_SAMPLE` training rows (they only steer the dealing; every pair within r
slots is found whatever the blocks), a block key is a multiply-add per slot, the joins are
sort-merge joins (:mod:`.keyjoin`), and the chance bits of a value are counted in the whole
training column only for the values that candidates agree on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Protocol

import numpy as np

from . import keyjoin
from .rowhash import search_sorted, sorted_unique

_U64 = np.uint64
MAX_PAIRS = 4_000_000
MAX_PER_KEY = 64
MAX_HELD = 4 * MAX_PAIRS  # distinct candidates over all joins of one m (8 bytes each)
BLOCK_BYTES = 512 << 20  # block keys kept for reuse across joins up to this size; past it, rebuilt per join
MAX_BLOCKS = 1 << 16  # block weights are drawn past the slot weights
ENTROPY_SAMPLE = 1 << 20


class SlotTable(Protocol):
    """S columns of 32-bit slot hashes over n rows, read one slot at a time."""

    @property
    def n(self) -> int:
        """Rows."""

    @property
    def s(self) -> int:
        """Slots."""

    def column(self, j: int) -> np.ndarray:
        """Slot j of every row."""

    def take(self, j: int, rows: np.ndarray) -> np.ndarray:
        """Slot j of ``rows`` only."""


@dataclass(frozen=True)
class ArraySlots:
    """A slot table held as one S × n array."""

    data: np.ndarray

    @property
    def n(self) -> int:
        return int(self.data.shape[1])

    @property
    def s(self) -> int:
        return int(self.data.shape[0])

    def column(self, j: int) -> np.ndarray:
        return self.data[j]

    def take(self, j: int, rows: np.ndarray) -> np.ndarray:
        return self.data[j][rows]


@dataclass
class MatchStats:
    blocks: int = 0
    joins: int = 0
    candidates: int = 0
    capped: bool = False
    block_bits: list[float] = field(default_factory=list)
    candidate_rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # eval row of each pair


def slot_entropy(train: SlotTable) -> list[float]:
    """Entropy in bits of each slot's values, from a sample of at most ENTROPY_SAMPLE rows.

    The sample is drawn at random (seeded: the same rows for the same row count), not by
    stride, which would alias with periodic columns.
    """
    sample = None
    if train.n > ENTROPY_SAMPLE:
        sample = np.sort(np.random.default_rng(train.n).integers(0, train.n, ENTROPY_SAMPLE))
    out = []
    for j in range(train.s):
        v = np.sort(train.column(j) if sample is None else train.column(j)[sample])
        if not v.size:
            out.append(0.0)
            continue
        edges = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1], [True])))
        p = np.diff(edges) / v.size
        out.append(float(-(p * np.log2(p)).sum()))
    return out


def value_bits(column: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """-log2(frequency in ``column``) of each of ``values``, float32 (0 for values the column never has)."""
    keys = sorted_unique(values)
    ordered = np.sort(column)
    count = np.searchsorted(ordered, keys, side="right") - np.searchsorted(ordered, keys, side="left")
    with np.errstate(divide="ignore"):
        bits = np.where(count > 0, -np.log2(count / max(n, 1)), 0.0).astype(np.float32)
    return bits[search_sorted(keys, values)]


def deal_blocks(entropy: list[float], m: int, cap: float) -> list[list[int]]:
    """Slots into m blocks of about equal entropy (each slot's counted up to ``cap`` bits)."""
    blocks: list[list[int]] = [[] for _ in range(m)]
    load = [0.0] * m
    for j in sorted(range(len(entropy)), key=lambda j: (-min(entropy[j], cap), j)):
        b = min(range(m), key=lambda b: (load[b], b))
        blocks[b].append(j)
        load[b] += min(entropy[j], cap)
    return blocks


def match(train: SlotTable, ev: SlotTable, allowed: int, needed: float) -> tuple[np.ndarray, np.ndarray, MatchStats]:
    """For each row of ``ev``: its training partner (-1: none) and how many slots differ.

    The partner is the training row with the fewest differing slots, the first such row
    on a tie; only pairs with 1..``allowed`` differing slots and at least ``needed`` bits
    of agreement count.
    """
    partner, differ = np.full(ev.n, -1, np.int64), np.zeros(ev.n, np.int64)
    stats = MatchStats()
    if not ev.n or not train.n:
        return partner, differ, stats
    entropy = slot_entropy(train)
    cap = float(np.log2(max(train.n, 2)))
    for m in range(allowed + 1, ev.s + 1):
        blocks = deal_blocks(entropy, m, cap)
        pairs = _candidates(train, ev, blocks, allowed, last=m == ev.s, stats=stats)
        if pairs is None:
            continue  # the joins would flood: more, smaller blocks
        stats.blocks = m
        stats.block_bits = [round(sum(min(entropy[j], cap) for j in b), 1) for b in blocks]
        e, t = pairs
        stats.candidates, stats.candidate_rows = int(e.size), e
        if not e.size:
            break
        nd, ok = _confirm(train, ev, e, t, allowed, needed)
        best = np.full(ev.n, np.iinfo(np.int64).max, np.int64)  # (differing slots, train row) packed
        np.minimum.at(best, e[ok], nd[ok] * (1 << 40) + t[ok])
        hit = best < np.iinfo(np.int64).max
        partner[hit], differ[hit] = best[hit] & ((1 << 40) - 1), best[hit] >> 40
        break
    return partner, differ, stats


def _candidates(train: SlotTable, ev: SlotTable, blocks: list[list[int]], allowed: int, *, last: bool,
                stats: MatchStats) -> tuple[np.ndarray, np.ndarray] | None:
    """Distinct (eval row, train row) pairs that agree on some union of m - r blocks; None if too many."""
    m = len(blocks)
    # with m = r + 1 each join is one block, used once: build its keys slot by slot, so memory
    # holds one key column; past that a block serves several joins, so its keys are kept
    keep = m - allowed > 1 and m * (train.n + ev.n) * 4 <= BLOCK_BYTES
    bt, be = (_block_keys(train, blocks), _block_keys(ev, blocks)) if keep else (None, None)
    pairs, held = [np.empty(0, np.int64)], 0
    stats.joins = 0
    for combo in combinations(range(m), m - allowed):
        if bt is not None and be is not None:
            kt, ke = _join_key(bt, combo), _join_key(be, combo)
        else:
            union = [j for b in combo for j in blocks[b]]
            kt, ke = _mix_in_place(_slot_sum(train, union)), _mix_in_place(_slot_sum(ev, union))
        cnt = keyjoin.counts(kt, ke)
        stats.joins += 1
        if int(cnt.sum()) > MAX_PAIRS:
            if not last:
                return None
            cnt = np.minimum(cnt, MAX_PER_KEY)  # every block is one slot: keep the first rows of a key
            stats.capped = True
        if not cnt.any():
            continue
        found = keyjoin.matches(kt, ke, cnt)
        rows = np.flatnonzero(cnt)
        c = cnt[rows]
        e = np.repeat(rows, c)
        starts = np.repeat(found.start[rows] - np.cumsum(c) + c, c)
        pairs.append(e * np.int64(train.n) + found.rows[starts + np.arange(e.size)])  # < n_ev · n_train < 2**63
        held += e.size
        if held > MAX_PAIRS:  # a pair is found by many joins: keep each once, so memory stays bounded
            pairs = [sorted_unique(np.concatenate(pairs))]
            held = pairs[0].size
            if held > MAX_HELD:
                if not last:
                    return None
                stats.capped = True
                break
    packed = sorted_unique(np.concatenate(pairs))
    return packed // train.n, packed % train.n


def _slot_weight(j: int) -> np.uint64:
    return _mix_in_place(np.array([j + 1], _U64))[0] | _U64(1)


def _slot_sum(table: SlotTable, slots: list[int]) -> np.ndarray:
    """Per row: the sum of ``slots`` times odd 64-bit weights (rows equal on those slots, equal sums)."""
    out = np.zeros(table.n, _U64)
    tmp = np.empty(table.n, _U64)
    with np.errstate(over="ignore"):
        for j in slots:
            np.multiply(table.column(j), _slot_weight(j), out=tmp, dtype=_U64)
            out += tmp
    return out


def _block_keys(table: SlotTable, blocks: list[list[int]]) -> np.ndarray:
    """(m × n) 32-bit hashes of every block, for joins on unions of two or more blocks.

    32 bits a block suffice there: a union of k blocks is keyed by 32·k bits of hash.
    """
    out = np.empty((len(blocks), table.n), np.uint32)
    for b, block in enumerate(blocks):
        out[b] = _mix_in_place(_slot_sum(table, block)) >> _U64(32)
    return out


def _join_key(keys: np.ndarray, combo: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(keys.shape[1], _U64)
    tmp = np.empty(keys.shape[1], _U64)
    with np.errstate(over="ignore"):
        for b in combo:
            np.multiply(keys[b], _slot_weight(MAX_BLOCKS + b), out=tmp, dtype=_U64)
            out += tmp
    return _mix_in_place(out)


def _mix_in_place(x: np.ndarray) -> np.ndarray:
    """:func:`~.rowhash._mix`, overwriting ``x``: one temporary column, not five."""
    t = np.empty_like(x)
    with np.errstate(over="ignore"):
        for shift, mult in ((30, _U64(0xBF58476D1CE4E5B9)), (27, _U64(0x94D049BB133111EB)), (31, None)):
            np.right_shift(x, _U64(shift), out=t)
            x ^= t
            if mult is not None:
                x *= mult
    return x


def _confirm(train: SlotTable, ev: SlotTable, e: np.ndarray, t: np.ndarray, allowed: int,
             needed: float) -> tuple[np.ndarray, np.ndarray]:
    nd = np.zeros(e.size, np.int64)
    bits = np.zeros(e.size, np.float64)
    for j in range(ev.s):
        column = train.column(j)
        ev_values = ev.take(j, e)
        agree = ev_values == column[t]
        nd += ~agree
        bits[agree] += value_bits(column, ev_values[agree], train.n)
    return nd, (nd >= 1) & (nd <= allowed) & (bits >= needed)
