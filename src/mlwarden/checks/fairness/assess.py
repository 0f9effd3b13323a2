"""From group estimates to metrics, comparisons, corrected tests and findings.

Shared by ``fairness.model_disparity`` (one attribute at a time) and
``fairness.intersectional`` (combinations): a :class:`GroupSet` names the groups, the
bootstrap :class:`~mlwarden.fairness.bootstrap.Estimates` carry the numbers, and
:func:`assess` turns them into the check's metrics and findings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...fairness.bootstrap import Estimates, percentile_ci
from ...fairness.groups import intersection_label
from ...fairness.metrics import AGGREGATES, METRICS, SUMMARIES
from ...fairness.stats import benjamini_hochberg, proportion_test
from ...findings import Location, Severity
from ...registry import Chart, Outcome

FOUR_FIFTHS = 0.8
HIGH_MIN_GAP = 0.05
MEDIUM_GAP = 0.10
MAX_FINDINGS = 25
WORST_OFF = 5
CHART_GROUPS = 12

TRADEOFF = ("Parity metrics (selection rate) and error-rate metrics (equalized odds, predictive parity) "
            "cannot in general all hold at once when base rates differ (Chouldechova 2017; Kleinberg et al. "
            "2016): pick the one that matches the harm — parity for access to an opportunity, error rates "
            "where a wrong decision is the harm.")

_WHY = {
    "selection_rate": "The group receives the favorable outcome at a different rate (demographic parity).",
    "true_positive_rate": ("Qualified members of the group are granted the favorable outcome at a different "
                           "rate (equal opportunity)."),
    "false_negative_rate": "Qualified members of the group are wrongly refused at a different rate.",
    "false_positive_rate": ("Unqualified members of the group are wrongly granted the outcome at a different "
                            "rate (equalized odds)."),
    "precision": "A favorable decision means something different for this group (predictive parity).",
    "accuracy": "The model is wrong more or less often for this group.",
}

_FIX = {
    "selection_rate": ("Check whether base rates differ (label bias) before acting; reweigh or resample the "
                       "training data, remove proxy features, or set per-group thresholds if parity is the goal."),
    "true_positive_rate": ("Set per-group thresholds that equalize true positive rates (fairlearn "
                           "ThresholdOptimizer), collect more labelled data for the group, audit label quality."),
    "false_negative_rate": ("Set per-group thresholds that equalize error rates, collect more labelled data for "
                            "the group, audit label quality."),
    "false_positive_rate": ("Set per-group thresholds (equalized odds post-processing); review features that "
                            "proxy for the group."),
    "precision": "Recalibrate scores per group and review the group's features and labels.",
    "accuracy": "Collect more representative data for the group and review its features and label quality.",
}


@dataclass
class GroupSet:
    """The groups of one attribute, or of one combination of attributes."""

    name: str
    attrs: tuple[str, ...]
    positions: tuple[int, ...]
    reference: tuple[str, ...] | None
    groups: list[tuple[str, ...]] = field(default_factory=list)

    def members(self, keys: list[tuple[str, ...]]) -> list[np.ndarray]:
        """0/1 rows over the strata ``keys`` (full intersections), one per group of this set."""
        sub = [tuple(k[i] for i in self.positions) for k in keys]
        self.groups = sorted(set(sub))
        where = {g: j for j, g in enumerate(self.groups)}
        rows = np.zeros((len(self.groups), len(keys)))
        for s, g in enumerate(sub):
            rows[where[g], s] = 1.0
        return list(rows)

    def label(self, g: tuple[str, ...]) -> str:
        return intersection_label(self.attrs, g)


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(np.asarray(x, dtype=np.float64).reshape(-1)[0])
    return None if math.isnan(x) or math.isinf(x) else x


def _est(value: Any, lo: Any, hi: Any) -> dict[str, Any]:
    return {"value": _f(value), "ci": [_f(lo), _f(hi)]}


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = a / b
    return np.where(np.isfinite(r), r, np.nan)


def assess(check: Any, base: dict[str, Any], sets: dict[str, GroupSet], slices: dict[str, slice],
           est: Estimates, uri: str) -> Outcome:
    fz = check.spec.fairness
    conf, alpha = fz.confidence, 1.0 - fz.confidence
    out: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    findings, charts = [], []
    for name, s in sets.items():
        sl = slices[name]
        cells = est.cells[sl]
        n = cells.sum(axis=-1)
        labels = [s.label(g) for g in s.groups]
        judged = n >= fz.min_group_size
        point = {m: v[sl] for m, v in est.point.items()}
        samples = {m: v[:, sl] for m, v in est.samples.items()}
        ref, source = _reference(s, n)
        groups: dict[str, Any] = {}
        cis = {m: percentile_ci(samples[m], conf) for m in point}
        for j, lab in enumerate(labels):
            groups[lab] = {"n": int(n[j]), "judged": bool(judged[j]), "metrics": {
                m: {**_est(point[m][j], cis[m][0][j], cis[m][1][j]),
                    "n": int(METRICS[m].counts(cells[j])[1]) if m in METRICS else int(n[j])}
                for m in point}}
        entry: dict[str, Any] = {"attributes": list(s.attrs), "reference": labels[ref], "reference_source": source,
                                 "groups": groups, "too_small": [lab for j, lab in enumerate(labels) if not judged[j]]}
        J = np.flatnonzero(judged)
        entry["between_groups"] = {
            m: {agg: _est(fn(point[m][J]), *percentile_ci(fn(samples[m][:, J])[:, None], conf)) for agg, fn in
                AGGREGATES.items()} for m in point} if J.size else {}
        entry["summary"] = {k: _est(fn({m: point[m][J] for m in point}),
                                    *percentile_ci(fn({m: samples[m][:, J] for m in point})[:, None], conf))
                            for k, fn in SUMMARIES.items()} if J.size else {}
        entry["four_fifths"] = _four_fifths(point, samples, J, labels, conf)
        entry["vs_reference"] = {}
        if judged[ref]:
            for j in J[J != ref]:
                entry["vs_reference"][labels[j]] = {}
                for m, metric in METRICS.items():
                    d = samples[m][:, j] - samples[m][:, ref]
                    r = _ratio(samples[m][:, j], samples[m][:, ref])
                    (dlo,), (dhi,) = percentile_ci(d[:, None], conf)
                    (rlo,), (rhi,) = percentile_ci(r[:, None], conf)
                    (x1, n1), (x2, n2) = metric.counts(cells[j]), metric.counts(cells[ref])
                    p, test = proportion_test(int(x1), int(n1), int(x2), int(n2))
                    cmp = {"difference": _est(point[m][j] - point[m][ref], dlo, dhi),
                           "ratio": _est(_ratio(point[m][j:j + 1], point[m][ref:ref + 1])[0], rlo, rhi),
                           "test": test, "p": _f(p), "q": None, "severity": None}
                    entry["vs_reference"][labels[j]][m] = cmp
                    rows.append({"set": s, "group": labels[j], "ref": labels[ref], "source": source, "metric": m,
                                 "j": j, "r": ref, "cmp": cmp, "groups": groups, "p": p})
        entry["worst_off"] = _worst_off(entry, labels, ref)
        if not judged.all() or not judged[ref]:
            findings.append(_too_small(check, s, labels, n, judged, ref, fz.min_group_size, uri))
        charts.extend(_charts(s, labels, point, judged, ref))
        out[name] = entry
    q = benjamini_hochberg(np.array([r["p"] for r in rows], dtype=np.float64))
    flagged = []
    for row, qv in zip(rows, q):
        row["cmp"]["q"] = _f(qv)
        sev = _severity(row["cmp"], alpha)
        row["cmp"]["severity"] = sev.value if sev else None
        if sev:
            flagged.append((sev, row))
    flagged.sort(key=lambda t: (-t[0].rank, _adverse(t[1]["cmp"]), t[1]["set"].name, t[1]["group"], t[1]["metric"]))
    findings.extend(_finding(check, sev, row, len(rows), uri) for sev, row in flagged[:MAX_FINDINGS])
    metrics = {**base, "comparisons": len(rows), "flagged": len(flagged), "groups": out}
    return Outcome(findings=findings, metrics=metrics, charts=charts)


def _reference(s: GroupSet, n: np.ndarray) -> tuple[int, str]:
    if s.reference is not None and s.reference in s.groups:
        return s.groups.index(s.reference), "spec"
    largest = int(np.argmax(n))
    if s.reference is not None:
        return largest, f"largest group (the spec's {s.label(s.reference)!r} is not in the data)"
    return largest, "largest group"


def _four_fifths(point: dict[str, np.ndarray], samples: dict[str, np.ndarray], J: np.ndarray,
                 labels: list[str], conf: float) -> dict[str, Any]:
    if not J.size:
        return {}
    sr, ss = point["selection_rate"][J], samples["selection_rate"][:, J]
    top = np.nanmax(sr) if not np.all(np.isnan(sr)) else np.nan
    impact = _ratio(sr, np.full_like(sr, top))
    with np.errstate(all="ignore"):
        boot = _ratio(ss, np.nanmax(np.where(np.isnan(ss), -np.inf, ss), axis=1, keepdims=True))
    lo, hi = percentile_ci(boot, conf)
    return {labels[j]: {**_est(impact[k], lo[k], hi[k]), "passes": bool(impact[k] >= FOUR_FIFTHS)}
            for k, j in enumerate(J) if not math.isnan(impact[k])}


def _worst_off(entry: dict[str, Any], labels: list[str], ref: int) -> list[dict[str, Any]]:
    rows = []
    for lab, cmp in entry["vs_reference"].items():
        sr = cmp["selection_rate"]["ratio"]["value"]
        rows.append({"group": lab, "selection_rate": entry["groups"][lab]["metrics"]["selection_rate"]["value"],
                     "selection_rate_ratio": cmp["selection_rate"]["ratio"],
                     "true_positive_rate": entry["groups"][lab]["metrics"]["true_positive_rate"]["value"],
                     "true_positive_rate_ratio": cmp["true_positive_rate"]["ratio"], "_key": sr})
    rows.sort(key=lambda r: (r["_key"] if r["_key"] is not None else math.inf, r["group"]))
    for r in rows:
        del r["_key"]
    return rows[:WORST_OFF]


def _adverse(cmp: dict[str, Any]) -> float:
    r = cmp["ratio"]["value"]
    if r is None or r <= 0:
        return 0.0 if r is not None else 1.0
    return min(r, 1.0 / r)


def _excludes(ci: list[float | None], value: float) -> bool:
    lo, hi = ci
    return lo is not None and hi is not None and (lo > value or hi < value)


def _severity(cmp: dict[str, Any], alpha: float) -> Severity | None:
    """High: ratio < 0.8 (either way), CI excludes 1, gap ≥ 0.05; medium: gap ≥ 0.1; low: any — all at q < α."""
    q, d = cmp["q"], cmp["difference"]["value"]
    if q is None or q >= alpha or d is None or not _excludes(cmp["difference"]["ci"], 0.0):
        return None
    if _adverse(cmp) < FOUR_FIFTHS and _excludes(cmp["ratio"]["ci"], 1.0) and abs(d) >= HIGH_MIN_GAP:
        return Severity.HIGH
    return Severity.MEDIUM if abs(d) >= MEDIUM_GAP else Severity.LOW


def _fmt(e: dict[str, Any], spec: str = ".3f") -> str:
    v, (lo, hi) = e["value"], e["ci"]
    show = lambda x: "n/a" if x is None else format(x, spec)  # noqa: E731
    return f"{show(v)} [{show(lo)}, {show(hi)}]"


def _finding(check: Any, sev: Severity, row: dict[str, Any], tests: int, uri: str) -> Any:
    s, m, cmp = row["set"], row["metric"], row["cmp"]
    metric = METRICS[m]
    g, ref = row["groups"][row["group"]]["metrics"][m], row["groups"][row["ref"]]["metrics"][m]
    d = cmp["difference"]["value"]
    worse = (metric.better == "higher" and d < 0) or (metric.better == "lower" and d > 0)
    better = (metric.better == "higher" and d > 0) or (metric.better == "lower" and d < 0)
    who = (f"{row['group']} is disadvantaged" if worse else
           f"the reference {row['ref']} is disadvantaged" if better else f"{row['group']} differs")
    ratio = cmp["ratio"]["value"]
    title = (f"{s.name}: {row['group']} has {metric.title} {g['value']:.3f} vs {ref['value']:.3f} for "
             f"{row['ref']}" + (f" (ratio {ratio:.2f})" if ratio is not None else ""))
    description = (
        f"{who}: {metric.title} {_fmt(g)} (n={g['n']}) against {_fmt(ref)} (n={ref['n']}) for the reference "
        f"{row['ref']} ({row['source']}); difference {_fmt(cmp['difference'], '+.3f')}, ratio "
        f"{_fmt(cmp['ratio'], '.2f')}; {'Fisher exact' if cmp['test'] == 'fisher' else 'two-proportion z'} test "
        f"p={cmp['p']:.2g}, Benjamini–Hochberg q={cmp['q']:.2g} over {tests} comparisons. {_WHY[m]} {TRADEOFF}")
    evidence = {"attributes": list(s.attrs), "group": row["group"], "reference": row["ref"],
                "reference_source": row["source"], "metric": m, "value": g, "reference_value": ref,
                "difference": cmp["difference"], "ratio": cmp["ratio"], "test": cmp["test"], "p": cmp["p"],
                "q": cmp["q"], "comparisons": tests}
    return check.finding(key=(s.name, row["group"], m), severity=sev, title=title, description=description,
                         remediation=_FIX[m], evidence=evidence,
                         location=Location(artifact=uri, column=", ".join(s.attrs)))


def _too_small(check: Any, s: GroupSet, labels: list[str], n: np.ndarray, judged: np.ndarray, ref: int,
               minimum: int, uri: str) -> Any:
    small = [(labels[j], int(n[j])) for j in np.flatnonzero(~judged)]
    listed = ", ".join(f"{lab} (n={k})" for lab, k in small[:20]) + (" …" if len(small) > 20 else "")
    extra = (f" The reference group {labels[ref]} is itself too small, so no group is compared with it."
             if not judged[ref] else "")
    return check.finding(
        key=(s.name, "too_small"), severity=Severity.INFO,
        title=f"{s.name}: {len(small)} group(s) too small to judge (fewer than {minimum} labelled rows)",
        description=(f"Too small to judge: {listed}. Their metrics are reported with (wide) intervals but kept "
                     f"out of the tests and the worst-case summaries; a disparity there can be neither shown "
                     f"nor ruled out.{extra}"),
        remediation=("Collect more labelled evaluation data for these groups, or lower "
                     "fairness.min_group_size if you accept wider uncertainty."),
        evidence={"attributes": list(s.attrs), "min_group_size": minimum,
                  "groups": [{"group": lab, "n": k} for lab, k in small[:20]], "count": len(small)},
        location=Location(artifact=uri, column=", ".join(s.attrs)))


def _charts(s: GroupSet, labels: list[str], point: dict[str, np.ndarray], judged: np.ndarray,
            ref: int) -> list[Chart]:
    order = [j for j in np.argsort(point["selection_rate"], kind="stable") if judged[j] and j != ref]
    shown = ([ref] + order[:CHART_GROUPS - 1]) if judged[ref] else order[:CHART_GROUPS]
    if not shown:
        return []
    names = tuple(labels[j] + (" (reference)" if j == ref else "") for j in shown)
    out = []
    for m in ("selection_rate", "true_positive_rate", "false_positive_rate"):
        vals = tuple(0.0 if math.isnan(point[m][j]) else 100.0 * float(point[m][j]) for j in shown)
        out.append(Chart(title=f"{METRICS[m].title.capitalize()} by {s.name} (%)", labels=names, values=vals,
                         unit="%"))
    return out
