"""fairness.proxies — features that stand in for a protected attribute.

For every feature and sensitive attribute the fold keeps counts per (value bin, group,
half); :mod:`.bins` says how values fall into bins (exact values up to ``EXACT_BINS``
distinct ones, then log-scale bins for numbers and hash buckets for text, missing
values a bin of their own).

Binning only merges values, so the AUC and information read from bins are lower bounds
of what the exact values allow. *half* splits rows in two by a hash of their content: a
predictor is fitted on one half and scored on the other (and the other way round), so a
column of unique values (an id) cannot look like a perfect proxy by memorizing rows, and
copies of a row (oversampling) never sit on both sides.

The feature-set classifier needs rows, not counts: the fold keeps a bottom-k sample
(the ``SAMPLE_ROWS`` rows of lowest seeded hash of their content), which is the same
whatever the partitioning and merge order; its cross-validation keeps copies of a row in
one fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...fairness.groups import MISSING, group_codes
from ...fairness.predict import Predictor
from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from ..data.rowhash import row_hashes
from .bins import (EXACT_BINS, GOLDEN, HASH_BUCKETS, PairCounts, add_batch, column_kind, halves, merge_counts, mix,
                   table)

SMOOTHING = 1.0
"""Pseudo-rows of the prior added to every bin when estimating P(group | bin)."""


def leakage(m: np.ndarray, groups: list[str], min_rows: int) -> dict[str, Any]:
    """Cross-fitted one-vs-rest AUC per group and the held-out information share.

    For each half, P(group | bin) is estimated on the other half (smoothed toward the
    group prior) and scored on this one. ``nmi`` is 1 − cross-entropy / prior entropy on
    held-out rows: the share of uncertainty about the attribute the feature removes.
    """
    aucs: dict[str, list[float]] = {g: [] for g in groups}
    ce = ce0 = 0.0
    for h in (0, 1):
        fit, ev = m[:, :, 1 - h], m[:, :, h]
        prior = (fit.sum(0) + 1.0) / (fit.sum() + len(groups))
        post = (fit + SMOOTHING * prior) / (fit.sum(1, keepdims=True) + SMOOTHING)
        ce -= float((ev * np.log(post)).sum())
        ce0 -= float((ev.sum(0) * np.log(prior)).sum())
        for j, g in enumerate(groups):
            auc = _auc(post[:, j], ev[:, j], ev.sum(1) - ev[:, j])
            if not math.isnan(auc):
                aucs[g].append(auc)
    per_group = {g: round(float(np.mean(v)), 4) for g, v in aucs.items() if v}
    sizes = m.sum(axis=(0, 2))
    judged = {g: a for g, a in per_group.items() if sizes[groups.index(g)] >= min_rows}
    best = max(judged, key=lambda g: (judged[g], g)) if judged else None
    nmi = max(0.0, 1.0 - ce / ce0) if ce0 > 0 else 0.0
    return {"auc": judged.get(best, math.nan) if best else math.nan, "group": best, "auc_by_group": per_group,
            "nmi": round(nmi, 4)}


def _auc(score: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann–Whitney AUC from per-bin positive/negative counts (ties count half)."""
    P, N = pos.sum(), neg.sum()
    if P == 0 or N == 0:
        return math.nan
    uniq, inv = np.unique(np.round(score, 12), return_inverse=True)
    p = np.bincount(inv, weights=pos, minlength=uniq.size)
    n = np.bincount(inv, weights=neg, minlength=uniq.size)
    below = np.concatenate([[0.0], np.cumsum(n)[:-1]])
    return float((p * (below + 0.5 * n)).sum() / (P * N))


SAMPLE_ROWS = 10_000
# Three folds of the ≤ 10,000-row sample: on the 1M bench table the AUCs move in the third
# decimal against five folds (race 0.9241 -> 0.9234), the findings are the same, and the
# check takes 3.5 s instead of 4.7 s (nine boosted fits instead of fifteen).
CV_FOLDS = 3
MEDIUM_AUC, HIGH_AUC, MEDIUM_NMI = 0.8, 0.95, 0.3
MAX_LISTED = 15
MAX_CATEGORIES = 250
"""Text columns with more distinct values are left out of the feature-set classifier (ids, free text)."""


def proxy_severity(auc: float, nmi: float) -> Severity | None:
    """The documented thresholds: AUC ≥ 0.95 high; AUC ≥ 0.8 or information ≥ 0.3 medium."""
    if auc >= HIGH_AUC:
        return Severity.HIGH
    if auc >= MEDIUM_AUC or nmi >= MEDIUM_NMI:
        return Severity.MEDIUM
    return None


@dataclass
class ProxyState:
    counts: dict[tuple[str, str], PairCounts] = field(default_factory=dict)
    coarse: set[tuple[str, str]] = field(default_factory=set)
    sample: pa.Table | None = None
    rows: int = 0
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    """Attribute → group → rows."""


class BinFold(FoldCheck):
    """The (bin, group, half) counts of some features against the sensitive attributes.

    Not registered: ``fairness.proxies`` extends it, and ``fairness.counterfactual`` runs
    it through the engine to find the proxies it probes.
    """

    id = "fairness.proxies.bins"
    title = "Feature-by-group counts"
    stage = "data"
    splits = ("train",)
    keep_sample = False

    def __init__(self, spec: Any, sources: Any, features: list[str] | None = None, split: str = "train") -> None:
        super().__init__(spec, sources)
        self.attrs = list(spec.data.sensitive)
        self.splits = (split,)  # type: ignore[misc]
        cols = sources.columns(split)
        skip = set(self.attrs) | {spec.data.label, spec.data.id, spec.data.prediction, spec.data.score} - {None}
        self.content = [c for c in cols if c not in skip]
        """Columns whose values identify a row's content (its half, its sampling priority)."""
        self.features = self.content if features is None else [c for c in features if c in self.content]
        self.seed = spec.fairness.seed

    def columns(self, split: str) -> list[str]:
        return [*self.content, *(a for a in self.attrs if a in self.sources.columns(split))]

    def init(self) -> ProxyState:
        return ProxyState()

    def update(self, state: ProxyState, batch: Batch) -> ProxyState:
        rb = batch.data
        content = row_hashes(rb, self.content)
        state.rows += rb.num_rows
        for attr in self.attrs:
            if attr in rb.schema.names:
                codes, labels = group_codes(rb, attr)
                cell = state.groups.setdefault(attr, {})
                for g, n in zip(labels, np.bincount(codes, minlength=len(labels)).tolist()):
                    if n:
                        cell[g] = cell.get(g, 0) + n
        add_batch(state.counts, state.coarse, rb, self.features, self.attrs, halves(content))
        if self.keep_sample:
            state.sample = _bottom_k(state.sample, _with_priority(rb, content, self.seed))
        return state

    def merge(self, a: ProxyState, b: ProxyState) -> ProxyState:
        merge_counts(a.counts, a.coarse, b.counts, b.coarse)
        a.rows += b.rows
        for attr, cell in b.groups.items():
            mine = a.groups.setdefault(attr, {})
            for g, n in cell.items():
                mine[g] = mine.get(g, 0) + n
        if self.keep_sample:
            a.sample = _bottom_k(a.sample, b.sample)
        return a

    def finalize(self, state: ProxyState, ctx: AuditContext) -> Outcome:
        raise NotImplementedError

    def leaks(self, state: ProxyState) -> dict[str, list[dict[str, Any]]]:
        """Per attribute, every feature's leakage, strongest first."""
        out: dict[str, list[dict[str, Any]]] = {a: [] for a in self.attrs}
        for (col, attr), cell in sorted(state.counts.items()):
            keys, groups, m = table(cell)
            if len(groups) < 2:
                continue
            r = leakage(m, groups, self.spec.fairness.min_group_size)
            binning = ("log-scale bins" if any(isinstance(k, tuple) and k[0] == "n" for k in keys)
                       else f"{HASH_BUCKETS} hash buckets" if any(isinstance(k, tuple) for k in keys)
                       else "exact values")
            out[attr].append({"column": col, **r, "bins": len(keys), "binning": binning})
        for rows in out.values():
            rows.sort(key=lambda r: (-(r["auc"] if not math.isnan(r["auc"]) else 0.0), -r["nmi"], r["column"]))
        return out


def _with_priority(rb: pa.RecordBatch, content: np.ndarray, seed: int) -> pa.Table:
    with np.errstate(over="ignore"):
        prio = mix(content + np.uint64(seed) * GOLDEN)
    return pa.Table.from_batches([rb]).append_column("__priority", pa.array(prio, pa.uint64()))


def _bottom_k(a: pa.Table | None, b: pa.Table | None) -> pa.Table | None:
    """The SAMPLE_ROWS rows of lowest priority: deterministic and mergeable in any order (rows that
    tie on priority have the same content, so which copy stays does not matter)."""
    if a is None or b is None:
        t = a if b is None else b
    else:
        # a full side's largest priority bounds what the other side can add: most rows of a
        # large split are dropped here, before the concatenation and the sort
        for full, other in ((a, b), (b, a)):
            if full.num_rows >= SAMPLE_ROWS:
                cutoff = pc.max(full.column("__priority"))
                kept = other.filter(pc.less_equal(other.column("__priority"), cutoff))
                a, b = (full, kept) if full is a else (kept, full)
                break
        t = pa.concat_tables([a, b], promote_options="permissive")
    if t is None or t.num_rows <= SAMPLE_ROWS:
        return t
    order = pc.sort_indices(t, sort_keys=[("__priority", "ascending")])
    return t.take(order[:SAMPLE_ROWS])


@register
class Proxies(BinFold):
    """Finds features that stand in for a protected attribute, alone or together.

    **What it finds.** For every sensitive attribute and every other column of the
    training data, how well the column alone predicts the attribute: the one-vs-rest AUC
    of the best group (``group``) and the share of the attribute's uncertainty it removes
    (``nmi``, a held-out normalized mutual information), both cross-fitted on two halves
    of the rows so that a column of unique values never looks like a proxy. Columns with
    more than 128 distinct values are binned (numbers on a log scale, bins at most 12.5 %
    wide; text into 64 hash buckets), which can only lower the figures. Then the feature
    set: a gradient-boosted classifier, 3-fold cross-validated, predicting the attribute
    from all the other columns, with and without the named proxies. The classifier reads
    a sample of at most 10,000 training rows, chosen by a seeded hash of their content
    (the report says when it sampled); the per-column figures use every row.

    **Severity.** A column with AUC ≥ 0.95 is a near-perfect proxy: high (medium when the
    model is known not to read it). AUC ≥ 0.8 or information ≥ 0.3: medium. The feature
    set without the named proxies: medium from AUC 0.8, high from 0.95.

    **Why it matters.** Dropping the protected column does not stop a model from using
    the attribute when other columns encode it (an indicator column, a postcode, a
    first name): the model discriminates through the proxy, and the missing column only
    hides it from the audit.

    **How to fix.** Remove near-perfect proxies from the model's features (and one-hot
    copies of the attribute); for partial proxies, measure the model's disparity and its
    counterfactual behavior (``fairness.model_disparity``, ``fairness.counterfactual``) and
    mitigate there (reweighing, constraints, per-group thresholds with legal advice).
    """

    id = "fairness.proxies"
    title = "No feature stands in for a protected attribute"
    needs = ("train", "sensitive")
    stage = "data"
    long_finalize = True  # cross-validated boosted fits per sensitive attribute
    references = ("NIST-MAP", "NIST-MEASURE")
    keep_sample = True

    def finalize(self, state: ProxyState, ctx: AuditContext) -> Outcome:
        if not self.features:
            raise Skip("the training data has no column besides the sensitive attributes, label and id")
        used = _model_features(self.spec, list(self.sources.columns("train")))
        sample = state.sample
        if sample is not None:
            sample = sample.take(pc.sort_indices(sample, sort_keys=[("__priority", "ascending")]))
        metrics: dict[str, Any] = {
            "features": len(self.features),
            "thresholds": {"high_auc": HIGH_AUC, "medium_auc": MEDIUM_AUC, "medium_nmi": MEDIUM_NMI},
            "binning": (f"exact up to {EXACT_BINS} distinct values; past that numbers in log-scale bins (≤ 12.5 % "
                        f"wide) and text in {HASH_BUCKETS} hash buckets — figures from bins are lower bounds"),
            "model_features": None if used is None else len(used),
            "attributes": {},
        }
        findings, charts = [], []
        for attr, leaks in self.leaks(state).items():
            named = [r for r in leaks if proxy_severity(r["auc"], r["nmi"]) is not None]
            fset: dict[str, Any] = (
                _feature_set(sample, state.rows, self.features, attr, [r["column"] for r in named], self.seed)
                if sample is not None else {"skipped": "no training rows"})
            metrics["attributes"][attr] = {
                "proxies": [r["column"] for r in named],
                "features": [_row(r, used) for r in leaks[:MAX_LISTED]],
                "feature_set": fset,
            }
            for r in named:
                findings.append(self._finding(attr, r, used))
            resid = fset.get("without_proxies_cv_auc", fset.get("cv_auc")) if named else fset.get("cv_auc")
            if resid is not None and resid >= MEDIUM_AUC:
                findings.append(self._set_finding(attr, fset, resid, [r["column"] for r in named]))
            top = [r for r in leaks[:10] if not math.isnan(r["auc"])]
            if top:
                charts.append(Chart(title=f"Predicting {attr} from one column: AUC (0.5 = no signal)",
                                    labels=tuple(r["column"] for r in top), values=tuple(r["auc"] for r in top)))
        return Outcome(findings=findings, metrics=metrics, charts=charts)

    def _finding(self, attr: str, r: dict[str, Any], used: list[str] | None) -> Any:
        sev = proxy_severity(r["auc"], r["nmi"])
        assert sev is not None
        uses = None if used is None else r["column"] in used
        if uses is False and sev is Severity.HIGH:
            sev = Severity.MEDIUM
        col, g, auc = r["column"], r["group"], r["auc"]
        near = " (a near-perfect proxy)" if auc >= HIGH_AUC else ""
        model = {True: "The model reads this column.", False: "The model does not read this column (yet).",
                 None: "Whether the model reads it is unknown (no model artifact)."}[uses]
        return self.finding(
            key=("proxy", attr, col), severity=sev,
            title=f"{col} reveals {attr}{near}: AUC {auc:.2f} for {attr}={g}",
            description=(f"On held-out rows, {col} alone tells {attr}={g} apart from the other groups with an AUC of "
                         f"{auc:.3f} and removes {r['nmi']:.0%} of the uncertainty about {attr} ({r['binning']}, "
                         f"{r['bins']} bins). A model that reads {col} can discriminate by {attr} even with {attr} "
                         f"itself dropped. {model}"),
            remediation=(f"Drop {col} from the model's features if it is a copy or encoding of {attr}; otherwise "
                         "check that the model's decisions do not depend on it (fairness.counterfactual, "
                         "fairness.model_disparity) and mitigate there."),
            evidence={"attribute": attr, "column": col, "group": g, "auc": auc, "auc_by_group": r["auc_by_group"],
                      "nmi": r["nmi"], "binning": r["binning"], "bins": r["bins"], "model_reads_it": uses},
            location=Location(artifact=self.spec.display(self.sources.datasets["train"].uri), column=col))

    def _set_finding(self, attr: str, fset: dict[str, Any], resid: float, named: list[str]) -> Any:
        sev = Severity.HIGH if resid >= HIGH_AUC else Severity.MEDIUM
        without = f" even without {', '.join(named[:5])}" if named else ""
        return self.finding(
            key=("feature-set", attr), severity=sev,
            title=f"The other features together reveal {attr}{without}: CV AUC {resid:.2f}",
            description=(f"A gradient-boosted classifier predicts {attr} from the non-sensitive columns{without} with a "
                         f"{CV_FOLDS}-fold cross-validated macro AUC of {resid:.3f} on {fset['rows']} training rows"
                         f"{' (a seeded sample)' if fset.get('sampled') else ''}. No single column carries it, so "
                         "dropping columns will not remove it: a model can rebuild the attribute from the rest."),
            remediation=("Measure the model's disparity and counterfactual behavior (fairness.model_disparity, "
                         "fairness.counterfactual) and mitigate in training (reweighing, fairness constraints); "
                         "document the attribute as recoverable from the data."),
            evidence={"attribute": attr, **fset},
            location=Location(artifact=self.spec.display(self.sources.datasets["train"].uri), column=attr))


def _row(r: dict[str, Any], used: list[str] | None) -> dict[str, Any]:
    out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "auc_by_group"}
    if used is not None:
        out["model_reads_it"] = r["column"] in used
    return out


def _model_features(spec: Any, columns: list[str]) -> list[str] | None:
    """The columns the model reads, when a model artifact says so; None when unknown."""
    if not (spec.model and spec.model.artifact) or spec.data.prediction:
        return None
    try:
        return Predictor(spec).feature_columns(columns)
    except Exception:  # an unsafe or broken model is the artifact checks' finding, not this one's
        return None


def _feature_set(sample: pa.Table, total: int, features: list[str], attr: str, proxies: list[str],
                 seed: int) -> dict[str, Any]:
    """Cross-validated AUC of predicting ``attr`` from all features (and without ``proxies``)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from threadpoolctl import threadpool_limits

    codes, labels = group_codes(sample, attr)
    y = np.array(labels, dtype=object)[codes]
    keep = y != MISSING
    names, counts = np.unique(y[keep], return_counts=True)
    small = set(names[counts < 2 * CV_FOLDS].tolist())
    keep &= ~np.isin(y, list(small))
    classes = sorted(set(y[keep].tolist()))
    out: dict[str, Any] = {"rows": int(keep.sum()), "sampled": total > sample.num_rows, "sample_limit": SAMPLE_ROWS,
                           "groups_too_small": sorted(small)}
    if len(classes) < 2:
        out["skipped"] = "fewer than two groups with enough rows"
        return out
    X, names_used, cats, dropped = _matrix(sample, features)
    out["dropped_columns"] = dropped
    yk = np.searchsorted(classes, y[keep])
    copies = sample.column("__priority").to_numpy()[keep]  # equal content, equal priority: one fold
    folds = _group_folds(copies, yk, seed)

    def cv(cols: list[int]) -> tuple[float, dict[str, float]]:
        model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, early_stopping=False,
                                               random_state=seed, categorical_features=[cats[i] for i in cols])
        # one OpenMP thread: the audit's own workers already use the cores, and OpenMP's
        # spin-waiting on a busy machine makes boosting dozens of times slower
        with threadpool_limits(1, user_api="openmp"):
            proba = cross_val_predict(model, X[keep][:, cols], yk, cv=folds, method="predict_proba")
        per = {c: round(float(roc_auc_score(yk == i, proba[:, i])), 4) for i, c in enumerate(classes)}
        return round(float(np.mean(list(per.values()))), 4), per

    if not names_used:
        out["skipped"] = "no usable feature column"
        return out
    out["cv_auc"], out["cv_auc_by_group"] = cv(list(range(len(names_used))))
    if proxies:
        rest = [i for i, c in enumerate(names_used) if c not in proxies]
        out["without_proxies"] = proxies
        out["without_proxies_cv_auc"] = cv(rest)[0] if rest else None
    return out


def _group_folds(groups: np.ndarray, y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that keep every copy of a row in one fold (no copy on both sides).

    Stratified over *groups* (each labelled by its first row's class), then mapped to rows.
    scikit-learn's StratifiedGroupKFold does this by a Python search per group — 6.5 s of a
    1M-row audit when nearly every row is its own group; this is the same in NumPy."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    uniq, first, inv = np.unique(groups, return_index=True, return_inverse=True)
    fold_of_group = np.zeros(uniq.size, np.int64)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits"
        warnings.simplefilter("ignore", UserWarning)
        skf = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed)
        for f, (_, test) in enumerate(skf.split(np.zeros(uniq.size), y[first])):
            fold_of_group[test] = f
    fold = fold_of_group[inv.reshape(-1)]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(CV_FOLDS)]


def _matrix(sample: pa.Table, features: list[str]) -> tuple[np.ndarray, list[str], list[bool], list[str]]:
    """Features as a float matrix: numbers as is, time as epoch ns, text as category codes."""
    cols, names, cats, dropped = [], [], [], []
    for c in features:
        if c not in sample.column_names:
            continue
        col = sample.column(c).combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        kind = column_kind(col.type)
        if kind == "time":
            col = pc.cast(pc.cast(col, pa.timestamp("ns")) if pa.types.is_date(col.type) else col, pa.int64(),
                          safe=False)
            kind = "number"
        if kind == "number":
            x = pc.cast(col, pa.float64(), safe=False).fill_null(np.nan).to_numpy(zero_copy_only=False)
            cols.append(np.asarray(x, dtype=np.float64))
            cats.append(False)
        elif kind == "text":
            enc = pc.dictionary_encode(pc.cast(col, pa.string()))
            if len(enc.dictionary) > MAX_CATEGORIES:
                dropped.append(c)
                continue
            # codes in sorted order of the values, so the encoding does not depend on row order
            order = np.argsort(np.argsort(np.array(enc.dictionary.to_pylist(), dtype=object)))
            idx = enc.indices.to_numpy(zero_copy_only=False)
            codes = np.where(enc.indices.is_null().to_numpy(zero_copy_only=False), np.nan,
                             order[np.nan_to_num(idx, nan=0).astype(np.int64)] if len(order) else np.nan)
            cols.append(codes.astype(np.float64))
            cats.append(True)
        else:
            dropped.append(c)
            continue
        names.append(c)
    X = np.column_stack(cols) if cols else np.empty((sample.num_rows, 0))
    return X, names, cats, dropped
