"""report.html — one self-contained page that reads in two screens and digs in on demand.

Top to bottom: the header with counts by severity, the attack-surface map, one compact
table of findings (sortable and filterable by severity, stage, check and free text; each
row a ``<details>`` that expands to description, evidence, remediation, references and
location), the checks that found nothing on one line, the figures "at a glance" (inline
SVG built from the checks' charts and metrics, see :mod:`.figures`), then per-stage
check details, the ethics checklist and the skipped checks, all collapsed.

The page works offline and without JavaScript (everything readable, ``<details>`` expand
natively; only sorting and filtering need the one script). It stays under 5 MB whatever
the data size: findings, evidence, metrics and lists are shown up to :class:`Limits`,
with a note saying how much more report.json holds; a page still too big is rendered
again with halved limits until it fits.

Everything user-derived reaches the markup escaped: the template autoescapes, and the
HTML built here goes through ``markupsafe``. A Content-Security-Policy pins the page's
one style and one script by hash (no inline handlers, no remote anything), so even a
missed escape could not run a script.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jinja2
from markupsafe import Markup

from ..findings import CheckResult, Finding, Report, Severity
from ..references import lookup
from ..registry import STAGES, Curve, Whiskers
from . import svg
from .figures import Figure, figures, gallery
from .htmltext import Limits, _clip, _list_text, doc_html, kv_table
from .whiskers import whisker_chart

__all__ = ["BUDGET", "HtmlFormat", "Limits", "doc_html", "kv_table"]

BUDGET = 4_500_000
"""Bytes; below the 5 MB promise of DESIGN.md, with room to spare."""

GALLERY_WIDTH = 440
"""Drawing width of an at-a-glance figure: three fit side by side at 1400 px without shrinking text."""


class HtmlFormat:
    filename = "report.html"

    def render(self, report: Report) -> str:
        limits = Limits()
        for _ in range(8):
            page = _template().render(**_view(report, limits))
            if len(page.encode("utf-8")) <= BUDGET:
                break
            limits = limits.halved()
        return page


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlwarden.report", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
    env.filters["csp_hash"] = lambda text: base64.b64encode(hashlib.sha256(str(text).encode()).digest()).decode()
    env.filters["num"] = lambda n: f"{n:,}"
    return env.get_template("report.html.j2")


@dataclass
class CheckView:
    result: CheckResult
    doc: Markup
    charts: list[Markup]
    metrics: Markup | None
    counts: dict[str, int] = field(default_factory=dict)
    links: list[Finding] = field(default_factory=list)
    """The first of its findings, linked from the check's details to their rows."""

    @property
    def anchor(self) -> str:
        return f"check-{self.result.id}"


def _view(report: Report, lim: Limits) -> dict[str, Any]:
    """Everything the template needs, with the caps applied."""
    ordered = report.findings
    metrics = {c.id: c.metrics for c in report.checks}
    figs = {c.id: figures(c, metrics) for c in report.checks if c.status != "skipped"}
    stage_of = _stage_of(report)
    views = {c.id: CheckView(result=c, doc=doc_html(report.docs.get(c.id, ""), lim),
                             charts=[_chart(ch, lim) for ch in figs.get(c.id, [])[: lim.items]],
                             metrics=kv_table(c.metrics, lim) if c.metrics else None)
             for c in report.checks}

    rows, anchors = _rows(ordered, views, stage_of, lim)
    groups = _groups(report, views, stage_of)
    stages = [_stage(s, report, ordered, anchors) for s in STAGES]
    shown_checks = {v.result.id for g in groups for v in g["checks"]}
    status = {s: sum(1 for c in report.checks if c.status == s) for s in ("pass", "fail", "error", "skipped")}
    worst = report.worst()
    stage_ids = [s for s in (*STAGES, "other") if any(r["stage"] == s for r in rows)]
    return {
        "report": report, "duration": _duration(report.duration_s),
        "counts": report.counts(), "total": len(ordered), "shown": len(rows),
        "worst": worst.value if worst else None, "status": status,
        "errored": [c for c in report.checks if c.status == "error"],
        "surface": svg.attack_surface(stages), "groups": groups, "rows": rows,
        "row_stages": [(s, _stage_label(s)) for s in stage_ids],
        "row_checks": sorted({r["f"].check for r in rows}),
        "quiet": [c for c in report.checks if c.status == "pass" and not c.findings],
        "gallery": [{"check": cid, "svg": _chart(fig, lim, compact=True)} for cid, fig in gallery(report, figs)],
        "skipped": [c for c in report.checks if c.status == "skipped"],
        "severities": [s.value for s in Severity],
        "checklist": _checklist(report, shown_checks),
    }


def _stage_of(report: Report) -> dict[str, str]:
    """Check id → the first pipeline stage it guards (``other`` when none)."""
    out: dict[str, str] = {}
    for stage in STAGES:
        for cid in report.stages.get(stage, ()):
            out.setdefault(cid, stage)
    return out


def _stage_label(stage: str) -> str:
    return svg.STAGE_LABELS.get(stage, "Other")


def _rows(ordered: tuple[Finding, ...], views: dict[str, CheckView], stage_of: dict[str, str],
          lim: Limits) -> tuple[list[dict[str, Any]], set[str]]:
    """One table row per shown finding: the first ones in full (expandable), then titles only."""
    rows: list[dict[str, Any]] = []
    full = compact = 0
    per_full: Counter[str] = Counter()
    per_compact: Counter[str] = Counter()
    for f in ordered:
        v = views.get(f.check)
        if v is None:
            continue
        v.counts[f.severity.value] = v.counts.get(f.severity.value, 0) + 1
        if per_full[f.check] < lim.findings_per_check and full < lim.findings_total:
            detail: dict[str, Any] | None = _finding(f, lim)
            per_full[f.check] += 1
            full += 1
        elif per_compact[f.check] < lim.compact_per_check and compact < lim.compact_total:
            detail = None
            per_compact[f.check] += 1
            compact += 1
        else:
            continue
        if len(v.links) < lim.items:
            v.links.append(f)
        stage = stage_of.get(f.check, "other")
        rows.append({"f": f, "detail": detail, "order": len(rows), "stage": stage, "stage_label": _stage_label(stage),
                     "stage_order": (*STAGES, "other").index(stage), "where": _where_short(f)})
    return rows, {r["f"].id for r in rows}


def _where_short(f: Finding) -> str:
    """The table's "where" cell: the column or member, else the artifact's file name."""
    loc = f.location
    if loc.column is not None or loc.member is not None:
        return _clip(str(loc.column if loc.column is not None else loc.member), 80)
    return _clip(str(loc.artifact).rstrip("/").rsplit("/", 1)[-1], 80) if loc.artifact is not None else ""


def _groups(report: Report, views: dict[str, CheckView], stage_of: dict[str, str]) -> list[dict[str, Any]]:
    """Checks by pipeline stage, each stage a collapsed line with its pass/fail counts."""
    groups: list[dict[str, Any]] = []
    placed: set[str] = set()
    for stage in STAGES:
        if stage in report.stages:
            ids = [i for i in report.stages[stage] if i in views and i not in placed]
            placed.update(ids)
            groups.append({"id": f"stage-{stage}", "title": svg.STAGE_LABELS[stage],
                           "checks": [views[i] for i in ids if views[i].result.status != "skipped"]})
    rest = [v for i, v in views.items() if i not in placed and v.result.status != "skipped"]
    if rest:
        groups.append({"id": "stage-other", "title": "Other checks", "checks": rest})
    for g in groups:
        g["status"] = Counter(v.result.status for v in g["checks"])
        g["findings"] = sum(sum(v.counts.values()) for v in g["checks"])
    return groups


def _checklist(report: Report, shown: set[str]) -> dict[str, Any]:
    """The ethics checklist's sections, built by :mod:`mlwarden.checklist` from this report."""
    from ..checklist import SECTIONS, from_report

    views = from_report(report)
    sections = [{"letter": letter, "name": name,
                 "items": [{"v": v, "evidence": [{"e": e, "href": f"#check-{e.id}" if e.id in shown else None}
                                                 for e in v.evidence]}
                           for v in views if v.section == letter]}
                for letter, name in SECTIONS.items()]
    return {"sections": sections, "status": Counter(v.status for v in views)}


def _stage(stage: str, report: Report, ordered: tuple[Finding, ...], anchors: set[str]) -> svg.StageView:
    if stage not in report.stages:
        return svg.StageView(stage=stage, state="absent", findings=0, checks=0)
    ids = set(report.stages[stage])
    results = [c for c in report.checks if c.id in ids and c.status != "skipped"]
    found = [f for f in ordered if f.check in ids]
    errors = sum(1 for c in results if c.status == "error")
    state = found[0].severity.value if found else ("error" if errors else "ok")
    if found:
        first = found[0]
        href = f"#finding-{first.id}" if first.id in anchors else f"#check-{first.check}"
    else:
        href = f"#stage-{stage}"
    return svg.StageView(stage=stage, state=state, findings=len(found), checks=len(results),
                         errors=errors, href=href)


def _finding(f: Finding, lim: Limits) -> dict[str, Any]:
    loc = f.location
    where = [(k, _clip(v, lim.value)) for k, v in (("artifact", loc.artifact), ("column", loc.column),
                                                    ("member", loc.member), ("line", loc.line)) if v is not None]
    if loc.rows:
        where.append(("rows", _list_text(loc.rows, lim)))
    refs = []
    for rid in f.references[: lim.items]:
        ref = lookup(rid)
        url = ref.url if ref.url.startswith(("https://", "http://")) else None
        refs.append({"id": rid, "title": ref.title if ref.title != rid else "", "url": url})
    return {"description": doc_html(f.description, lim), "remediation": doc_html(f.remediation, lim),
            "evidence": kv_table(f.evidence, lim) if f.evidence else None, "where": where, "refs": refs}


def _chart(chart: Figure, lim: Limits, compact: bool = False) -> Markup:
    """Any figure as inline SVG; ``compact`` draws it for the three-column at-a-glance grid."""
    if isinstance(chart, Curve):
        size = {"width": GALLERY_WIDTH, "plot_h": 130} if compact else {}
        return svg.line_chart(title=chart.title, x_label=chart.x_label, y_label=chart.y_label,
                              series=chart.series, bands=chart.bands, x_log=chart.x_log, y_range=chart.y_range,
                              max_points=max(lim.bars * 4, 20), max_series=max(lim.bars // 4, 2), **size)
    if isinstance(chart, Whiskers):
        return whisker_chart(title=chart.title, x_label=chart.x_label, groups=chart.groups, series=chart.series,
                             references=chart.references, x_range=chart.x_range,
                             max_groups=min(lim.bars, 6) if compact else lim.bars,
                             width=GALLERY_WIDTH if compact else 630)
    return svg.bar_chart(title=chart.title, labels=chart.labels, values=chart.values, unit=chart.unit,
                         max_bars=min(lim.bars, 8) if compact else lim.bars,
                         **({"width": GALLERY_WIDTH} if compact else {}))


def _duration(s: float) -> str:
    if s < 60:
        return f"{s:.2f} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec} s"
