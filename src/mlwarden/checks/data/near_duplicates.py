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
columns, at most 168 (+ id). It is the one state of this check that grows with rows;
past :data:`~.rowstore.SPILL_BYTES` it is spilled to a temporary folder
(:class:`~.rowstore.RowStore`) and read back one column at a time, so memory holds a few
columns (8 bytes a row each), not the table. Rows that are exact duplicates
(``data.leakage.exact_duplicates``) are not counted here; their number is in the metrics
as ``exact_duplicates_excluded``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...findings import Location
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..common import py, shared_columns
from .leakage import SHARE_SCALE  # near copies leak like exact ones: one scale
from .near_match import SlotFrequencies, match
from .rowhash import _mix, column_hash, row_hashes
from .rowstore import RowStore

SAMPLE_IDS = 20
GRIDS = 4
LOG_STEPS = 256.0  # quantization steps per doubling
MAX_SLOTS = 32
CHANCE_BITS = 20.0
_U64 = np.uint64

def _name(name: str) -> np.uint64:
    return _U64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little"))


def normalize_text(arr: pa.Array) -> pa.Array:
    """Lower case, punctuation dropped, runs of white space as one space, trimmed."""
    arr = pc.utf8_lower(arr)
    arr = pc.replace_substring_regex(arr, r"[^\w\s]", "")
    arr = pc.replace_substring_regex(arr, r"\s+", " ")
    return pc.utf8_trim_whitespace(arr)


_MISSING_TEXT = column_hash(pa.array([None], pa.large_string()))[0]


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
        # normalize each distinct value once (regexes are most of the cost), then index
        enc = arr.dictionary_encode()
        per_value = column_hash(normalize_text(enc.dictionary))
        codes = np.asarray(enc.indices.fill_null(0), dtype=np.int64)
        h = per_value[codes] if per_value.size else np.zeros(n, dtype=_U64)
        h = np.where(np.asarray(arr.is_null(), dtype=bool), _MISSING_TEXT, h)
    else:
        h = column_hash(arr)
    return np.repeat(h[:, None], GRIDS, axis=1)


@dataclass
class NearState:
    store: RowStore = field(default_factory=RowStore)


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
        cols = {"exact": row_hashes(rb, self.features)}
        grid = _mix(grid)
        cols |= {f"g{k}": np.ascontiguousarray(grid[:, k]) for k in range(GRIDS)}
        slots = (_mix(slots) >> _U64(32)).astype(np.uint32)
        cols |= {f"s{j}": np.ascontiguousarray(slots[:, j]) for j in range(self.n_slots)}
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
        n_train = store.rows("train")
        metrics: dict[str, Any] = {"feature_columns": len(self.features), "signature_slots": self.n_slots,
                                   "max_differing_columns": self.allowed,
                                   "bytes_per_row": 8 + 8 * GRIDS + 4 * self.n_slots,
                                   "train_rows": n_train, "chance_bits_required": None}
        splits = [s for s in ("test", "production", "feedback") if s in ctx.sources.datasets]
        exact, first = self._normalized(store, splits, n_train)
        freq = None
        if self.allowed and n_train:
            freq = SlotFrequencies(lambda j: store.column("train", f"s{j}"), self.n_slots, n_train)
            needed = float(np.log2(max(n_train, 2)) + CHANCE_BITS)
            metrics["chance_bits_required"] = round(needed, 2)
        train_ids = store.column("train", "ids")
        findings, labels, shares = [], [], []
        for split in splits:
            n = store.rows(split)
            normalized = first[split] >= 0
            partner, differ = np.full(n, -1, np.int64), np.zeros(n, np.int64)
            if freq is not None:
                todo = np.flatnonzero(~exact[split] & ~normalized)
                ev_slots = np.stack([store.column(split, f"s{j}")[todo] for j in range(self.n_slots)]) \
                    if todo.size else np.zeros((self.n_slots, 0), np.uint32)
                p, d, stats = match(lambda j: store.column("train", f"s{j}"), ev_slots, freq, self.allowed, needed)
                partner[todo], differ[todo] = p, d
                metrics.setdefault("index", {"blocks": stats.blocks, "joins": stats.joins,
                                             "block_entropy_bits": stats.block_bits})
                metrics["index"][f"{split}_candidates"] = stats.candidates
                metrics["index"]["capped"] = metrics["index"].get("capped", False) or stats.capped
                diff_cols = self._differing(store, split, partner)
            else:
                diff_cols = {}
            columns_hit = partner >= 0
            near = normalized | columns_hit
            count = int(near.sum())
            share = count / n if n else 0.0
            by_kind = {"normalized": int(normalized.sum()), "one_column": int((columns_hit & (differ == 1)).sum()),
                       "two_columns": int((columns_hit & (differ == 2)).sum())}
            metrics[split] = {"rows": n, "near_duplicate_rows": count, "share": round(share, 6),
                              "exact_duplicates_excluded": int(exact[split].sum()), "by_kind": by_kind}
            labels.append(split)
            shares.append(100.0 * share)
            if count:
                where = np.flatnonzero(near)[:SAMPLE_IDS]
                mate = np.where(partner >= 0, partner, first[split])[where]
                ev_ids = store.column(split, "ids")
                ev_ids = store.offsets(split) if ev_ids is None else ev_ids
                tr_ids = store.offsets("train") if train_ids is None else train_ids
                pairs = [[py(ev_ids[i]), py(tr_ids[t])] for i, t in zip(where, mate)]
                findings.append(self._finding(split, count, n, share, by_kind, diff_cols, pairs))
        return Outcome(findings=findings, metrics=metrics,
                       charts=[Chart(title="Rows nearly duplicating train (% of split)", labels=tuple(labels),
                                     values=tuple(shares), unit="%")])

    @staticmethod
    def _normalized(store: RowStore, splits: list[str], n_train: int) -> tuple[dict, dict]:
        """Per eval split: which rows are exact copies, and the training row each normalized copy equals."""
        exact_train = np.unique(store.column("train", "exact")) if n_train else np.empty(0, _U64)
        exact, first = {}, {}
        for split in splits:
            ev = store.column(split, "exact")
            ev = np.empty(0, _U64) if ev is None else ev
            pos = np.clip(np.searchsorted(exact_train, ev), 0, max(exact_train.size - 1, 0))
            exact[split] = (exact_train[pos] == ev) if exact_train.size else np.zeros(ev.size, bool)
            first[split] = np.full(ev.size, -1, np.int64)
        del exact_train
        for k in range(GRIDS if n_train else 0):
            col = store.column("train", f"g{k}")
            order = np.argsort(col, kind="stable")
            ordered = col[order]
            del col
            for split in splits:
                g = store.column(split, f"g{k}")
                if g is None:
                    continue
                pos = np.clip(np.searchsorted(ordered, g), 0, n_train - 1)
                hit = (ordered[pos] == g) & ~exact[split] & (first[split] < 0)
                first[split][hit] = order[pos[hit]]
        return exact, first

    def _differing(self, store: RowStore, split: str, partner: np.ndarray) -> dict[str, int]:
        hit = np.flatnonzero(partner >= 0)
        if not hit.size:
            return {}
        s = self.n_slots
        names = ["|".join(self.features[j::s]) for j in range(s)]
        counts = [int((store.column(split, f"s{j}")[hit] != store.column("train", f"s{j}")[partner[hit]]).sum())
                  for j in range(s)]
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
