"""fairness.proxies — features that stand in for a protected attribute.

For every feature and sensitive attribute the fold keeps counts per (value bin, group,
half). Bins are a pure function of the value, so any partitioning and merge order gives
the same counts:

- a column with at most ``EXACT_BINS`` distinct values (over the whole split) keeps
  them exactly — indicator columns, codes, small integers, categories;
- past that, numbers fall into log-scale bins (a float's sign, exponent and top
  ``MANTISSA_BITS`` mantissa bits: each bin spans at most 12.5 % of its values'
  magnitude) and text into ``HASH_BUCKETS`` hash buckets;
- missing values (null, NaN, blank text) are a bin of their own: missingness can leak.

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

import hashlib
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

EXACT_BINS = 128
HASH_BUCKETS = 64
MANTISSA_BITS = 3
SMOOTHING = 1.0
"""Pseudo-rows of the prior added to every bin when estimating P(group | bin)."""

_SHIFT = np.int64(52 - MANTISSA_BITS)
_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

Key = Any  # None (missing) | float | str (exact) | ("n", int) | ("s", int) (coarse)
Counts = dict[tuple[Key, str, int], int]


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection on uint64, so distinct inputs never tie."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def halves(content: np.ndarray) -> np.ndarray:
    """0 or 1 per row from a hash of its content: exact duplicates always share a half."""
    with np.errstate(over="ignore"):
        return (mix(content * _GOLDEN + np.uint64(0x51)) & np.uint64(1)).astype(np.int64)


def coarse_number(x: np.ndarray) -> np.ndarray:
    """Order-preserving log-scale bin of each float64 (no NaN; -0.0 already 0.0)."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return np.where(bits < 0, bits ^ _LOW63, bits) >> _SHIFT


def bin_value(key: int) -> float:
    """The lower edge (toward zero for negatives: an edge) of a coarse numeric bin."""
    ordered = np.int64(key) << _SHIFT
    bits = ordered if ordered >= 0 else ordered ^ _LOW63
    return float(np.array([bits], dtype=np.int64).view(np.float64)[0])


def _coarse(key: Key) -> Key:
    if key is None or isinstance(key, tuple):
        return key
    if isinstance(key, float):
        return ("n", int(coarse_number(np.array([key]))[0]))
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest()
    return ("s", int.from_bytes(digest, "little") % HASH_BUCKETS)


def column_kind(t: pa.DataType) -> str | None:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_temporal(t):
        return "time"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return None


def _keys(col: pa.Array, coarse: bool) -> tuple[list[Key], np.ndarray]:
    """The distinct bin keys of a column and each row's index into them."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    kind = column_kind(col.type)
    if kind in ("number", "time"):
        if kind == "time":
            col = pc.cast(col, pa.timestamp("ns")) if pa.types.is_date(col.type) else col
            col = pc.cast(col, pa.int64(), safe=False)
        x = np.asarray(pc.cast(col, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
        nan = np.isnan(x)
        x = np.where(x == 0.0, 0.0, x)
        uniq, inv = np.unique(np.where(nan, 0.0, x), return_inverse=True)
        if coarse or uniq.size > EXACT_BINS:
            uniq, inv = np.unique(coarse_number(np.where(nan, 0.0, x)), return_inverse=True)
            keys: list[Key] = [("n", int(u)) for u in uniq]
        else:
            keys = [float(u) for u in uniq]
        keys.append(None)
        return keys, np.where(nan, len(keys) - 1, inv.reshape(-1))
    text = col if kind == "text" else pc.cast(col, pa.string())
    text = pc.if_else(pc.equal(pc.utf8_trim_whitespace(text), ""), pa.scalar(None, text.type), text)
    enc = pc.dictionary_encode(text)
    values = [str(v) for v in enc.dictionary.to_pylist()]
    idx = enc.indices
    codes = np.asarray(idx.fill_null(len(values)).to_numpy(zero_copy_only=False), dtype=np.int64)
    keys = [_coarse(v) for v in values] if (coarse or len(values) > EXACT_BINS) else list(values)
    keys.append(None)
    return keys, codes


def add_batch(counts: dict[tuple[str, str], Counts], coarse: set[tuple[str, str]], rb: pa.RecordBatch,
              features: list[str], attrs: list[str], half: np.ndarray) -> None:
    """Fold one batch's (bin, group, half) counts for every (feature, attribute) pair."""
    groups = {a: group_codes(rb, a) for a in attrs if a in rb.schema.names}
    for col in features:
        if col not in rb.schema.names or column_kind(rb.schema.field(col).type) is None:
            continue
        for attr, (gcodes, glabels) in groups.items():
            pair = (col, attr)
            keys, kcodes = _keys(rb.column(col), pair in coarse)
            combined = (kcodes * len(glabels) + gcodes) * 2 + half
            uniq, n = np.unique(combined, return_counts=True)
            cell = counts.setdefault(pair, {})
            for u, c in zip(uniq.tolist(), n.tolist()):
                k, h = divmod(u, 2)
                k, g = divmod(k, len(glabels))
                key = (keys[k], glabels[g], h)
                cell[key] = cell.get(key, 0) + c
            _settle(counts, coarse, pair)


def merge_counts(a: dict[tuple[str, str], Counts], ca: set, b: dict[tuple[str, str], Counts], cb: set) -> None:
    """Add b's counts into a (and b's coarse flags into ca)."""
    for pair, cell in b.items():
        if pair in cb and pair not in ca:
            ca.add(pair)
            a[pair] = _coarsen(a.get(pair, {}))
        if pair in ca and pair not in cb:
            cell = _coarsen(cell)
        mine = a.setdefault(pair, {})
        for key, n in cell.items():
            mine[key] = mine.get(key, 0) + n
        _settle(a, ca, pair)


def _settle(counts: dict[tuple[str, str], Counts], coarse: set, pair: tuple[str, str]) -> None:
    if pair in coarse:
        return
    if len({k[0] for k in counts[pair]} - {None}) > EXACT_BINS:
        coarse.add(pair)
        counts[pair] = _coarsen(counts[pair])


def _coarsen(cell: Counts) -> Counts:
    out: Counts = {}
    for (key, g, h), n in cell.items():
        k = (_coarse(key), g, h)
        out[k] = out.get(k, 0) + n
    return out


def _order(key: Key) -> tuple:
    if key is None:
        return (0, 0, "")
    if isinstance(key, float):
        return (1, key, "")
    if isinstance(key, str):
        return (2, 0, key)
    return (3 if key[0] == "n" else 4, key[1], "")


def table(cell: Counts) -> tuple[list[Key], list[str], np.ndarray]:
    """(sorted bin keys, sorted groups without MISSING, counts[bin, group, half])."""
    keys = sorted({k for k, _g, _h in cell}, key=_order)
    groups = sorted({g for _k, g, _h in cell} - {MISSING})
    ki = {k: i for i, k in enumerate(keys)}
    gi = {g: i for i, g in enumerate(groups)}
    m = np.zeros((len(keys), len(groups), 2), dtype=np.float64)
    for (k, g, h), n in cell.items():
        if g in gi:
            m[ki[k], gi[g], h] += n
    return keys, groups, m


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
CV_FOLDS = 5
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
    counts: dict[tuple[str, str], Counts] = field(default_factory=dict)
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
        prio = mix(content + np.uint64(seed) * _GOLDEN)
    return pa.Table.from_batches([rb]).append_column("__priority", pa.array(prio, pa.uint64()))


def _bottom_k(a: pa.Table | None, b: pa.Table | None) -> pa.Table | None:
    """The SAMPLE_ROWS rows of lowest priority: deterministic and mergeable in any order (rows that
    tie on priority have the same content, so which copy stays does not matter)."""
    if a is None or b is None:
        t = a if b is None else b
    else:
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
    set: a gradient-boosted classifier, 5-fold cross-validated, predicting the attribute
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
            fset = (_feature_set(sample, state.rows, self.features, attr, [r["column"] for r in named], self.seed)
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
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
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

    def cv(cols: list[int]) -> tuple[float, dict[str, float]]:
        model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, early_stopping=False,
                                               random_state=seed, categorical_features=[cats[i] for i in cols])
        folds = StratifiedGroupKFold(CV_FOLDS, shuffle=True, random_state=seed)
        # one OpenMP thread: the audit's own workers already use the cores, and OpenMP's
        # spin-waiting on a busy machine makes boosting dozens of times slower
        with threadpool_limits(1, user_api="openmp"):
            proba = cross_val_predict(model, X[keep][:, cols], yk, groups=copies, cv=folds, method="predict_proba")
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
            x = pc.cast(col, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
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
