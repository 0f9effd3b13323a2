"""Figures drawn from what checks already measured: one small adapter per check id, in a table.

A check hands the report a figure (``registry.Chart``, ``Curve`` or ``Whiskers``) when it
has one in mind; many put the numbers a picture needs only into their metrics. Rather than
teach every check to draw, :data:`ADAPTERS` turns those metrics into figures, and
:data:`GALLERY` picks the one figure per check that the report's "at a glance" section
shows. Metrics are JSON-like and differ between datasets, so an adapter that meets a
shape it does not expect draws nothing rather than failing the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

from ..findings import CheckResult, Report
from ..registry import Chart, Curve, Whiskers

Figure = Union[Chart, Curve, Whiskers]
Metrics = Mapping[str, Any]
Adapter = Callable[[Metrics, Mapping[str, Metrics]], list[Figure]]

SPLIT_ORDER = ("train", "test", "production", "feedback")


def _ci_label(m: Metrics) -> str:
    conf = m.get("confidence", 0.95)
    return f"{round(100 * conf) if isinstance(conf, (int, float)) else 95} % CI"


def _pct(v: Any) -> float:
    return 100.0 * float(v) if isinstance(v, (int, float)) else math.nan


def _ci(value: Any, ci: Any) -> tuple[float, float, float]:
    lo, hi = (ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None))
    return _pct(value), _pct(lo), _pct(hi)


def _base_rates(m: Metrics, _: Mapping[str, Metrics]) -> list[Figure]:
    splits = [s for s in SPLIT_ORDER if isinstance(m.get(s), Mapping)]
    rows: list[tuple[str, str]] = []
    for s in splits:
        for attr, groups in m[s].items():
            for g in groups:
                if (attr, g) not in rows:
                    rows.append((attr, g))
    if not rows:
        return []
    series = []
    for s in splits:
        vals = []
        for attr, g in rows:
            e = m[s].get(attr, {}).get(g)
            vals.append(_ci(e.get("rate"), e.get("rate_ci")) if isinstance(e, Mapping) else (math.nan,) * 3)
        series.append((s, tuple(vals)))
    labels = tuple(f"{a}: {g}" + (" (ref)" if _reference(m, splits, a) == g else "") for a, g in rows)
    return [Whiskers(title=f"Favourable-label rate by group ({_ci_label(m)})",
                     x_label="favourable-label rate (%)", groups=labels, series=tuple(series), x_range=(0.0, 100.0))]


def _reference(m: Metrics, splits: list[str], attr: str) -> Any:
    for s in splits:
        for e in m[s].get(attr, {}).values():
            if isinstance(e, Mapping) and "reference" in e:
                return e["reference"]
    return None


def _disparity(m: Metrics, _: Mapping[str, Metrics]) -> list[Figure]:
    rows, sel, tpr = [], [], []
    for name, block in (m.get("groups") or {}).items():
        ref = block.get("reference")
        for g, e in (block.get("groups") or {}).items():
            metric = e.get("metrics") or {}
            rows.append((str(g) if len(m["groups"]) == 1 else f"{name}: {g}") + (" (ref)" if g == ref else ""))
            s, t = metric.get("selection_rate") or {}, metric.get("true_positive_rate") or {}
            sel.append(_ci(s.get("value"), s.get("ci")))
            tpr.append(_ci(t.get("value"), t.get("ci")))
    if not rows:
        return []
    return [Whiskers(title=f"Model decisions by group ({_ci_label(m)})", x_label="rate (%)", groups=tuple(rows),
                     series=(("selection rate", tuple(sel)), ("true-positive rate", tuple(tpr))),
                     x_range=(0.0, 100.0))]


def _drift(m: Metrics, _: Mapping[str, Metrics]) -> list[Figure]:
    cols = m.get("columns") or {}
    splits = [s for s in SPLIT_ORDER if isinstance(cols.get(s), Mapping)]
    worst: dict[str, float] = {}
    for s in splits:
        for c, e in cols[s].items():
            psi = e.get("psi") if isinstance(e, Mapping) else None
            if isinstance(psi, (int, float)) and math.isfinite(psi):
                worst[c] = max(worst.get(c, 0.0), float(psi))
    top = sorted(worst, key=lambda c: (-worst[c], c))[:12]
    if not top:
        return []
    series = []
    for s in splits:
        vals = []
        for c in top:
            e = cols[s].get(c) or {}
            ci = e.get("psi_ci") or (None, None)
            vals.append((_num(e.get("psi")), _num(ci[0]), _num(ci[1])))
        series.append((f"train → {s}", tuple(vals)))
    th = m.get("thresholds") or {}
    refs = tuple((name, float(th[key])) for name, key in (("moderate", "psi_moderate"), ("major", "psi_major"))
                 if isinstance(th.get(key), (int, float)))
    return [Whiskers(title=f"Drift per column: PSI (top {len(top)}, bootstrap CI)", x_label="population stability index",
                     groups=tuple(top), series=tuple(series), references=refs)]


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) else math.nan


def _wilson(k: Any, n: Any, z: float = 1.96) -> tuple[float, float, float]:
    """Share k/n in % with its Wilson score interval."""
    if not isinstance(k, (int, float)) or not isinstance(n, (int, float)) or n <= 0:
        return (math.nan,) * 3
    p = k / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return 100 * p, 100 * max(mid - half, 0.0), 100 * min(mid + half, 1.0)


def _leakage(m: Metrics, others: Mapping[str, Metrics]) -> list[Figure]:
    near, entity = others.get("data.leakage.near_duplicates") or {}, others.get("data.leakage.entity") or {}
    splits = [s for s in SPLIT_ORDER[1:] if isinstance(m.get(s), Mapping)]
    if not splits:
        return []
    kinds = [("exact copy", m, "duplicated_rows"), ("near copy", near, "near_duplicate_rows"),
             ("train entity", entity, "rows_with_train_entity")]
    series = tuple((name, tuple(_wilson((src.get(s) or {}).get(key), (src.get(s) or {}).get("rows")) for s in splits))
                   for name, src, key in kinds if any(isinstance(src.get(s), Mapping) for s in splits))
    return [Whiskers(title="Rows leaked from train, by split (95 % CI)", x_label="share of split (%)",
                     groups=tuple(splits), series=series, x_range=(0.0, 100.0))]


_REASONS = {"trigger": "trigger value", "label_shift_region": "label-shift region", "flood": "flood of copies",
            "replays_train": "replays train rows"}


def _quarantine(m: Metrics, _: Mapping[str, Metrics]) -> list[Figure]:
    counts = m.get("quarantine_counts")
    if not isinstance(counts, Mapping) or not counts:
        return []
    rows = (m.get("rows") or {}).get("feedback")
    labels = [_REASONS.get(k, str(k)) for k in counts] + ["any reason"]
    values = [_num(v) for v in counts.values()] + [_num(m.get("quarantine_count"))]
    of = f" of {rows:,}" if isinstance(rows, int) else ""
    return [Chart(title=f"Feedback rows quarantined{of}, by reason", labels=tuple(labels), values=tuple(values),
                  unit="rows")]


def _points(items: Any, x: str, y: str) -> tuple[tuple[float, float], ...]:
    return tuple((_num(p.get(x)), _num(p.get(y))) for p in items if isinstance(p, Mapping)) if isinstance(items, list) else ()


def _robustness(m: Metrics, _: Mapping[str, Metrics]) -> list[Figure]:
    series = tuple((name, pts) for name, key in (("search", "robustness_curve"), ("random noise", "noise_curve"))
                   if (pts := _points(m.get(key), "cost", "success_rate")))
    if not series:
        return []
    return [Curve(title="Decisions flipped vs cost budget", x_label="cost budget", y_label="share flipped",
                  series=series, x_log=all(x > 0 for _, pts in series for x, _ in pts), y_range=(0.0, 1.0))]


def _tree_bounds(m: Metrics, _: Mapping[str, Metrics]) -> list[Figure]:
    c = m.get("curve")
    if not isinstance(c, Mapping) or not isinstance(c.get("cost"), list):
        return []
    series = tuple((name, tuple(zip(map(_num, c["cost"]), map(_num, c[key]))))
                   for name, key in (("flip found", "found_flip_share"), ("flip possible (bound)", "possible_flip_share"))
                   if isinstance(c.get(key), list))
    return [Curve(title="Flippable decisions vs cost budget (tree bounds)", x_label="cost budget",
                  y_label="share of rows", series=series, x_log=all(x > 0 for x in map(_num, c["cost"])),
                  y_range=(0.0, 1.0))] if series else []


_SOURCES = {"in-distribution": "real rows", "uniform": "random rows"}


def _extraction(m: Metrics, _: Mapping[str, Metrics]) -> list[Figure]:
    lines: dict[str, list[tuple[float, float]]] = {}
    for p in m.get("curve") or []:
        if isinstance(p, Mapping):
            source = _SOURCES.get(str(p.get("source")), str(p.get("source")))
            lines.setdefault(f"{p.get('policy')} ({source})", []).append((_num(p.get("queries")),
                                                                         _num(p.get("fidelity"))))
    if not lines:
        return []
    return [Curve(title="Surrogate fidelity vs query budget", x_label="queries", y_label="fidelity",
                  series=tuple((k, tuple(sorted(v))) for k, v in lines.items()), x_log=True, y_range=(0.0, 1.0))]


ADAPTERS: dict[str, Adapter] = {
    "fairness.base_rates": _base_rates,
    "fairness.model_disparity": _disparity,
    "fairness.intersectional": _disparity,
    "data.drift.columns": _drift,
    "data.leakage.exact_duplicates": _leakage,  # also reads near_duplicates and entity: one picture of leakage
    "data.poisoning.feedback": _quarantine,
    "model.evasion.constrained": _robustness,
    "model.evasion.tree_bounds": _tree_bounds,
    "model.extraction.surrogate": _extraction,
}

GALLERY: tuple[tuple[str, str | None], ...] = (
    ("fairness.base_rates", None), ("fairness.model_disparity", None), ("data.drift.columns", None),
    ("data.leakage.exact_duplicates", None), ("data.poisoning.feedback", None), ("model.evasion.constrained", None),
    ("model.privacy.membership", None), ("model.extraction.surrogate", None), ("model.poisoning.wargame", "Backdoor"),
    # stand-ins when the pipeline lacks some of the above (no model, no sensitive attributes …)
    ("model.evasion.tree_bounds", None), ("data.leakage.near_duplicates", None), ("data.leakage.entity", None),
    ("data.leakage.target", None), ("fairness.proxies", None), ("data.quality.class_balance", None),
    ("data.quality.columns", None), ("data.integrity.fingerprint", None),
)
"""(check id, preferred title word): the at-a-glance figures, in order, at most ``GALLERY_SIZE``."""
GALLERY_SIZE = 9


def figures(check: CheckResult, metrics: Mapping[str, Metrics]) -> list[Figure]:
    """The figures adapted from a check's metrics, then the ones the check drew itself."""
    made: list[Figure] = []
    adapter = ADAPTERS.get(check.id)
    if adapter and check.status != "skipped" and check.metrics:
        try:
            made = adapter(check.metrics, metrics)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # a shape this adapter does not know
            made = []
    return [*made, *check.charts]


def gallery(report: Report, per_check: Mapping[str, list[Figure]]) -> list[tuple[str, Figure]]:
    """(check id, figure) for the at-a-glance section: one per check, in :data:`GALLERY` order."""
    out: list[tuple[str, Figure]] = []
    for cid, prefer in GALLERY:
        figs = per_check.get(cid) or []
        if figs:
            out.append((cid, _pick(figs, prefer)))
        if len(out) == GALLERY_SIZE:
            break
    return out


def _pick(figs: Iterable[Figure], prefer: str | None) -> Figure:
    figs = list(figs)
    return next((f for f in figs if prefer and prefer.lower() in f.title.lower()), figs[0])
