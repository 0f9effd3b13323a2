"""data.leakage.near_duplicates — evaluation rows that are a training row up to noise, format or a column or two.

Two detectors share one compact per-row state.

**Normalized hashing** (noise and formatting). Values are normalized before hashing
(:mod:`.near_values`): text is case-folded, punctuation dropped, spaces collapsed and
trimmed; numbers are quantized on a log scale (256 steps per doubling, so 0.27 % wide);
timestamps to the second. A value close to a grid boundary would fall either side of it,
so every row gets :data:`GRIDS` = 4 hashes on grids shifted by a quarter step: two values
within a quarter step (relative difference under 0.068 %) share a cell on at least three
of the four grids, so a row whose numbers moved that little in up to three columns
matches on at least one grid. Evaluation rows are joined to training rows on each hash by
sort-merge joins (:mod:`.keyjoin`).

**Column signatures** (a column or two changed entirely). Each row also keeps a 32-bit
hash per column (columns beyond 32 fold into 32 slots). Candidates come from
multi-index hashing (:mod:`.near_match`): the slots are dealt into r + 1 (or more) blocks of
equal entropy, and evaluation rows are joined to training rows that agree on every block
but r — by pigeonhole every row differing in at most r slots is a candidate — then each
candidate is confirmed slot by slot. A pair is kept only when the columns it agrees on
are improbable to agree by chance: the sum of ``-log2(frequency in train)`` of the
agreeing values must reach ``log2(n_train) + 20`` bits (independence assumed), so rows
alike only in common values are not flagged. Up to 2 differing columns with 8 or more
columns, 1 with 4 to 7, none below.

**State.** Per row: an 8-byte exact hash, 4 × 8 bytes of grid hashes and 4 bytes per
column slot (at most 32), plus the id for rows with one: 92 bytes a row with 13
columns, 156 with 29, at most 168 (+ 8 for a numeric id). It is the one state of this
check that grows with rows; past :data:`~.rowstore.SPILL_BYTES` it is spilled to a
temporary folder (:class:`~.rowstore.RowStore`) and read back one column at a time, so
finalizing holds a few training columns (8 bytes a row each: a key, its sorted copy, a
block key being summed), not the table; ids and slots of matched rows are read from the
mapped files. All evaluation splits are joined to train at once, so each training column
is read and sorted once, not once per split. Rows that are exact duplicates
(``data.leakage.exact_duplicates``) are not counted here; their number is in the metrics
as ``exact_duplicates_excluded``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...findings import Location
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..common import py, shared_columns
from . import keyjoin
from .leakage import SHARE_SCALE  # near copies leak like exact ones: one scale
from .near_match import match
from .near_values import GRIDS, grid_hashes
from .rowhash import _mix, row_hashes
from .rowstore import RowStore

SAMPLE_IDS = 20
MAX_SLOTS = 32
CHANCE_BITS = 20.0
_U64 = np.uint64


def _name(name: str) -> np.uint64:
    return _U64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little"))


@dataclass
class NearState:
    store: RowStore = field(default_factory=RowStore)


@dataclass(frozen=True)
class StoreSlots:
    """The slot columns of some splits of a store, end to end, as one table (only ``rows``, if given)."""

    store: RowStore
    splits: tuple[str, ...]
    s: int
    rows: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.rows.size) if self.rows is not None else sum(self.store.rows(sp) for sp in self.splits)

    def column(self, j: int) -> np.ndarray:
        col = _cat(self.store, self.splits, f"s{j}", np.uint32)
        return col if self.rows is None else col[self.rows]

    def take(self, j: int, rows: np.ndarray) -> np.ndarray:
        rows = rows if self.rows is None else self.rows[rows]
        out = np.empty(rows.size, np.uint32)
        lo = 0
        for sp in self.splits:
            hi = lo + self.store.rows(sp)
            sel = (rows >= lo) & (rows < hi)
            if sel.any():
                out[sel] = self.store.take(sp, f"s{j}", rows[sel] - lo)
            lo = hi
        return out


def _cat(store: RowStore, splits: tuple[str, ...] | list[str], name: str, dtype: Any) -> np.ndarray:
    """One column of several splits end to end (empty for splits without rows)."""
    parts = [c for c in (store.column(sp, name) for sp in splits) if c is not None]
    if not parts:
        return np.empty(0, dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


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
    row_finalize = True
    title = "No evaluation rows nearly duplicated from training data"
    needs = ("train", "eval")
    stage = "splits"
    references = ("OWASP-ML08", "AML.T0059", "NIST-MEASURE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.features = shared_columns(sources, exclude=(spec.data.label, spec.data.id))
        self.n_slots = min(len(self.features), MAX_SLOTS)
        self.allowed = 2 if self.n_slots >= 8 else 1 if self.n_slots >= 4 else 0
        self._names = {name: _name(name) for name in self.features}

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
        # a column whose value falls in one cell on every grid (text, dates) is hashed once
        # and added to every grid through ``common``: the same sums, a quarter of the work
        grid = np.zeros((GRIDS, n), _U64)
        common = np.zeros(n, _U64)
        folded = len(self.features) > self.n_slots  # a slot sums several columns: mix it again
        slots = np.zeros((self.n_slots, n), _U64) if folded else np.empty((self.n_slots, n), np.uint32)
        with np.errstate(over="ignore"):
            for j, name in enumerate(self.features):
                h = grid_hashes(rb.column(name), self._names[name])
                if h.ndim == 2:
                    grid += h
                else:
                    common += h
                h0 = h[0] if h.ndim == 2 else h
                if folded:
                    slots[j % self.n_slots] += h0
                else:
                    slots[j] = h0 >> _U64(32)
            grid = _mix(grid + common)
        if folded:
            slots = (_mix(slots) >> _U64(32)).astype(np.uint32)
        cols = {"exact": row_hashes(rb, self.features)}
        cols |= {f"g{k}": grid[k] for k in range(GRIDS)}
        cols |= {f"s{j}": slots[j] for j in range(self.n_slots)}
        idcol = self.spec.data.id
        if idcol and idcol in rb.schema.names:
            cols["ids"] = rb.column(idcol).to_numpy(zero_copy_only=False)
        state.store.add(batch.split, batch.offset, cols)
        return state

    def merge(self, a: NearState, b: NearState) -> NearState:
        a.store.merge(b.store)
        return a

    def finalize(self, state: NearState, ctx: AuditContext) -> Outcome:
        if not self.features:
            raise Skip("train and the evaluation splits share no feature columns")
        try:
            return self._finalize(state.store, ctx)
        finally:
            state.store.close()

    def _finalize(self, store: RowStore, ctx: AuditContext) -> Outcome:
        if store.spilled:  # a large state: put the rest on disk too, and hold only the columns in use
            store.spill()
        n_train = store.rows("train")
        metrics: dict[str, Any] = {"feature_columns": len(self.features), "signature_slots": self.n_slots,
                                   "max_differing_columns": self.allowed,
                                   "bytes_per_row": 8 + 8 * GRIDS + 4 * self.n_slots,
                                   "train_rows": n_train, "chance_bits_required": None}
        # every evaluation split end to end: one pass over the training columns serves them all
        splits = tuple(s for s in ("test", "production", "feedback") if s in ctx.sources.datasets)
        ends = np.cumsum([store.rows(s) for s in splits]).tolist()
        exact, first = self._normalized(store, splits, n_train)
        partner, differ = np.full(exact.size, -1, np.int64), np.zeros(exact.size, np.int64)
        if self.allowed and n_train:
            needed = float(np.log2(max(n_train, 2)) + CHANCE_BITS)
            metrics["chance_bits_required"] = round(needed, 2)
            todo = np.flatnonzero(~exact & (first < 0))
            p, d, stats = match(StoreSlots(store, ("train",), self.n_slots),
                                StoreSlots(store, splits, self.n_slots, todo), self.allowed, needed)
            partner[todo], differ[todo] = p, d
            per_split = np.bincount(np.searchsorted(ends, todo[stats.candidate_rows], side="right"),
                                    minlength=len(splits))
            metrics["index"] = {"blocks": stats.blocks, "joins": stats.joins, "block_entropy_bits": stats.block_bits,
                                "capped": stats.capped} | {f"{s}_candidates": int(c) for s, c in zip(splits, per_split)}
        findings, labels, shares = [], [], []
        for split, lo, hi in zip(splits, [0, *ends], ends):
            n = hi - lo
            normalized, mate = first[lo:hi] >= 0, partner[lo:hi]
            columns_hit, kinds = mate >= 0, differ[lo:hi]
            near = normalized | columns_hit
            count = int(near.sum())
            share = count / n if n else 0.0
            by_kind = {"normalized": int(normalized.sum()), "one_column": int((columns_hit & (kinds == 1)).sum()),
                       "two_columns": int((columns_hit & (kinds == 2)).sum())}
            metrics[split] = {"rows": n, "near_duplicate_rows": count, "share": round(share, 6),
                              "exact_duplicates_excluded": int(exact[lo:hi].sum()), "by_kind": by_kind}
            labels.append(split)
            shares.append(100.0 * share)
            if count:
                where = np.flatnonzero(near)[:SAMPLE_IDS]
                train_rows = np.where(mate >= 0, mate, first[lo:hi])[where]
                pairs = [[py(e), py(t)] for e, t in zip(self._ids(store, split, where),
                                                        self._ids(store, "train", train_rows))]
                diff_cols = self._differing(store, split, mate)
                findings.append(self._finding(split, count, n, share, by_kind, diff_cols, pairs))
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Rows nearly duplicating train (% of split)", labels=tuple(labels),
                                     values=tuple(shares), unit="%")])

    @staticmethod
    def _normalized(store: RowStore, splits: tuple[str, ...], n_train: int) -> tuple[np.ndarray, np.ndarray]:
        """Per evaluation row: is it an exact copy, and the training row it equals once normalized (-1: none)."""
        ev = _cat(store, splits, "exact", _U64)
        exact, first = np.zeros(ev.size, bool), np.full(ev.size, -1, np.int64)
        if not n_train or not ev.size:
            return exact, first
        exact = keyjoin.counts(_cat(store, ("train",), "exact", _U64), ev) > 0
        for k in range(GRIDS):
            rest = np.flatnonzero(~exact & (first < 0))
            if not rest.size:
                break
            # the first training row in row order equal on the first grid that matches
            first[rest] = keyjoin.first_match(_cat(store, ("train",), f"g{k}", _U64),
                                               _cat(store, splits, f"g{k}", _U64)[rest])
        return exact, first

    @staticmethod
    def _ids(store: RowStore, split: str, rows: np.ndarray) -> np.ndarray:
        ids = store.take(split, "ids", rows)
        return store.offsets(split)[rows] if ids is None else ids

    def _differing(self, store: RowStore, split: str, partner: np.ndarray) -> dict[str, int]:
        hit = np.flatnonzero(partner >= 0)
        if not hit.size:
            return {}
        s = self.n_slots
        names = ["|".join(self.features[j::s]) for j in range(s)]
        ev, train = StoreSlots(store, (split,), s), StoreSlots(store, ("train",), s)
        counts = [int((ev.take(j, hit) != train.take(j, partner[hit])).sum()) for j in range(s)]
        return {names[j]: c for j, c in sorted(enumerate(counts), key=lambda jc: (-jc[1], jc[0])) if c}

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
