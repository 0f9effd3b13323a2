"""data.poisoning.feedback — screens the labelled feedback batch before it is retrained on.

State, all mergeable and identical whatever the partitioning:

- per split, per (column, value) × label counts, exact, for columns with at most
  ``VALUE_CAP`` distinct values in that split; a column above the cap is marked
  high-cardinality and left out of per-value regions (and its train rarity is
  "unknown"; a trigger value's text is then read back from the feedback file). An exact
  cap rather than Misra–Gries on purpose: MG summaries keep the same error bound under any
  merge order but not the same *counts*, and audits must be reproducible across engines.
  Cost: ≤ ``VALUE_CAP`` × labels counters per column.
- per split, per numeric column, label counts in log buckets of 2 % relative width
  (≤ ~7,000 buckets for any float range); decile bins of train are read off them.
- train feature-row hashes, 8 bytes per distinct train row (replays of train in feedback).
- per feedback row: ordinal, id, feature-row hash, label hash, one value hash per column
  and one bucket per numeric column — 8 × (4 + columns + numeric columns) bytes a row.
  Feedback batches are small next to train; this is what naming suspect rows needs.

The screens that read this state at finalize live in :mod:`.screens`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch, values_at
from ..data.rowhash import (
    batch_column_hash,
    compact_sets,
    count_distinct,
    in_sorted,
    row_hashes,
    sort_codes,
    sorted_unique,
)
from . import screens
from .conflicts import feature_columns, label_hashes, merge_names, py, row_ids, show
from .pairs import PairTable, int_codes
from .screens import FLOOD_K, SEED, buckets

VALUE_CAP = 10_000
QUARANTINE_IDS = 200


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _add(a: dict[Any, int], b: dict[Any, int]) -> dict[Any, int]:
    for k, v in b.items():
        a[k] = a.get(k, 0) + v
    return a


@dataclass
class FeedbackState:
    rows: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[int, int]] = field(default_factory=dict)
    names: dict[int, Any] = field(default_factory=dict)
    values: dict[str, dict[str, PairTable | None]] = field(default_factory=dict)
    display: dict[str, dict[int, Any]] = field(default_factory=dict)
    buckets: dict[str, dict[str, PairTable]] = field(default_factory=dict)
    train_hashes: list[np.ndarray] = field(default_factory=list)
    fb: list[dict[str, np.ndarray]] = field(default_factory=list)


@register
class FeedbackScreen(FoldCheck):
    """Screens labelled feedback for poisoning before it flows back into retraining.

    **What it finds.** Compares the feedback batch with the training data and names
    suspect rows: (1) an overall label shift (chi-squared, Cramér's V and the
    total-variation distance of the label shares, with bootstrap intervals); (2) regions
    of feature space — each value of each categorical column, each value of a numeric
    column with few values, each train decile of the others — where feedback labels
    depart from train's by a large effect (TVD ≥ 0.15) with Benjamini–Hochberg q < 0.05:
    clusters of flipped labels; (3) exact feature values that co-occur with one label far
    more than chance (one-sided binomial test of the value's most common label against
    train's rate for that value, or train's rate within 2 % of it for a numeric column with
    too many values to count each, else feedback's base rate; times the number of labels,
    for the label chosen after looking; BH across all pairs) and are rare or absent in
    train — under 0.1 % of its rows and under a tenth of what a value of that column
    typically has: backdoor triggers; (4) floods of identical feedback rows, and
    feedback rows replaying train rows. ``metrics["quarantine"]`` lists suspect row ids
    by reason; nothing is written anywhere.

    **Severity.** Trigger values absent or rare in train: high; of unknown frequency in
    train (its column has over ``VALUE_CAP`` values there): medium. Flipped-label
    regions: high from TVD 0.25 with ≥ 20 feedback rows, else medium. Overall label
    shift: high from TVD 0.25, medium from 0.1, else low (significant shifts only).
    Floods: high from 10 % of feedback, medium from 1 %, else low; replays of train from
    5 %: medium.

    **Why it matters.** Retraining on user-supplied labels on autopilot is the easiest
    door to poisoning (OWASP ML02, ATLAS AML.T0020): flipped labels in one region bend
    the boundary there, and a rare value always labelled one way plants a backdoor.

    **How to fix.** Hold the quarantined rows out of the next retraining, have them
    reviewed, trace their sources (accounts, API keys, time windows), and gate feedback
    on this check before it reaches the training set.
    """

    id = "data.poisoning.feedback"
    row_finalize = True
    title = "Feedback labels show no signs of poisoning"
    needs = ("train", "feedback", "label")
    stage = "feedback"
    references = ("OWASP-ML02", "AML.T0020", "AML.T0018.000", "AML.M0007", "NIST-MEASURE")
    splits = ("train", "feedback")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.features = feature_columns(spec, sources, ("train", "feedback"))
        schema = sources.datasets["train"].schema if "train" in sources.datasets else pa.schema([])
        self.numeric = [c for c in self.features if _numeric(schema.field(c).type)]

    def columns(self, split: str) -> list[str]:
        extra = {self.spec.data.label} | ({self.spec.data.id} & set(self.sources.columns(split)))
        return sorted(set(self.features) | {c for c in extra if c is not None})

    def init(self) -> FeedbackState:
        return FeedbackState()

    def update(self, st: FeedbackState, batch: Batch) -> FeedbackState:
        rb, split = batch.data, batch.split
        if not self.features or self.spec.data.label not in rb.schema.names:
            return st
        st.rows[split] = st.rows.get(split, 0) + rb.num_rows
        lab, valid = label_hashes(rb.column(self.spec.data.label), st.names)
        counts = st.labels.setdefault(split, {})
        for k, c in zip(*np.unique(lab[valid], return_counts=True)):
            counts[int(k)] = counts.get(int(k), 0) + int(c)
        # the labels are the same for every column: factorized once per batch, not once per table
        every = bool(valid.all())
        lcodes, luniq = sort_codes(*pd.factorize(lab if every else lab[valid]))
        rh = row_hashes(rb, self.features)
        keep_rows = split != "train"  # train's rows are only counted; feedback's are kept to name suspects
        row: dict[str, np.ndarray] = {}
        for col in self.features:
            arr = rb.column(col)
            vh = batch_column_hash(rb, col)
            if keep_rows:
                row[col] = vh[valid]
            self._count_values(st, split, col, arr, vh, valid if not every else None, lcodes, luniq)
            if col in self.numeric:
                x = np.asarray(pc.cast(arr, pa.float64()).fill_null(np.nan), dtype=np.float64)
                b = buckets(x)
                ok = ~np.isnan(x) if every else valid & ~np.isnan(x)
                okv = ok if every else ok[valid]  # which labelled rows have a number
                table = st.buckets.setdefault(split, {}).setdefault(col, PairTable())
                bc, bu = int_codes(b if ok.all() else b[ok])
                table += PairTable.from_codes(bc, bu, lcodes if okv.all() else lcodes[okv], luniq)
                if keep_rows:
                    row[f"\x1fbucket:{col}"] = np.where(ok, b, np.iinfo(np.int64).min)[valid]
        if split == "train":
            st.train_hashes.append(sorted_unique(rh[valid]))
        else:
            row["\x1ford"] = np.arange(batch.offset, batch.offset + rb.num_rows, dtype=np.int64)[valid]
            row["\x1fid"] = row_ids(batch, self.spec.data.id)[valid]
            row["\x1fhash"], row["\x1flabel"] = rh[valid], lab[valid]
            st.fb.append(row)
        return st

    @staticmethod
    def _count_values(st: FeedbackState, split: str, col: str, arr: pa.Array, vh: np.ndarray,
                      valid: np.ndarray | None, lcodes: np.ndarray, luniq: np.ndarray) -> None:
        """Fold one column's (value, label) counts and the display text of values first seen.

        ``lcodes`` are the codes of the labelled rows' labels into ``luniq``; ``valid`` marks
        those rows, None when every row is."""
        tables = st.values.setdefault(split, {})
        if col in tables and tables[col] is None:
            return  # already known to have too many values
        codes, uniq = pd.factorize(vh)
        if uniq.size > VALUE_CAP and (valid is None or count_distinct(vh[valid]) > VALUE_CAP):
            # too many values in this batch alone: the table would be dropped below anyway
            tables[col] = None
            st.display.pop(f"{split}\x1f{col}", None)
            return
        table = tables.setdefault(col, PairTable())
        assert table is not None
        # a value the table already holds has its display text: only the others are looked up
        # below (the display also holds values seen on unlabelled rows alone, so it is checked too)
        fresh = np.flatnonzero(~in_sorted(uniq, table.v))
        # the factorization just made serves the count too: codes of values seen only on
        # unlabelled rows go uncounted
        table += PairTable.from_codes(codes if valid is None else codes[valid], uniq, lcodes, luniq)
        if table.distinct_values() > VALUE_CAP:
            tables[col] = None
            st.display.pop(f"{split}\x1f{col}", None)
            return
        shown = st.display.setdefault(f"{split}\x1f{col}", {})
        fresh = fresh[np.fromiter((h not in shown for h in uniq[fresh].tolist()), bool, fresh.size)]
        if fresh.size:
            first = np.empty(uniq.size, np.int64)
            first[codes[::-1]] = np.arange(codes.size - 1, -1, -1)  # each value's first row
            texts = arr.take(pa.array(first[fresh])).to_pylist()
            # distinct hashes none of which is shown yet: no display value to choose between
            shown.update(zip(uniq[fresh].tolist(), map(show, texts)))

    def merge(self, a: FeedbackState, b: FeedbackState) -> FeedbackState:
        _add(a.rows, b.rows)
        for split, counts in b.labels.items():
            _add(a.labels.setdefault(split, {}), counts)
        merge_names(a.names, b.names)
        for split, cols in b.values.items():
            mine = a.values.setdefault(split, {})
            for col, table in cols.items():
                if table is None or (col in mine and mine[col] is None):
                    mine[col] = None
                    a.display.pop(f"{split}\x1f{col}", None)
                    continue
                merged = mine.setdefault(col, PairTable())
                assert merged is not None
                merged += table
                if merged.distinct_values() > VALUE_CAP:
                    mine[col] = None
                    a.display.pop(f"{split}\x1f{col}", None)
                else:
                    merge_names(a.display.setdefault(f"{split}\x1f{col}", {}), b.display.get(f"{split}\x1f{col}", {}))
        for split, bucket_cols in b.buckets.items():
            for col, pairs in bucket_cols.items():
                acc = a.buckets.setdefault(split, {}).setdefault(col, PairTable())
                acc += pairs
        a.train_hashes.extend(b.train_hashes)
        a.train_hashes = compact_sets(a.train_hashes, 64)
        a.fb.extend(b.fb)
        return a

    def finalize(self, st: FeedbackState, ctx: AuditContext) -> Outcome:
        if not self.features:
            raise Skip("train and feedback share no feature columns besides the label, id and time")
        if not st.fb:
            raise Skip("the feedback data has no labelled rows")
        fb = {k: np.concatenate([r[k] for r in st.fb]) for k in st.fb[0]} if st.fb else {}
        order = np.argsort(fb["\x1ford"], kind="stable")
        fb = {k: v[order] for k, v in fb.items()}
        labels = sorted(set(st.labels.get("train", {})) | set(st.labels.get("feedback", {})),
                        key=lambda h: (str(st.names.get(h)), h))
        rng = np.random.default_rng(SEED)
        ctx_ = screens.Ctx(st, labels, fb)
        metrics: dict[str, Any] = {"rows": dict(sorted(st.rows.items())), "feature_columns": len(self.features)}
        findings = []
        overall = screens.overall(ctx_, rng)
        metrics["overall"] = overall
        if overall["p"] < 0.05 and overall["tvd"] > 0:
            findings.append(self._overall_finding(overall))
        quarantine: dict[str, list[Any]] = {}
        triggers = self._named(screens.triggers(ctx_, self.features), fb, ctx)
        metrics["triggers"] = [{k: v for k, v in t.items() if k != "rows"} for t in triggers[:20]]
        for t in triggers[:10]:
            findings.append(self._trigger_finding(t))
        quarantine["trigger"] = screens.union(t["rows"] for t in triggers)
        active = np.ones(fb["\x1fid"].size, bool)
        active[quarantine["trigger"]] = False  # a trigger's rows would shift every region they fall in
        tested, flagged = screens.regions(ctx_, self.features, self.numeric, active)
        metrics["regions"] = {"tested": tested, "flagged": [{k: v for k, v in r.items() if k != "rows"}
                                                            for r in flagged],
                              "high_cardinality_columns": ctx_.overflowed()}
        for r in flagged:
            findings.append(self._region_finding(r))
        quarantine["label_shift_region"] = screens.union(r["rows"] for r in flagged)
        flood, replays, fmetrics = screens.floods(ctx_, st.train_hashes)
        metrics["duplicates"] = fmetrics
        quarantine["flood"], quarantine["replays_train"] = flood, replays
        findings.extend(self._flood_findings(fmetrics))
        ids = fb["\x1fid"]
        every = sorted(set().union(*quarantine.values()))
        metrics["quarantine_count"] = len(every)
        metrics["quarantine_counts"] = {k: len(v) for k, v in quarantine.items()}
        metrics["quarantine"] = {k: [py(ids[i]) for i in v[:QUARANTINE_IDS]] for k, v in quarantine.items()}
        return Outcome(findings=findings, metrics=metrics, charts=[Chart(
            title="Feedback rows to quarantine, by reason", labels=tuple(quarantine),
            values=tuple(float(len(v)) for v in quarantine.values()))])

    def _named(self, triggers: list[dict[str, Any]], fb: dict[str, np.ndarray],
               ctx: AuditContext) -> list[dict[str, Any]]:
        """Triggers whose value the state holds only as a hash (its feedback column passed
        VALUE_CAP, so no text was kept) get it read back from the feedback file at one of their
        rows: one pass over that column, for the few values that became findings."""
        unshown: dict[str, list[dict[str, Any]]] = {}
        for t in triggers:
            if t.pop("value_unshown"):
                unshown.setdefault(t["column"], []).append(t)
        for col, ts in unshown.items():
            at = [int(fb["\x1ford"][t["rows"][0]]) for t in ts]
            values = values_at(ctx.sources.datasets["feedback"], col, at)
            for t, o in zip(ts, at):
                t["value"] = show(values.get(o))
        return sorted(triggers, key=lambda t: (t["q"], t["column"], str(t["value"]))) if unshown else triggers

    def _loc(self, rows: list[Any]) -> Location:
        return Location(artifact=self.spec.display(self.sources.datasets["feedback"].uri), rows=tuple(rows))

    def _overall_finding(self, o: dict[str, Any]) -> Any:
        sev = Severity.HIGH if o["tvd"] >= 0.25 else Severity.MEDIUM if o["tvd"] >= 0.1 else Severity.LOW
        return self.finding(
            key=("overall",), severity=sev,
            title=f"Feedback label shares differ from train's (TVD {o['tvd']:.2f}, Cramér's V {o['cramers_v']:.3f})",
            description=(f"Label shares train {o['train']} vs feedback {o['feedback']}; chi-squared p = {o['p']:.2g}. "
                         "A shifted label mix in feedback is what mass label flipping looks like from afar."),
            remediation="Find which regions drive the shift (see the region findings) before retraining on it.",
            evidence=o, location=self._loc([]))

    def _region_finding(self, r: dict[str, Any]) -> Any:
        sev = Severity.HIGH if r["tvd"] >= 0.25 and r["feedback_rows"] >= 20 else Severity.MEDIUM
        ev = {k: v for k, v in r.items() if k != "rows"}
        return self.finding(
            key=("region", r["column"], r["region"]), severity=sev,
            title=(f"Feedback labels shift where {r['column']} = {r['region']}: "
                   f"'{r['label']}' {r['train_share']:.0%} in train → {r['feedback_share']:.0%} in feedback"),
            description=(f"{r['feedback_rows']} feedback rows in this region, TVD {r['tvd']:.2f} "
                         f"(95 % CI {r['tvd_ci']}), q = {r['q']:.2g} after Benjamini–Hochberg over "
                         "every region tested: a cluster of flipped labels."),
            remediation="Quarantine the region's feedback rows with the risen label; review their sources.",
            evidence=ev, location=Location(artifact=self._loc([]).artifact, column=r["column"],
                                           rows=tuple(r["sample_row_ids"])))

    def _trigger_finding(self, t: dict[str, Any]) -> Any:
        # reported values are rare in train (screens.triggers) or of unknown frequency there
        sev = Severity.HIGH if t["train_rows"] is not None else Severity.MEDIUM
        rare = ("absent from" if t["train_rows"] == 0 else "rare in" if t["train_rows"] is not None
                else "of unknown frequency in")
        ev = {k: v for k, v in t.items() if k != "rows"}
        return self.finding(
            key=("trigger", t["column"], t["value"]), severity=sev,
            title=(f"{t['column']} = {t['value']!r} is {rare} train but labels {t['support']} feedback rows "
                   f"'{t['label']}' ({t['purity']:.0%})"),
            description=(f"Binomial test against a base rate of {t['base_rate']:.0%} ({t['base']}), "
                         f"q = {t['q']:.2g}: a rare value that always comes with one label is the shape of "
                         "a backdoor trigger."),
            remediation="Quarantine these rows; find who submitted them; never retrain on them unreviewed.",
            evidence=ev, location=Location(artifact=self._loc([]).artifact, column=t["column"],
                                           rows=tuple(t["sample_row_ids"])))

    def _flood_findings(self, m: dict[str, Any]) -> list[Any]:
        out = []
        n = max(1, m["feedback_rows"])
        share = m["flood_rows"] / n
        if m["flood_groups"]:
            sev = Severity.HIGH if share >= 0.10 else Severity.MEDIUM if share >= 0.01 else Severity.LOW
            out.append(self.finding(
                key=("flood",), severity=sev,
                title=f"{m['flood_rows']} feedback rows ({share:.1%}) are copies of each other ({m['flood_groups']} groups)",
                description=f"Feature rows occurring at least {FLOOD_K} times in the feedback batch: a flood "
                            "of copies outweighs honest feedback at retraining.",
                remediation="Deduplicate feedback and rate-limit submissions per source.",
                evidence=m, location=self._loc(m["flood_sample_ids"])))
        if m["replays_share"] >= 0.05:
            out.append(self.finding(
                key=("replays",), severity=Severity.MEDIUM,
                title=f"{m['replays_train']} feedback rows ({m['replays_share']:.1%}) replay training rows",
                description="Feedback rows whose features equal a training row add no information.",
                remediation="Deduplicate feedback against the training data before retraining.",
                evidence=m, location=self._loc(m["replays_sample_ids"])))
        return out
