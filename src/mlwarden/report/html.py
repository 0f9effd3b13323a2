"""report.html — one self-contained page a person reads: summary, attack-surface map, checks.

The page works offline (inline CSS, inline SVG, a few lines of inline JS, no external
resources) and stays under 5 MB whatever the data size: findings, evidence, metrics and
lists are shown up to :class:`Limits`, with a note saying how much more report.json holds.
If a page still comes out too big (a pathological report), it is rendered again with
halved limits until it fits.

Everything user-derived (column names, paths, evidence values) reaches the markup escaped:
the template autoescapes, and the HTML built here goes through ``markupsafe`` formatting.
A Content-Security-Policy pins the page's own style and script by hash, so even a missed
escape could not run a script.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..findings import CheckResult, Finding, Report, Severity
from ..references import lookup
from ..registry import STAGES
from . import svg

BUDGET = 4_500_000
"""Bytes; below the 5 MB promise of DESIGN.md, with room to spare."""


@dataclass(frozen=True)
class Limits:
    """How much of each kind of thing the page shows in full."""

    findings_per_check: int = 50
    findings_total: int = 300
    compact_per_check: int = 200
    compact_total: int = 2000
    rows: int = 40
    items: int = 20
    depth: int = 4
    text: int = 2000
    value: int = 300
    bars: int = 30

    def halved(self) -> Limits:
        return Limits(**{k: max(v // 2, 1) for k, v in self.__dict__.items()})


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
    return env.get_template("report.html.j2")


@dataclass
class CheckView:
    result: CheckResult
    doc: Markup
    charts: list[Markup]
    metrics: Markup | None
    full: list[dict[str, Any]] = field(default_factory=list)
    compact: list[Finding] = field(default_factory=list)
    hidden: int = 0

    @property
    def anchor(self) -> str:
        return f"check-{self.result.id}"


def _view(report: Report, lim: Limits) -> dict[str, Any]:
    """Everything the template needs, with the caps applied."""
    ordered = report.findings
    views = {c.id: CheckView(result=c, doc=doc_html(report.docs.get(c.id, ""), lim),
                             charts=[_chart(ch, lim) for ch in c.charts],
                             metrics=kv_table(c.metrics, lim) if c.metrics else None)
             for c in report.checks}
    full = compact = 0
    anchors: set[str] = set()
    for f in ordered:
        v = views.get(f.check)
        if v is None:
            continue
        if len(v.full) < lim.findings_per_check and full < lim.findings_total:
            v.full.append(_finding(f, lim))
            full += 1
        elif len(v.compact) < lim.compact_per_check and compact < lim.compact_total:
            v.compact.append(f)
            compact += 1
        else:
            v.hidden += 1
            continue
        anchors.add(f.id)

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

    stages = [_stage(s, report, ordered, anchors) for s in STAGES]
    shown_checks = {v.result.id for g in groups for v in g["checks"]}
    status = {s: sum(1 for c in report.checks if c.status == s) for s in ("pass", "fail", "error", "skipped")}
    worst = report.worst()
    return {
        "report": report, "duration": _duration(report.duration_s),
        "counts": report.counts(), "total": len(ordered), "shown": full + compact,
        "worst": worst.value if worst else None, "status": status,
        "errored": [c for c in report.checks if c.status == "error"],
        "surface": svg.attack_surface(stages), "groups": groups,
        "skipped": [c for c in report.checks if c.status == "skipped"],
        "severities": [s.value for s in Severity],
        "checklist": _checklist(report, shown_checks),
    }


def _checklist(report: Report, shown: set[str]) -> list[dict[str, Any]]:
    """The ethics checklist's sections, built by :mod:`mlwarden.checklist` from this report."""
    from ..checklist import SECTIONS, from_report

    views = from_report(report)
    return [{"letter": letter, "name": name,
             "items": [{"v": v, "evidence": [{"e": e, "href": f"#check-{e.id}" if e.id in shown else None}
                                             for e in v.evidence]}
                       for v in views if v.section == letter]}
            for letter, name in SECTIONS.items()]


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
    return {"f": f, "description": doc_html(f.description, lim), "remediation": doc_html(f.remediation, lim),
            "evidence": kv_table(f.evidence, lim) if f.evidence else None, "where": where, "refs": refs}


def _chart(chart: Any, lim: Limits) -> Markup:
    return svg.bar_chart(title=chart.title, labels=chart.labels, values=chart.values,
                         unit=chart.unit, max_bars=lim.bars)


# --- values as compact tables ----------------------------------------------------------

def kv_table(data: Mapping[Any, Any], lim: Limits, depth: int = 0) -> Markup:
    """A nested key/value table, cut to ``lim.rows`` keys per level and ``lim.depth`` levels."""
    rows = [Markup('<tr><th scope="row">{}</th><td>{}</td></tr>').format(_clip(k, lim.value), _value(v, lim, depth + 1))
            for k, v in islice(data.items(), lim.rows)]
    if len(data) > lim.rows:
        rows.append(Markup('<tr class="more"><td colspan="2">… {:,} more keys (see report.json)</td></tr>')
                    .format(len(data) - lim.rows))
    return Markup('<table class="kv"><tbody>{}</tbody></table>').format(Markup("").join(rows))


def _value(v: Any, lim: Limits, depth: int) -> Markup:
    v = _plain(v)
    if isinstance(v, Mapping):
        if not v:
            return Markup('<span class="dim">(empty)</span>')
        if depth >= lim.depth:
            return escape(_short(v, lim))
        return kv_table(v, lim, depth)
    if isinstance(v, (list, tuple, set, frozenset)):
        seq = v if isinstance(v, (list, tuple)) else sorted(v, key=str)  # sets: a stable order
        if not seq:
            return Markup('<span class="dim">(none)</span>')
        if all(_scalar(_plain(x)) for x in islice(seq, lim.items)) or depth >= lim.depth:
            return escape(_list_text(seq, lim))
        head = {f"[{i}]": x for i, x in enumerate(islice(seq, lim.items))}
        out = kv_table(head, lim, depth)
        if len(seq) > lim.items:
            out += Markup('<div class="more">… {:,} more items</div>').format(len(seq) - lim.items)
        return out
    if v is None:
        return Markup('<span class="dim">null</span>')
    if isinstance(v, bool):
        return escape(str(v).lower())
    if isinstance(v, (int, float)):
        return escape(_num(v))
    return escape(_clip(v, lim.value))


def _plain(v: Any) -> Any:
    """numpy scalars and arrays become Python values."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        try:
            return v.tolist()
        except Exception:
            return str(v)
    return v


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool, bytes))


def _list_text(seq: Any, lim: Limits) -> str:
    seq = list(seq) if not isinstance(seq, (list, tuple)) else seq
    head = [_num(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else _short(_plain(x), lim, 80)
            for x in seq[: lim.items]]
    text = ", ".join(head)
    if len(seq) > lim.items:
        text += f", … ({len(seq):,} in all)"
    return _clip(text, lim.value * 4)


def _short(v: Any, lim: Limits, n: int | None = None) -> str:
    """Text of a value too deep or too nested for a table; reprlib never builds the whole repr."""
    if isinstance(v, str):
        return _clip(v, n or lim.value)
    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxtuple, r.maxset = 2, lim.items, lim.items, lim.items, lim.items
    r.maxstring = r.maxother = r.maxlong = lim.value
    return _clip(r.repr(v), n or lim.value)


def _num(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.6g}"


def _clip(v: Any, n: int) -> str:
    s = v if isinstance(v, str) else str(v)
    return s if len(s) <= n else f"{s[:n]}… ({len(s):,} characters)"


def _duration(s: float) -> str:
    if s < 60:
        return f"{s:.2f} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec} s"


# --- Markdown-ish documentation ----------------------------------------------------------

_INLINE = re.compile(r"``(.+?)``|`([^`]+?)`|\*\*(.+?)\*\*|(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")


def doc_html(text: str, lim: Limits) -> Markup:
    """Paragraphs and ``- `` lists with **bold**, *emphasis* and `code`; everything else escaped."""
    out = []
    for block in re.split(r"\n\s*\n", _clip(text.strip(), lim.text)):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if not lines or not lines[0]:
            continue
        if all(ln.startswith(("- ", "* ")) for ln in lines):
            items = Markup("").join(Markup("<li>{}</li>").format(_inline(ln[2:])) for ln in lines)
            out.append(Markup("<ul>{}</ul>").format(items))
        else:
            out.append(Markup("<p>{}</p>").format(_inline(" ".join(lines))))
    return Markup("").join(out)


def _inline(text: str) -> Markup:
    """Escape first, then turn the markers into tags: the markers survive escaping unchanged."""

    def sub(m: re.Match[str]) -> str:
        code = m.group(1) or m.group(2)
        if code is not None:
            return f"<code>{code}</code>"
        if m.group(3) is not None:
            return f"<strong>{_INLINE.sub(sub, m.group(3))}</strong>"
        return f"<em>{m.group(4)}</em>"

    return Markup(_INLINE.sub(sub, str(escape(text))))
