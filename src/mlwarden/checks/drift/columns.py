"""data.drift.columns — per-column distribution shift from train to test, production and feedback.

One check for all comparisons, because Benjamini–Hochberg must see every (column ×
comparison) test at once to control the false-discovery rate across them; findings are
keyed by (split, column), so each shift keeps its own stable id.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from . import stats
from .sketch import CATEGORY_CAPACITY, MISSING, CategorySketch, NumericSketch, category_counts, grid, numeric_values

COMPARED = ("test", "production", "feedback")
SEED = 0
TOP_CATEGORIES = 30
MIN_HEAVY_SHARE = 0.5
ALPHA = 0.05
PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
KS_MODERATE = 0.1
V_MODERATE, V_MAJOR = 0.1, 0.3
TOP_CHART = 10

_WHY = {
    "test": "The test set does not come from the training distribution, so test metrics do not estimate "
            "how the model does on data like its training data, nor on production.",
    "production": "The model now sees inputs unlike its training data; its accuracy and calibration there are "
                  "unmeasured. A sudden shift can also mean a broken upstream pipeline or manipulated inputs.",
    "feedback": "Feedback that differs from training data will pull the next model toward it when it is "
                "retrained; a shift concentrated in a few columns is how skewing and poisoning look.",
}


@dataclass
class DriftState:
    numeric: dict[tuple[str, str], NumericSketch] = field(default_factory=dict)
    category: dict[tuple[str, str], CategorySketch] = field(default_factory=dict)
    unreadable: dict[tuple[str, str], str] = field(default_factory=dict)


@register
class ColumnDrift(FoldCheck):
    """Tests every column for a distribution shift from train to test, production and feedback.

    **What it finds.** Columns whose distribution in test, production or feedback differs
    from train by a *material* amount. Numbers: Kolmogorov–Smirnov D, Wasserstein-1
    distance divided by train's interquartile range, and PSI over 10 train-quantile bins.
    Categories, booleans and strings: χ² test of homogeneity with Cramér's V,
    Jensen–Shannon distance, and PSI over the 30 most frequent categories plus "other".
    Every flagged column comes with effect sizes and their 95 % confidence intervals (D:
    analytical, Dvoretzky–Kiefer–Wolfowitz; PSI and V: 500 seeded multinomial bootstrap
    resamples of each split's binned counts), a p-value and its Benjamini–Hochberg
    q-value across all (column × comparison) tests. The id and time
    columns are not compared (time always drifts), nor is the label against production.

    **Severity.** A column is flagged only when q < 0.05 *and* the effect is material —
    never on the p-value alone, since with a million rows every difference is
    significant. High: PSI ≥ 0.25 (a major shift) or Cramér's V ≥ 0.3. Medium: PSI ≥ 0.1,
    KS D ≥ 0.1 or V ≥ 0.1.

    **Why it matters.** A model is only validated for the distribution it was trained and
    tested on. Drift between train and test makes the evaluation meaningless; drift in
    production means unmeasured errors; drift in feedback steers the next model, and is
    what an attacker who controls part of the feedback does on purpose (OWASP ML08).

    **How to fix.** Check the flagged columns upstream (units, encodings, a changed
    source, a new population). Split train and test from the same period and population;
    retrain or recalibrate on recent data when the shift is real; quarantine feedback
    whose distribution departs from what the model was trained on.

    Bounded state: numbers are exact up to 20,000 distinct values per column, then a
    fixed-bucket histogram whose KS error the metrics state (``ks_d_bounds``);
    categories are exact up to 1,000 distinct values, then Misra–Gries counts whose error
    bound the metrics state (``count_error_bound``).
    """

    id = "data.drift.columns"
    title = "No material distribution shift from train to the other splits"
    needs = ("train", "eval")
    stage = "splits"
    references = ("OWASP-ML08", "AML.T0031", "NIST-MEASURE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        d = spec.data
        self.excluded = {c for c in (d.id, d.time) if c}
        train = sources.datasets.get("train")
        self.kinds: dict[str, str] = {}
        self.ignored: dict[str, str] = {}
        for f in train.schema if train is not None else []:
            if f.name in self.excluded:
                continue
            kind = _kind(f.type)
            if kind:
                self.kinds[f.name] = kind
            else:
                self.ignored[f.name] = f"type {f.type} is not compared"
        self.compared = [s for s in COMPARED if s in sources.datasets]

    @property
    def splits(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("train", *self.compared)

    def features(self, split: str) -> list[str]:
        cols = set(self.sources.columns(split))
        out = [c for c in self.kinds if c in cols]
        if split == "production" and self.spec.data.label:
            out = [c for c in out if c != self.spec.data.label]
        return sorted(out)

    def columns(self, split: str) -> list[str]:
        if split == "train":
            shared = set().union(*(self.features(s) for s in self.compared)) if self.compared else set()
            return sorted(shared)
        return self.features(split)

    def init(self) -> DriftState:
        return DriftState()

    def update(self, state: DriftState, batch: Batch) -> DriftState:
        rb = batch.data
        for col in self.columns(batch.split):
            key = (batch.split, col)
            if key in state.unreadable or col not in rb.schema.names:
                continue
            try:
                if self.kinds[col] == "numeric":
                    state.numeric.setdefault(key, NumericSketch()).add(numeric_values(rb.column(col)))
                else:
                    state.category.setdefault(key, CategorySketch()).add_counts(category_counts(rb.column(col)))
            except (pa.ArrowException, ValueError, TypeError):
                t = rb.schema.field(col).type
                state.unreadable[key] = f"type {t} in data.{batch.split} cannot be compared with train's"
                state.numeric.pop(key, None)
                state.category.pop(key, None)
        return state

    def merge(self, a: DriftState, b: DriftState) -> DriftState:
        a.unreadable.update(b.unreadable)
        for key, s in b.numeric.items():
            a.numeric[key] = a.numeric[key].merge(s) if key in a.numeric else s
        for key, c in b.category.items():
            a.category[key] = a.category[key].merge(c) if key in a.category else c
        for key in a.unreadable:
            a.numeric.pop(key, None)
            a.category.pop(key, None)
        return a

    def finalize(self, state: DriftState, ctx: AuditContext) -> Outcome:
        pairs = [(s, c) for s in self.compared for c in self.features(s)]
        if not pairs:
            raise Skip("train and the evaluation splits share no comparable feature columns")
        results: dict[tuple[str, str], dict[str, Any]] = {}
        skipped: dict[str, str] = dict(self.ignored)
        for split, col in pairs:
            why = state.unreadable.get((split, col)) or state.unreadable.get(("train", col))
            if why:
                skipped[f"{split}.{col}"] = why
                continue
            r = self._compare(state, split, col)
            if isinstance(r, str):
                skipped[f"{split}.{col}"] = r
            else:
                results[(split, col)] = r
        keys = sorted(results)
        qs = stats.benjamini_hochberg(np.array([results[k]["p_value"] for k in keys]))
        for k, q in zip(keys, qs, strict=True):
            results[k]["q_value"] = _sig(q)
            results[k]["severity"] = _severity(results[k])
        return self._outcome(results, skipped)

    def _compare(self, state: DriftState, split: str, col: str) -> dict[str, Any] | str:
        rng = np.random.default_rng([SEED, zlib.crc32(f"{split}\x1f{col}".encode())])
        if self.kinds[col] == "numeric":
            a, b = state.numeric.get(("train", col)), state.numeric.get((split, col))
            if a is None or b is None or not a.n or not b.n:
                return "no non-missing values in one of the splits"
            return _numeric(a, b, rng)
        ca, cb = state.category.get(("train", col)), state.category.get((split, col))
        if ca is None or cb is None or not ca.n or not cb.n:
            return "no values in one of the splits"
        if not ca.exact and sum(ca.counts.values()) < MIN_HEAVY_SHARE * ca.n:
            return (f"more than {CATEGORY_CAPACITY} distinct values and no category is frequent: "
                    "an identifier or free text, not compared as categories")
        return _categorical(ca, cb, rng)

    def _outcome(self, results: dict[tuple[str, str], dict[str, Any]], skipped: dict[str, str]) -> Outcome:
        findings, charts = [], []
        by_split: dict[str, dict[str, Any]] = {}
        for (split, col), r in sorted(results.items()):
            by_split.setdefault(split, {})[col] = r
            if r["severity"] is not None:
                findings.append(self._finding(split, col, r))
        for split, cols in by_split.items():
            top = sorted(cols.items(), key=lambda kv: (-kv[1]["psi"], kv[0]))[:TOP_CHART]
            charts.append(Chart(title=f"train → {split}: PSI by column (top {len(top)}; 0.1 moderate, 0.25 major)",
                                labels=tuple(c for c, _ in top), values=tuple(r["psi"] for _, r in top),
                                unit="PSI"))
        flagged = {s: sorted(c for c, r in cols.items() if r["severity"]) for s, cols in by_split.items()}
        metrics = {
            "comparisons": [f"train→{s}" for s in by_split],
            "tests": len(results), "flagged": flagged, "columns": by_split, "skipped_columns": skipped,
            "excluded_columns": sorted(self.excluded),
            "thresholds": {"q": ALPHA, "psi_moderate": PSI_MODERATE, "psi_major": PSI_MAJOR,
                           "ks_d_moderate": KS_MODERATE, "cramers_v_moderate": V_MODERATE,
                           "cramers_v_major": V_MAJOR},
            "bootstrap": {"resamples": stats.RESAMPLES, "confidence": stats.CONFIDENCE, "seed": SEED,
                          "method": "PSI, V: multinomial resampling of each split's binned counts, basic interval; "
                                    "KS D: analytical (DKW–Massart), widened by the histogram bound"},
        }
        return Outcome(findings=findings, metrics=metrics, charts=charts)

    def _finding(self, split: str, col: str, r: dict[str, Any]) -> Any:
        if r["type"] == "numeric":
            effect = (f"KS D {r['ks_d']:.3f} (95% CI {r['ks_d_ci'][0]:.3f}–{r['ks_d_ci'][1]:.3f}), "
                      f"PSI {r['psi']:.3f} (95% CI {r['psi_ci'][0]:.3f}–{r['psi_ci'][1]:.3f}), "
                      f"Wasserstein-1 {r['wasserstein_iqr']:.3f} train IQRs; median {r['median_train']:g} → "
                      f"{r['median_other']:g}")
            if r["method"] != "exact":
                effect += (f". D read from bounded histograms ({r['method']}): the exact D lies in "
                           f"[{r['ks_d_bounds'][0]:.4f}, {r['ks_d_bounds'][1]:.4f}]")
        else:
            effect = (f"Cramér's V {r['cramers_v']:.3f} (95% CI {r['cramers_v_ci'][0]:.3f}–{r['cramers_v_ci'][1]:.3f}), "
                      f"PSI {r['psi']:.3f} (95% CI {r['psi_ci'][0]:.3f}–{r['psi_ci'][1]:.3f}), "
                      f"Jensen–Shannon distance {r['js_distance']:.3f}")
            if r["count_error_bound"]:
                effect += f"; category counts are Misra–Gries estimates, each low by at most {r['count_error_bound']}"
        sev = Severity.HIGH if r["severity"] == "high" else Severity.MEDIUM
        return self.finding(
            key=(split, col), severity=sev,
            title=f"{col} shifted from train to {split} (PSI {r['psi']:.2f})",
            description=(f"{col} ({r['type']}, {r['n_train']} train vs {r['n_other']} {split} values): {effect}; "
                         f"p = {r['p_value']:.3g}, Benjamini–Hochberg q = {r['q_value']:.3g}. {_WHY[split]}"),
            remediation=("Trace the column upstream for a unit, encoding or source change; if the shift is real, "
                         "retrain or recalibrate on recent data"
                         + (", and quarantine shifted feedback before retraining." if split == "feedback" else ".")),
            evidence={"split": split, "column": col, **r},
            location=Location(artifact=self.spec.display(self.sources.datasets[split].uri), column=col),
        )


def _kind(t: pa.DataType) -> str | None:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        return "categorical"
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
            or pa.types.is_date(t) or pa.types.is_timestamp(t)):
        return "numeric"
    return None


def _numeric(a: NumericSketch, b: NumericSketch, rng: np.random.Generator) -> dict[str, Any]:
    g = grid(a, b)
    d_lo, d_hi = stats.ks_grid(g.ca, g.cb, g.point)
    if g.exact and a.n <= stats.EXACT_KS_ROWS and b.n <= stats.EXACT_KS_ROWS:
        d, p = stats.ks_exact(g.rep_a, g.ca, g.cb)
        ks_method = "scipy.stats.ks_2samp"
    else:
        d, p = d_lo, stats.ks_pvalue(d_lo, a.n, b.n)
        ks_method = "D from counts, asymptotic p (kstwo)"
    bins = stats.quantile_bins(g.ca)
    pa_, pb_ = stats.binned(g.ca, bins), stats.binned(g.cb, bins)
    psi = float(stats.psi(pa_, pb_))
    rep_a = g.rep_a
    q1, q3 = stats.weighted_quantile(rep_a, g.ca, 0.25), stats.weighted_quantile(rep_a, g.ca, 0.75)
    scale, scale_name = q3 - q1, "iqr"
    if scale <= 0:
        m = g.ca > 0
        mean = np.average(rep_a[m], weights=g.ca[m])
        scale, scale_name = float(np.sqrt(np.average((rep_a[m] - mean) ** 2, weights=g.ca[m]))), "std"
    w = stats.wasserstein(g.rep_a, g.ca, g.rep_b, g.cb)
    return {
        "type": "numeric", "method": _method(a, b), "ks_method": ks_method,
        "n_train": a.n, "n_other": b.n, "missing_train": a.missing, "missing_other": b.missing,
        "ks_d": _r(d), "ks_d_ci": [_r(v) for v in stats.ks_interval(min(d, d_lo), max(d, d_hi), a.n, b.n)],
        "ks_d_bounds": [_r(d_lo), _r(d_hi)],
        "p_value": _sig(p), "psi": _r(psi),
        "psi_ci": [_r(v) for v in stats.psi_interval(rng, pa_, pb_)],
        "psi_bins": {"train_share": [_r(v / a.n) for v in pa_], "other_share": [_r(v / b.n) for v in pb_]},
        "wasserstein_iqr": _r(w / scale) if scale > 0 else None, "wasserstein": _r(w),
        "scale": {"kind": scale_name, "value": _r(scale)},
        "median_train": _r(stats.weighted_quantile(rep_a, g.ca, 0.5)),
        "median_other": _r(stats.weighted_quantile(g.rep_b, g.cb, 0.5)),
    }


def _method(a: NumericSketch, b: NumericSketch) -> str:
    if a.exact and b.exact:
        return "exact"
    return max((s for s in (a, b) if not s.exact), key=lambda s: s.level).method


def _categorical(a: CategorySketch, b: CategorySketch, rng: np.random.Generator) -> dict[str, Any]:
    pooled: dict[str, float] = {}
    for s in (a, b):
        for k, c in s.counts.items():
            pooled[k] = pooled.get(k, 0.0) + c / s.n
    top = [k for k, _ in sorted(pooled.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CATEGORIES]]
    row = [[s.counts.get(k, 0) for k in top] for s in (a, b)]
    table = np.array([r + [s.n - sum(r)] for r, s in zip(row, (a, b), strict=True)], dtype=np.int64)
    labels = top + ["(other)"]
    keep = table.sum(axis=0) > 0
    table, labels = table[:, keep], [lab for lab, k in zip(labels, keep, strict=True) if k]
    x2, p, dof = stats.chi2(table)
    v = float(stats.cramers_v(table))
    share = table / table.sum(axis=1, keepdims=True)
    moves = sorted(range(len(labels)), key=lambda i: (-abs(share[1, i] - share[0, i]), labels[i]))[:5]
    return {
        "type": "categorical", "method": "exact" if a.exact and b.exact else f"misra-gries(k={CATEGORY_CAPACITY})",
        "n_train": a.n, "n_other": b.n, "missing_train": a.counts.get(MISSING, 0),
        "missing_other": b.counts.get(MISSING, 0),
        "categories_compared": len(labels), "chi2": _r(x2), "dof": dof, "p_value": _sig(p),
        "cramers_v": _r(v), "cramers_v_ci": [_r(x) for x in stats.v_interval(rng, table)] if dof else [0.0, 0.0],
        "js_distance": _r(stats.js_distance(table[0], table[1])),
        "psi": _r(float(stats.psi(table[0], table[1]))),
        "psi_ci": [_r(x) for x in stats.psi_interval(rng, table[0], table[1])],
        "largest_changes": [{"category": labels[i], "train_share": _r(share[0, i]), "other_share": _r(share[1, i])}
                            for i in moves],
        "count_error_bound": max(a.decremented, b.decremented),
    }


def _severity(r: dict[str, Any]) -> str | None:
    if r["q_value"] >= ALPHA:
        return None
    psi = r["psi"]
    if r["type"] == "numeric":
        major, moderate = psi >= PSI_MAJOR, psi >= PSI_MODERATE or r["ks_d"] >= KS_MODERATE
    else:
        v = r["cramers_v"]
        major, moderate = psi >= PSI_MAJOR or v >= V_MAJOR, psi >= PSI_MODERATE or v >= V_MODERATE
    return "high" if major else "medium" if moderate else None


def _r(x: float, digits: int = 6) -> float:
    return float(round(float(x), digits)) if np.isfinite(x) else float(x)


def _sig(x: float) -> float:
    """Six significant digits: p-values far below 1e-6 must not round to zero."""
    return float(f"{float(x):.6g}")
