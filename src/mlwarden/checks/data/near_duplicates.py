"""data.leakage.near_duplicates — evaluation rows that are a training row up to noise, format or a column or two.

Two detectors share one compact per-row state.

**Normalized hashing** (noise and formatting). Values are normalized before hashing:
text is case-folded, punctuation dropped, spaces collapsed and trimmed; numbers are
quantized on a log scale (256 steps per doubling, so 0.27 % wide); timestamps to the
second. A value close to a grid boundary would fall either side of it, so every row gets
:data:`GRIDS` = 4 hashes on grids shifted by a quarter step: two values within a quarter
step (relative difference under 0.068 %) share a cell on at least three of the four
grids, so a row whose numbers moved that little in up to three columns matches on at
least one grid.

**Column signatures** (a column or two changed entirely). Each row also keeps a 32-bit
hash per column (columns beyond 32 fold into 32 slots). In ``finalize``, leave-one-out
and leave-two-out keys (the row hash minus one or two slots) join evaluation rows to
training rows that agree on all other columns — exact candidate generation, unlike
MinHash/LSH, and cheaper on tabular rows, which have few tokens. A candidate is kept
only when the columns it agrees on are improbable to agree by chance: the sum of
``-log2(frequency in train)`` of the agreeing values must reach ``log2(n_train) + 20``
bits (independence assumed), so rows alike only in common values are not flagged. Up to
2 differing columns with 8 or more columns, 1 with 4 to 7, none below.

**State.** Per row: an 8-byte exact hash, 4 × 8 bytes of grid hashes and 4 bytes per
column slot (at most 32), plus the id for rows with one: 92 bytes a row with 13
columns, at most 168 (+ id) — about 170 MB for a million training rows. Rows that are
exact duplicates (``data.leakage.exact_duplicates``) are not counted here; their number
is in the metrics as ``exact_duplicates_excluded``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...findings import Location
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..common import py, shared_columns
from .leakage import SHARE_SCALE  # near copies leak like exact ones: one scale
from .rowhash import _mix, column_hash, row_hashes

SAMPLE_IDS = 20
GRIDS = 4
LOG_STEPS = 256.0  # quantization steps per doubling
MAX_SLOTS = 32
CHANCE_BITS = 20.0
_U64 = np.uint64

def _name(name: str) -> np.uint64:
    return _U64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little"))


def normalize_text(arr: pa.Array) -> pa.Array:
    arr = pc.utf8_lower(arr)
    arr = pc.replace_substring_regex(arr, r"[^\w\s]", "")
    arr = pc.replace_substring_regex(arr, r"\s+", " ")
    return pc.utf8_trim_whitespace(arr)


def value_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(rows × GRIDS) uint64 hashes of normalized values; equal columns for non-numeric values."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t, n = arr.type, len(arr)
    shifts = np.arange(GRIDS, dtype=np.float64) / GRIDS
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        if pa.types.is_date(t):
            arr = pc.cast(arr, pa.timestamp("ns"))
        ns = pc.cast(pc.cast(arr, pa.timestamp("ns", tz=arr.type.tz), safe=False), pa.int64())
        valid = ~np.asarray(arr.is_null(), dtype=bool)
        sec = np.asarray(ns.fill_null(0), dtype=np.int64) / 1e9
        cells = np.floor(sec[:, None] + shifts[None, :]).astype(np.int64).view(_U64) ^ _U64(0x7173)
        return np.where(valid[:, None], _mix(cells), _mix(np.full((n, GRIDS), _U64(0x51))))
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        x = np.asarray(pc.cast(arr, pa.float64(), safe=False).fill_null(np.nan), dtype=np.float64)
        valid = np.isfinite(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            lg = np.where(valid & (x != 0), np.log2(np.abs(x)) * LOG_STEPS, 0.0)
        cells = np.floor(lg[:, None] + shifts[None, :]).astype(np.int64).view(_U64)
        cells = cells * _U64(4) + np.where(x < 0, _U64(1), _U64(2))[:, None]
        cells = np.where((valid & (x == 0))[:, None], _U64(3), cells)
        cells = np.where(valid[:, None], cells, _U64(0x51))  # missing (and ±inf) is one value
        return _mix(cells ^ _U64(0xF10A7))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        h = column_hash(normalize_text(arr))
    else:
        h = column_hash(arr)
    return np.repeat(h[:, None], GRIDS, axis=1)


@dataclass
class Chunk:
    offset: int
    exact: np.ndarray  # (n,) uint64
    grid: np.ndarray  # (n, GRIDS) uint64
    slots: np.ndarray  # (n, S) uint32
    ids: np.ndarray | None


@dataclass
class NearState:
    chunks: dict[str, list[Chunk]] = field(default_factory=dict)


@dataclass
class SplitRows:
    exact: np.ndarray
    grid: np.ndarray
    slots: np.ndarray
    ids: np.ndarray


def _gather(chunks: list[Chunk]) -> SplitRows:
    chunks = sorted(chunks, key=lambda c: c.offset)
    n = sum(c.exact.size for c in chunks)
    if not chunks:
        return SplitRows(np.empty(0, _U64), np.empty((0, GRIDS), _U64), np.empty((0, 0), np.uint32),
                         np.empty(0, np.int64))
    ids = [c.ids if c.ids is not None else np.arange(c.offset, c.offset + c.exact.size) for c in chunks]
    return SplitRows(np.concatenate([c.exact for c in chunks]), np.concatenate([c.grid for c in chunks]),
                     np.concatenate([c.slots for c in chunks]), np.concatenate(ids) if n else np.empty(0))


@register
class NearDuplicates(FoldCheck):
    """Finds evaluation rows that copy a training row up to noise, formatting, or one or two columns.

    **What it finds.** Rows of test, production and feedback that equal a training row
    once values are normalized (text case, punctuation and spacing; numbers within
    about 0.07 %, timestamps within a second), or that agree with a training row on all
    but one or two columns when the agreeing values are too rare to agree by chance.
    Exact duplicates are left to ``data.leakage.exact_duplicates`` and only counted in
    the metrics. Reports counts by kind, the columns that differ most often, and sample
    pairs of (evaluation id, training id).

    **Severity.** As for exact duplicates — test: low below 0.5 %, medium below 2 %,
    high below 10 %, critical from 10 %; feedback: low, medium from 5 %; production:
    info, low from 1 %.

    **Why it matters.** Augmentation (jitter, rounding, re-formatting) or a record
    entered twice with a typo puts what is effectively the same row on both sides of the
    split: the test set rewards memorization and overstates generalization, and exact
    deduplication does not see it.

    **How to fix.** Deduplicate with the same normalization before splitting; split by
    entity or by source record; augment only after splitting, and only the training set.
    """

    id = "data.leakage.near_duplicates"
    title = "No evaluation rows nearly duplicated from training data"
    needs = ("train", "eval")
    stage = "splits"
    references = ("OWASP-ML08", "AML.T0059", "NIST-MEASURE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.features = shared_columns(sources, exclude=(spec.data.label, spec.data.id))
        self.n_slots = min(len(self.features), MAX_SLOTS)
        self.allowed = 2 if self.n_slots >= 8 else 1 if self.n_slots >= 4 else 0

    def columns(self, split: str) -> list[str]:
        cols = list(self.features)
        if self.spec.data.id and self.spec.data.id in self.sources.columns(split):
            cols.append(self.spec.data.id)
        return cols

    def init(self) -> NearState:
        return NearState()

    def update(self, state: NearState, batch: Batch) -> NearState:
        if not self.features:
            return state
        rb = batch.data
        n = rb.num_rows
        grid = np.zeros((n, GRIDS), _U64)
        slots = np.zeros((n, self.n_slots), _U64)
        with np.errstate(over="ignore"):
            for j, name in enumerate(self.features):
                h = _mix(value_hashes(rb.column(name)) ^ _name(name))
                grid += h
                slots[:, j % self.n_slots] += h[:, 0]
        idcol = self.spec.data.id
        ids = rb.column(idcol).to_numpy(zero_copy_only=False) if idcol and idcol in rb.schema.names else None
        chunk = Chunk(offset=batch.offset, exact=row_hashes(rb, self.features), grid=_mix(grid),
                      slots=(_mix(slots) >> _U64(32)).astype(np.uint32), ids=ids)
        state.chunks.setdefault(batch.split, []).append(chunk)
        return state

    def merge(self, a: NearState, b: NearState) -> NearState:
        for split, chunks in b.chunks.items():
            a.chunks.setdefault(split, []).extend(chunks)
        return a

    def finalize(self, state: NearState, ctx: AuditContext) -> Outcome:
        if not self.features:
            raise Skip("train and the evaluation splits share no feature columns")
        train = _gather(state.chunks.get("train", []))
        n_train = int(train.exact.size)
        bytes_per_row = 8 + 8 * GRIDS + 4 * self.n_slots
        metrics: dict[str, Any] = {"feature_columns": len(self.features), "signature_slots": self.n_slots,
                                   "max_differing_columns": self.allowed, "bytes_per_row": bytes_per_row,
                                   "train_rows": n_train, "chance_bits_required": None}
        exact_train = np.unique(train.exact)
        grid_order = [np.argsort(train.grid[:, k], kind="stable") for k in range(GRIDS)]
        grid_sorted = [train.grid[o, k] for k, o in enumerate(grid_order)]
        matcher = _ColumnMatcher(train, self.allowed, self.features) if self.allowed and n_train else None
        if matcher:
            metrics["chance_bits_required"] = round(matcher.needed, 2)
        findings, labels, shares = [], [], []
        for split in ("test", "production", "feedback"):
            if split not in ctx.sources.datasets:
                continue
            ev = _gather(state.chunks.get(split, []))
            n = int(ev.exact.size)
            exact = np.isin(ev.exact, exact_train)
            normalized = np.zeros(n, bool)
            first = np.full(n, -1, np.int64)  # the training row a normalized match points to
            for k in range(GRIDS):
                if not n_train:
                    break
                pos = np.clip(np.searchsorted(grid_sorted[k], ev.grid[:, k]), 0, n_train - 1)
                hit = (grid_sorted[k][pos] == ev.grid[:, k]) & ~exact & (first < 0)
                first[hit] = grid_order[k][pos[hit]]
                normalized |= hit
            partner = np.full(n, -1, np.int64)
            differ = np.zeros(n, np.int64)
            if matcher:
                partner, differ = matcher.match(ev, ~exact & ~normalized)
            columns_hit = partner >= 0
            near = normalized | columns_hit
            count = int(near.sum())
            share = count / n if n else 0.0
            by_kind = {"normalized": int(normalized.sum()), "one_column": int((columns_hit & (differ == 1)).sum()),
                       "two_columns": int((columns_hit & (differ == 2)).sum())}
            diff_cols = matcher.differing(ev, partner) if matcher else {}
            metrics[split] = {"rows": n, "near_duplicate_rows": count, "share": round(share, 6),
                              "exact_duplicates_excluded": int(exact.sum()), "by_kind": by_kind}
            labels.append(split)
            shares.append(100.0 * share)
            if count:
                where = np.flatnonzero(near)[:SAMPLE_IDS]
                mate = np.where(partner >= 0, partner, first)
                pairs = [[py(ev.ids[i]), py(train.ids[mate[i]])] for i in where]
                findings.append(self._finding(split, count, n, share, by_kind, diff_cols, pairs))
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Rows nearly duplicating train (% of split)", labels=tuple(labels),
                                     values=tuple(shares), unit="%")])

    def _finding(self, split: str, count: int, n: int, share: float, by_kind: dict[str, int],
                 diff_cols: dict[str, int], pairs: list[list[Any]]) -> Any:
        severity = next(sev for bound, sev in SHARE_SCALE[split] if share >= bound)
        sample = [p[0] for p in pairs]
        return self.finding(
            key=(split,), severity=severity,
            title=f"{count} of {n} {split} rows ({share:.1%}) nearly duplicate training rows",
            description=(f"{by_kind['normalized']} rows equal a training row up to rounding, noise or "
                         f"formatting; {by_kind['one_column']} differ from one in a single column and "
                         f"{by_kind['two_columns']} in two. Exact duplicates are not counted here."),
            remediation=("Deduplicate across splits with normalized values before splitting; split by entity "
                         "or source record; augment only the training split, after splitting."),
            evidence={"split": split, "near_duplicate_rows": count, "rows": n, "share": round(share, 6),
                      "by_kind": by_kind, "differing_columns": diff_cols,
                      "sample_pairs": pairs, "pair_fields": ["row id", "matched train row id"],
                      "id_column": self.spec.data.id or "(row number)"},
            location=Location(artifact=self.spec.display(self.sources.datasets[split].uri), rows=tuple(sample)),
        )


class _ColumnMatcher:
    """Joins evaluation rows to training rows that agree on all but one or two column slots."""

    def __init__(self, train: SplitRows, allowed: int, features: list[str]) -> None:
        self.train, self.allowed = train, allowed
        n, s = train.slots.shape
        self.slot_names = ["|".join(features[j::s]) for j in range(s)]
        self.needed = float(np.log2(max(n, 2)) + CHANCE_BITS)
        self.g_train = self._g(train.slots)
        self.total_train = self.g_train.sum(axis=1, dtype=_U64)
        # per slot: sorted distinct training values and their -log2 frequency
        self.freq = []
        for j in range(s):
            u, c = np.unique(train.slots[:, j], return_counts=True)
            self.freq.append((u, -np.log2(c / n)))
        self.leave = [c for m in range(1, allowed + 1) for c in combinations(range(s), m)]

    @staticmethod
    def _g(slots: np.ndarray) -> np.ndarray:
        pos = np.arange(slots.shape[1], dtype=_U64) << _U64(32)
        return _mix(slots.astype(_U64) | pos[None, :])

    def _bits(self, slots: np.ndarray) -> np.ndarray:
        out = np.zeros(slots.shape, np.float64)
        for j, (u, b) in enumerate(self.freq):
            if not u.size:
                continue
            i = np.clip(np.searchsorted(u, slots[:, j]), 0, u.size - 1)
            out[:, j] = np.where(u[i] == slots[:, j], b[i], 0.0)
        return out

    def match(self, ev: SplitRows, todo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = ev.slots.shape[0]
        partner, differ = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        rows = np.flatnonzero(todo)
        if not rows.size:
            return partner, differ
        g_ev = self._g(ev.slots[rows])
        total_ev = g_ev.sum(axis=1, dtype=_U64)
        bits = self._bits(ev.slots[rows])
        open_ = np.ones(rows.size, bool)
        for left in self.leave:
            idx = list(left)
            with np.errstate(over="ignore"):
                kt = self.total_train - self.g_train[:, idx].sum(axis=1, dtype=_U64)
                ke = total_ev - g_ev[:, idx].sum(axis=1, dtype=_U64)
            order = np.argsort(kt, kind="stable")
            ks = kt[order]
            cand = np.flatnonzero(open_)
            pos = np.clip(np.searchsorted(ks, ke[cand]), 0, ks.size - 1)
            hit = ks[pos] == ke[cand]
            cand, j = cand[hit], order[pos[hit]]
            if not cand.size:
                continue
            agree = ev.slots[rows[cand]] == self.train.slots[j]
            ok = (~agree).sum(axis=1) <= self.allowed
            ok &= (agree * bits[cand]).sum(axis=1) >= self.needed
            ok &= (~agree).sum(axis=1) >= 1
            cand, j = cand[ok], j[ok]
            partner[rows[cand]] = j
            differ[rows[cand]] = (ev.slots[rows[cand]] != self.train.slots[j]).sum(axis=1)
            open_[cand] = False
        return partner, differ

    def differing(self, ev: SplitRows, partner: np.ndarray) -> dict[str, int]:
        hit = np.flatnonzero(partner >= 0)
        if not hit.size:
            return {}
        counts = (ev.slots[hit] != self.train.slots[partner[hit]]).sum(axis=0)
        return {self.slot_names[j]: int(c) for j, c in sorted(enumerate(counts), key=lambda jc: (-jc[1], jc[0]))
                if c}

