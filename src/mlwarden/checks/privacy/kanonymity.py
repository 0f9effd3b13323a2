"""data.privacy.k_anonymity — how many people the quasi-identifiers single out.

Rows are grouped into equivalence classes by a 64-bit hash of their quasi-identifier
values (:mod:`mlwarden.checks.data.rowhash`, so ``1`` = ``1.0`` and null is one value);
the state is a sorted array of class hashes with their counts — 16 bytes a class — for every
quasi-identifier alone, capped at :data:`MAX_AUX_CLASSES` (over it, dropped and reported as
not computed). The whole combination and each combination with one quasi-identifier dropped
are the per-row state the answer needs (their classes grow with the rows): 12 bytes a class,
plus for the whole combination 8 a quasi-identifier (its values' hashes, for the population
model), each in a :class:`~mlwarden.checks.data.keyruns.KeyRuns` that spills to disk past
64 MB (16 MB for a drop-one), so the main process holds at most that much of it; it is read
back one key bucket at a time. :data:`MAX_CLASSES` bounds the disk they may take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..data.rowhash import batch_column_hash, row_hashes
from .classcounts import ClassCounts, FullClasses
from .detectors import snake
from .kanon_risk import RANK, population_summary, strength

MAX_CLASSES = 20_000_000
"""Classes counted exactly for the full combination (≈ 1.2 GB spilled at 6 quasi-identifiers, at most
64 MB of it in memory); more, and k isn't computed exactly."""
MAX_AUX_CLASSES = 1_000_000
"""Classes kept for each single column (≈ 16 MB each)."""
DROP_SPILL_BYTES = 16 << 20
"""Bytes of each drop-one combination's classes held in memory before they spill."""
THRESHOLDS = (2, 5, 10)
"""Share of rows in classes smaller than each of these k is reported (k < 2: unique rows)."""
SAMPLE_ROWS = 1000
"""Rows (smallest ordinals) whose class hash is kept, to name up to 20 rows of small classes."""
SAMPLE_IDS = 20
QI_TOKENS = frozenset({"zip", "zipcode", "postal", "postcode", "dob", "birth", "birthdate", "birthday", "age",
                       "sex", "gender", "race", "ethnicity", "ethnic", "city", "county", "town", "nationality",
                       "marital"})
"""Column-name words that mark a quasi-identifier when the spec names none."""
_SCALE = ((0.10, Severity.HIGH), (0.01, Severity.MEDIUM), (0.0, Severity.LOW))


def severity_for(share: float) -> Severity | None:
    """Share of rows in classes with k < 5 → severity (None: every class has 5 rows or more)."""
    if share <= 0:
        return None
    return next(sev for bound, sev in _SCALE if share > bound)


@dataclass
class SplitState:
    rows: int
    full: FullClasses
    drop: dict[str, FullClasses]
    single: dict[str, ClassCounts]
    sample: list[tuple[int, Any, int]]  # (ordinal, row id, class hash) of the first rows


def quasi_identifiers(spec: Any, columns: tuple[str, ...]) -> tuple[list[str], str]:
    """The quasi-identifier columns and where they come from (spec, or the name heuristic)."""
    declared = spec.data.quasi_identifiers
    if declared:
        return [c for c in declared if c in columns], "spec (data.quasi_identifiers)"
    reserved = {spec.data.id, spec.data.label, spec.data.time} - {None}
    named = {c for c in columns if QI_TOKENS & set(snake(c).split("_"))}
    chosen = sorted((named | set(spec.data.sensitive)) & set(columns) - reserved)
    return chosen, "column names and data.sensitive"


@register
class KAnonymity(FoldCheck):
    """Measures k-anonymity of the training data over its quasi-identifiers (zip, birth date, sex…).

    **What it finds.** Rows whose combination of quasi-identifiers — attributes that are
    not secret but, together, single a person out, like zip code, birth date and sex —
    is shared by fewer than 5 rows. Reports k (the smallest class), the number of classes,
    the share of rows in classes smaller than 2 (unique rows), 5 and 10, per column the
    distinct values and unique rows, and a drop-one analysis: the share with k < 5 when
    each quasi-identifier is left out, naming the one that identifies most. Quasi-identifiers
    are taken from columns named like zip/postcode, birth/dob/age, sex/gender,
    race/ethnicity, city/county/town, nationality or marital status, plus ``data.sensitive``
    (demographics are public and linkable); the id, label and time columns are never
    quasi-identifiers. ``state`` is left out (too often not a place). Train and feedback
    (tomorrow's training data) are measured separately. The full combination is counted
    exactly up to 20 000 000 classes (spilled to disk past 64 MB), and so is each drop-one
    combination; the per-column counts up to 1 000 000 values; beyond that the report says the
    figure was not computed and gives a lower bound instead.

    **Population risk.** Uniqueness in a sample grows as the sample shrinks, so the check also
    estimates, as statistical disclosure control does (a Poisson log-linear model of the
    quasi-identifiers, as sdcMicro's ``modRisk``), how many rows are unique — and how many in
    groups under 5 — among everyone the data was drawn from: ``data.population_size`` people,
    or, when the spec doesn't say, the rows of the measured splits together (the smallest
    population the data fit, so the estimate errs high). Sample and population figures are
    reported side by side. Each quasi-identifier is rated strong (fine location like a zip
    code, a full birth date, any column with over 1,000 values), medium (coarse place, birth
    year) or weak (age in years, sex, race, marital status).

    **Severity.** By the estimated population share of rows in groups under 5: high above
    10 %, medium above 1 %, low otherwise (also when only the sample has small groups); high
    needs a strong quasi-identifier — coarse ones alone are at most medium. No finding when
    every class in the sample has at least 5 rows.

    **Why it matters.** 87 % of Americans are unique by zip code, birth date and sex
    (Sweeney, 2000): such rows can be linked to a named person through public records, and a
    model trained on them leaks more about them under membership-inference and inversion
    attacks (OWASP ML03, ML04). Anonymization laws judge data by exactly this risk.

    **How to fix.** Generalize (zip to its first 3 digits, birth date to year or age band),
    suppress the rare combinations, or drop quasi-identifiers the model does not need —
    start with the one the drop-one analysis names. Re-run the audit to confirm k ≥ 5.
    """

    id = "data.privacy.k_anonymity"
    row_finalize = True
    title = "Quasi-identifiers don't single people out (k-anonymity)"
    needs = ("train",)
    stage = "data"
    references = ("OWASP-ML03", "OWASP-ML04", "AML.T0024.000", "AML.M0007", "NIST-MEASURE")
    splits = ("train", "feedback")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.qis: dict[str, list[str]] = {}
        self.source = ""
        for split in self.splits:
            if split in sources.datasets:
                self.qis[split], self.source = quasi_identifiers(spec, sources.columns(split))

    def columns(self, split: str) -> list[str]:
        cols = list(self.qis.get(split, []))
        idcol = self.spec.data.id
        if idcol and idcol in self.sources.columns(split) and idcol not in cols:
            cols.append(idcol)
        return cols

    def init(self) -> dict[str, SplitState]:
        return {}

    def _fresh(self, split: str) -> SplitState:
        qis = self.qis[split]
        return SplitState(rows=0, full=FullClasses(width=len(qis)),
                          drop={q: FullClasses(width=0, limit=DROP_SPILL_BYTES) for q in qis} if len(qis) > 1 else {},
                          single={q: ClassCounts(MAX_AUX_CLASSES) for q in qis}, sample=[])

    def update(self, state: dict[str, SplitState], batch: Batch) -> dict[str, SplitState]:
        qis = self.qis.get(batch.split)
        if not qis:
            return state
        st = state.setdefault(batch.split, self._fresh(batch.split))
        rb = batch.data
        st.rows += rb.num_rows
        per_col = {q: batch_column_hash(rb, q) for q in qis}
        hashed = pa.record_batch({q: pa.array(h) for q, h in per_col.items()})
        full = row_hashes(hashed, qis)
        st.full.add(full, np.column_stack([per_col[q] for q in qis]))
        for q in st.drop:
            st.drop[q].add(row_hashes(hashed, [c for c in qis if c != q]))
        for q in st.single:
            st.single[q].add(per_col[q])
        if len(st.sample) < SAMPLE_ROWS or batch.offset < st.sample[-1][0]:
            take = min(SAMPLE_ROWS, rb.num_rows)
            idcol = self.spec.data.id
            ids = (rb.column(idcol).slice(0, take).to_pylist() if idcol and idcol in rb.schema.names
                   else [batch.offset + i for i in range(take)])
            st.sample = _first(st.sample + [(batch.offset + i, ids[i], int(full[i])) for i in range(take)])
        return state

    def merge(self, a: dict[str, SplitState], b: dict[str, SplitState]) -> dict[str, SplitState]:
        for split, sb in b.items():
            sa = a.get(split)
            if sa is None:
                a[split] = sb
                continue
            sa.rows += sb.rows
            sa.full.absorb(sb.full)
            for q in sa.drop:
                sa.drop[q].absorb(sb.drop[q])
            for q in sa.single:
                sa.single[q].absorb(sb.single[q])
            sa.sample = _first(sa.sample + sb.sample)
        return dict(sorted(a.items()))

    def finalize(self, state: dict[str, SplitState], ctx: AuditContext) -> Outcome:
        if not any(self.qis.values()):
            raise Skip("no quasi-identifier columns: none is named like zip, birth date, age, sex, race or city, "
                       "and data.sensitive is empty")
        metrics: dict[str, Any] = {"quasi_identifiers": {s: q for s, q in self.qis.items()}, "source": self.source,
                                   "max_classes": MAX_CLASSES, "max_aux_classes": MAX_AUX_CLASSES,
                                   "thresholds": list(THRESHOLDS), "splits": {}}
        declared = self.spec.data.population_size
        measured = sum(st.rows for st in state.values())
        metrics["population_size"] = declared or measured
        metrics["population_source"] = ("spec (data.population_size)" if declared else
                                        "no data.population_size: the rows of the measured splits, the smallest "
                                        "population the data fit, so the risk estimate is an upper bound")
        findings, charts = [], []
        for split, st in sorted(state.items()):
            m, sample_counts = self._split_metrics(st, max(metrics["population_size"], st.rows), self.qis[split])
            st.full.close()
            metrics["splits"][split] = m
            finding = self._finding(split, st, m, sample_counts)
            if finding is not None:
                findings.append(finding)
            if "share_k_lt" in m:
                charts.append(Chart(title=f"data.{split}: rows in classes smaller than k",
                                    labels=tuple(f"k < {k}" for k in THRESHOLDS),
                                    values=tuple(100.0 * m["share_k_lt"][str(k)] for k in THRESHOLDS), unit="%"))
        return Outcome(findings=findings, metrics=metrics, charts=charts)

    def _split_metrics(self, st: SplitState, population: int,
                       qis: list[str]) -> tuple[dict[str, Any], dict[int, int]]:
        n = st.rows
        m: dict[str, Any] = {"rows": n}
        per_col: dict[str, dict[str, Any]] = {}
        for q, cc in sorted(st.single.items()):
            cc.compact()
            per_col[q] = ({"over_budget": True, "distinct": f"> {cc.cap}"} if cc.over else
                          {"distinct": int(cc.keys.size), "unique_rows": int(cc.counts[cc.counts == 1].size),
                           "share_unique": _share(cc.counts[cc.counts == 1].size, n)})
            per_col[q]["strength"], per_col[q]["kind"] = strength(set(snake(q).split("_")),
                                                                  None if cc.over else int(cc.keys.size))
        m["per_column"] = per_col
        m["strongest"] = max((c["strength"] for c in per_col.values()), key=lambda s: RANK[s], default="weak")
        marginals = [(np.empty(0, np.uint64), np.empty(0, np.int64)) if st.single[q].over
                     else (st.single[q].keys, st.single[q].counts) for q in qis]
        full = st.full.stats(marginals, [h for _, _, h in st.sample], n, population, THRESHOLDS)
        if full["classes"] > MAX_CLASSES:
            m["over_budget"] = True
            m["classes"] = f"> {MAX_CLASSES}"
            m["share_k_lt_5_at_least"] = round(max(0.0, (MAX_CLASSES + 1 - n / 5) / n), 6) if n else 0.0
            return m, {}
        m.update({"classes": full["classes"], "k": full["k"], "unique_rows": full["unique_rows"],
                  "share_k_lt": {str(k): _share(full["lt"][k], n) for k in THRESHOLDS}})
        drop = {}
        for q, fc in sorted(st.drop.items()):
            d = fc.stats(None, [], n, population, (2, 5))
            fc.close()
            drop[q] = ({"over_budget": True} if d["classes"] > MAX_CLASSES else
                       {"k": d["k"], "classes": d["classes"], "share_k_lt_5": _share(d["lt"][5], n),
                        "unique_rows": d["lt"][2]})
        m["drop_one"] = drop
        if n:
            uniques, small = full["population"]
            m["population"] = population_summary(uniques, small, n, population)
        # the QI whose removal shrinks the k < 5 share most; unique rows break ties (when every
        # drop-one combination still leaves all rows under 5, the unique rows still move)
        gains = sorted(((m["share_k_lt"]["5"] - d["share_k_lt_5"], m["unique_rows"] - d["unique_rows"], q)
                        for q, d in drop.items() if "k" in d), key=lambda g: (-g[0], -g[1], g[2]))
        m["most_identifying"] = gains[0][2] if gains and (gains[0][0] > 0 or gains[0][1] > 0) else None
        return m, full["sample_counts"]

    def _finding(self, split: str, st: SplitState, m: dict[str, Any], counts: dict[int, int]) -> Any:
        qis = self.qis[split]
        uri = self.spec.display(self.sources.datasets[split].uri)
        id_column = self.spec.data.id if self.spec.data.id in self.sources.columns(split) else "(row number)"
        if m.get("over_budget"):
            bound = m["share_k_lt_5_at_least"]
            at_least = max(severity_for(bound) or Severity.MEDIUM, Severity.MEDIUM, key=lambda s: s.rank)
            return self.finding(
                key=(split, "over-budget"), severity=at_least,
                title=f"data.{split}: more than {MAX_CLASSES:,} distinct quasi-identifier combinations; "
                      "k not computed exactly",
                description=(f"The quasi-identifiers {', '.join(qis)} take more than {MAX_CLASSES:,} distinct "
                             f"combinations over {st.rows} rows, too many to count within the check's memory "
                             f"budget. So many combinations means fine-grained quasi-identifiers: at least "
                             f"{bound:.1%} of rows are in classes smaller than 5."),
                remediation="Generalize the finest quasi-identifiers (see per_column in the metrics) and re-run.",
                evidence={"split": split, "quasi_identifiers": qis, "rows": st.rows,
                          "share_k_lt_5_at_least": bound, "per_column": m["per_column"]},
                location=Location(artifact=uri))
        small = [rid for _, rid, h in st.sample if counts.get(h, 0) < 5][:SAMPLE_IDS]
        share5 = m["share_k_lt"]["5"]
        if share5 <= 0:
            return None
        pop = m["population"]
        severity = severity_for(pop["share_k_lt_5"]) or Severity.LOW
        strong = m["strongest"] == "strong"
        if not strong and severity.rank > Severity.MEDIUM.rank:
            severity = Severity.MEDIUM  # coarse quasi-identifiers alone are shared by many and link poorly
        worst = m.get("most_identifying")
        hint = f" Dropping or generalizing {worst!r} helps most." if worst else ""
        kinds = ", ".join(f"{q} ({m['per_column'][q]['kind']}, {m['per_column'][q]['strength']})" for q in qis)
        census = pop["sampling_fraction"] >= 1.0
        where = (f"the population of {pop['population_size']:,} (these rows are all of it)" if census else
                 f"a population of {pop['population_size']:,} (sampling fraction {pop['sampling_fraction']:.3g})")
        return self.finding(
            key=(split,), severity=severity,
            title=(f"data.{split}: {share5:.1%} of rows are in groups of fewer than 5 by {', '.join(qis)} "
                   f"(k = {m['k']}); estimated {pop['share_k_lt_5']:.1%} in {where.split(' (')[0]}"
                   + ("" if strong else "; coarse quasi-identifiers only")),
            description=(f"Over the quasi-identifiers {', '.join(qis)}, {m['unique_rows']} of {st.rows} rows "
                         f"are unique in this split and {share5:.1%} share their combination with fewer than 4 "
                         f"others. What re-identifies a person is uniqueness among everyone who could be in the "
                         f"data, not in the sample: in {where}, a log-linear model of the quasi-identifiers "
                         f"estimates {pop['estimated_population_uniques']:.0f} of these rows unique "
                         f"({pop['share_unique']:.1%}) and {pop['share_k_lt_5']:.1%} in groups smaller than 5. "
                         f"Quasi-identifiers: {kinds}; a high needs a strong one (fine location, full birth "
                         f"date, a column with over 1,000 values). Such rows can be re-identified by linking "
                         f"with public records, and a model trained on them leaks more about them.{hint}"),
            remediation=("Generalize quasi-identifiers (zip to 3 digits, birth date to year or age band), suppress "
                         "rare combinations, or drop the ones the model doesn't need; aim for k ≥ 5. Set "
                         "data.population_size to the number of people the data was drawn from for a sharper "
                         "estimate."),
            evidence={"split": split, "quasi_identifiers": qis, "source": self.source, "rows": st.rows,
                      "k": m["k"], "classes": m["classes"], "unique_rows": m["unique_rows"],
                      "share_k_lt": m["share_k_lt"], "population": pop,
                      "strength": {q: m["per_column"][q]["strength"] for q in qis},
                      "most_identifying": worst, "sample_row_ids": small, "id_column": id_column},
            location=Location(artifact=uri, rows=tuple(small)))


def _share(count: Any, n: int) -> float:
    return round(int(count) / n, 6) if n else 0.0


def _first(sample: list[tuple[int, Any, int]]) -> list[tuple[int, Any, int]]:
    return sorted(sample, key=lambda s: s[0])[:SAMPLE_ROWS]
