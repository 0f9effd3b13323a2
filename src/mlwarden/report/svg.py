"""Inline SVG for the HTML report: the attack-surface map, horizontal bar charts and line charts.

Hand-written SVG rather than a charting library keeps the report self-contained and
offline. Every piece of text that reaches the markup goes through ``escape``; colours come
from CSS classes (``sev-*``) so the stylesheet owns the palette and the map stays
consistent with the severity badges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

STAGE_LABELS: dict[str, str] = {
    "data": "Data sources",
    "splits": "Splits",
    "training": "Training",
    "artifact": "Model artifact",
    "serving": "Serving endpoint",
    "feedback": "Feedback loop",
}


@dataclass(frozen=True, kw_only=True)
class StageView:
    """One box of the map, already judged: ``state`` is a severity, ``ok``, ``error`` or ``absent``."""

    stage: str
    state: str
    findings: int
    checks: int
    errors: int = 0
    href: str | None = None


_BOX_W, _BOX_H, _GAP, _PAD_X, _TOP = 162, 96, 34, 16, 14


def attack_surface(stages: Sequence[StageView]) -> Markup:
    """The pipeline left to right, each stage coloured by its worst finding, linked to it."""
    width = _PAD_X * 2 + len(stages) * _BOX_W + max(len(stages) - 1, 0) * _GAP
    height = _TOP + _BOX_H + 78
    parts: list[str] = [
        f'<svg class="surface" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-labelledby="surface-title surface-desc">',
        '<title id="surface-title">Attack-surface map of the pipeline</title>',
        f'<desc id="surface-desc">{escape(_describe(stages))}</desc>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>',
    ]
    xs = [_PAD_X + i * (_BOX_W + _GAP) for i in range(len(stages))]
    mid_y = _TOP + _BOX_H / 2
    for x in xs[:-1]:
        parts.append(f'<line class="flow" x1="{x + _BOX_W + 2}" y1="{mid_y}" x2="{x + _BOX_W + _GAP - 3}" '
                     f'y2="{mid_y}" marker-end="url(#arrow)"/>')
    names = [s.stage for s in stages]
    if "feedback" in names and "data" in names:
        x_from = xs[names.index("feedback")] + _BOX_W / 2
        x_to = xs[names.index("data")] + _BOX_W / 2
        bottom, low = _TOP + _BOX_H + 3, _TOP + _BOX_H + 46
        parts.append(f'<path class="loop" d="M{x_from},{bottom} C{x_from},{low} {x_from - 40},{low} '
                     f'{x_from - 80},{low} L{x_to + 80},{low} C{x_to + 40},{low} {x_to},{low} {x_to},{bottom + 4}" '
                     'marker-end="url(#arrow)" fill="none"/>')
        parts.append(f'<text class="loop-label" x="{(x_from + x_to) / 2}" y="{low + 18}" text-anchor="middle">'
                     'feedback flows back into the data the model is retrained on</text>')
    for x, s in zip(xs, stages):
        parts.append(_box(x, s))
    parts.append("</svg>")
    return Markup("".join(parts))


def _box(x: float, s: StageView) -> str:
    label = escape(STAGE_LABELS.get(s.stage, s.stage))
    if s.state == "absent":
        lines = ["not in this", "pipeline"]
    else:
        lines = [_plural(s.findings, "finding"), _status_line(s)]
    cx = x + _BOX_W / 2
    body = (f'<rect x="{x}" y="{_TOP}" width="{_BOX_W}" height="{_BOX_H}" rx="10"/>'
            f'<text class="stage-name" x="{cx}" y="{_TOP + 26}" text-anchor="middle">{label}</text>'
            f'<text class="stage-line" x="{cx}" y="{_TOP + 52}" text-anchor="middle">{escape(lines[0])}</text>'
            f'<text class="stage-line" x="{cx}" y="{_TOP + 72}" text-anchor="middle">{escape(lines[1])}</text>')
    summary = escape(" ".join(lines) if s.state == "absent" else ", ".join(lines))
    title = f"<title>{label}: {summary}</title>"
    if s.href:
        body = f'<a href="{escape(s.href)}" aria-label="{label}: {summary}">{title}{body}</a>'
    else:
        body = title + body
    extra = " unchecked" if s.state == "ok" and not s.checks else ""
    return f'<g class="stage sev-{escape(s.state)}{extra}" data-stage="{escape(s.stage)}">{body}</g>'


def _status_line(s: StageView) -> str:
    if not s.checks:
        return "no checks ran"
    if s.state in ("ok", "error"):
        head = "no findings"
    else:
        head = f"worst: {s.state}"
    if s.errors:
        return f"{head}, {_plural(s.errors, 'error')}"
    return head if s.state != "ok" else _plural(s.checks, "check") + " passed"


def _describe(stages: Sequence[StageView]) -> str:
    out = []
    for s in stages:
        name = STAGE_LABELS.get(s.stage, s.stage)
        if s.state == "absent":
            out.append(f"{name}: not in this pipeline")
        else:
            out.append(f"{name}: {_plural(s.findings, 'finding')}, {_status_line(s)}")
    return "Pipeline stages from data to feedback. " + "; ".join(out) + "."


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


_ROW_H, _BAR_WIDTH = 24, 630


def bar_chart(*, title: str, labels: Sequence[str], values: Sequence[float], unit: str = "",
              max_bars: int = 30, width: int = _BAR_WIDTH) -> Markup:
    """Horizontal bars with labels and values; over ``max_bars`` bars the rest are counted.

    ``width`` is the drawing's own width (the page scales it to fit); labels and values are
    clipped to what their columns hold at that width.
    """
    label_w, value_w = round(width * 0.29), round(width * 0.21)
    bar_w = width - label_w - value_w
    shown = list(zip(labels, values))[:max_bars]
    hidden = max(len(labels) - len(shown), 0)
    nums = [v if _finite(v) else 0.0 for _, v in shown]
    lo, hi = min([0.0, *nums]), max([0.0, *nums])
    span = (hi - lo) or 1.0
    zero = label_w + bar_w * (0 - lo) / span
    height = 30 + _ROW_H * len(shown) + (20 if hidden else 0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="0" y="16">{escape(_clip(title, width // 7))}</text>',
    ]
    if lo < 0:
        parts.append(f'<line class="zero" x1="{zero:.1f}" y1="26" x2="{zero:.1f}" y2="{28 + _ROW_H * len(shown)}"/>')
    for i, ((label, value), num) in enumerate(zip(shown, nums)):
        y = 28 + i * _ROW_H
        x0, x1 = sorted((zero, label_w + bar_w * (num - lo) / span))
        text = _clip(f"{_fmt(value)}{' ' + unit if unit and unit != '%' else unit}", max(value_w // 7, 6))
        parts.append(
            f'<text class="bar-label" x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
            f'{escape(_clip(label, max(label_w // 7, 6)))}</text>'
            f'<rect class="bar{" neg" if num < 0 else ""}" x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{_ROW_H - 8}" rx="3"><title>{escape(_clip(label, 200))}: {escape(text)}</title></rect>'
            f'<text class="bar-value" x="{label_w + bar_w + 8}" y="{y + 15}">{escape(text)}</text>'
        )
    if hidden:
        parts.append(f'<text class="bar-label" x="{label_w - 8}" y="{height - 6}" text-anchor="end">'
                     f'… {hidden:,} more not shown</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v: object) -> str:
    if not isinstance(v, (int, float)):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.3g}" if abs(v) < 1 else f"{v:,.2f}"


def _clip(text: object, n: int = 22) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


_LINE_WIDTH, _PLOT_H, _LEFT, _TOP_C, _BOTTOM = 672, 240, 62, 30, 46
_SERIES_CLASSES = 8
Point = tuple[float, float]


def line_chart(*, title: str, x_label: str, y_label: str, series: Sequence[tuple[str, Sequence[Point]]],
               bands: Sequence[tuple[str, Sequence[tuple[float, float, float]]]] = (), x_log: bool = False,
               y_range: tuple[float, float] | None = None, max_points: int = 200, max_series: int = 8,
               width: int = _LINE_WIDTH, plot_h: int = _PLOT_H) -> Markup:
    """Named series as lines over x/y axes with ticks and labels, each with an optional band.

    Non-finite points (and, on a log x axis, points with x ≤ 0) are left out rather than
    drawn, so no NaN ever reaches a coordinate; long series are thinned to ``max_points``.
    ``width`` and ``plot_h`` size the drawing: from 600 units wide the legend stands at the
    right, below that it runs in rows under the plot so that long series names stay whole.
    """
    below = width < 600
    legend_w = 0 if below else min(190, round(width * 0.3))
    plot_w = width - _LEFT - (14 if below else legend_w)
    names = [str(n) for n, _ in series][:max_series]
    lines = [_thin([(float(x), float(y)) for x, y in pts if _plottable(x, y, x_log)], max_points)
             for _, pts in list(series)[:max_series]]
    spans = {str(n): _thin([(float(x), float(lo), float(hi)) for x, lo, hi in pts
                            if _plottable(x, lo, x_log) and _finite(hi)], max_points) for n, pts in bands}
    xs = [x for pts in lines for x, _ in pts] + [b[0] for pts in spans.values() for b in pts]
    ys = [y for pts in lines for _, y in pts] + [v for pts in spans.values() for b in pts for v in b[1:]]
    slots = _legend_slots(names, width) if below else []
    height = _TOP_C + plot_h + _BOTTOM + (slots[-1][1] + 16 if slots else 0)
    parts = [(f'<svg class="chart curve" viewBox="0 0 {width} {height}" width="{width}" role="img" '
              f'aria-label="{escape(title)}">'), f"<title>{escape(title)}</title>",
             f'<text class="chart-title" x="0" y="16">{escape(_clip(title, width // 7))}</text>']
    if not xs:
        parts.append(f'<text class="bar-label" x="{_LEFT}" y="{_TOP_C + 20}">no finite points to draw</text></svg>')
        return Markup("".join(parts))
    fx = _scale(min(xs), max(xs), _LEFT, _LEFT + plot_w, x_log)
    lo_y, hi_y = y_range if y_range else (min(ys), max(ys))
    fy = _scale(lo_y, hi_y, _TOP_C + plot_h, _TOP_C, False)
    bottom, right = _TOP_C + plot_h, _LEFT + plot_w
    for v in _ticks(min(xs), max(xs), x_log):
        x = fx(v)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{_TOP_C}" x2="{x:.1f}" y2="{bottom}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(_tick(v, x_log))}</text>')
    for v in _ticks(lo_y, hi_y, False):
        y = fy(v)
        parts.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_tick(v, False))}</text>')
    parts.append(f'<path class="axis" d="M{_LEFT},{_TOP_C} L{_LEFT},{bottom} L{right},{bottom}"/>'
                 f'<text class="axis-label" x="{_LEFT + plot_w / 2}" y="{bottom + _BOTTOM - 6}" text-anchor="middle">'
                 f'{escape(_clip(x_label, plot_w // 7))}{" (log scale)" if x_log else ""}</text>'
                 f'<text class="axis-label" transform="translate(14,{_TOP_C + plot_h / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(_clip(y_label, plot_h // 7))}</text>')
    for i, (name, pts) in enumerate(zip(names, lines)):
        cls = f"s{i % _SERIES_CLASSES}"
        band = spans.get(name)
        if band:
            upper = " L".join(f"{fx(x):.1f},{fy(hi):.1f}" for x, _, hi in band)
            lower = " L".join(f"{fx(x):.1f},{fy(lo):.1f}" for x, lo, _ in reversed(band))
            parts.append(f'<path class="band {cls}" d="M{upper} L{lower} Z"><title>{escape(name)}: '
                         "confidence band</title></path>")
        if pts:
            d = " L".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in pts)
            marks = "".join(f'<circle class="mark {cls}" cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="2.5"/>'
                            for x, y in pts) if len(pts) <= 12 else ""
            parts.append(f'<path class="series {cls}" d="M{d}" fill="none"><title>{escape(_clip(name, 200))}</title>'
                         f"</path>{marks}")
        if below:
            lx, ly = slots[i][0], _TOP_C + plot_h + _BOTTOM + slots[i][1] + 4
            text = _clip(name, _LEGEND_CHARS)
        else:
            lx, ly = right + 14, _TOP_C + 8 + i * 20
            text = _clip(name, max((legend_w - 42) // 7, 6))
        parts.append(f'<line class="series {cls}" x1="{lx}" y1="{ly}" x2="{lx + 22}" y2="{ly}"/>'
                     f'<text class="legend" x="{lx + 28}" y="{ly + 4}">{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


_LEGEND_CHARS = 34


def _legend_slots(names: Sequence[str], width: int) -> list[tuple[int, int]]:
    """(x, y offset) of each legend entry laid out in rows under the plot, left to right."""
    out, x, y = [], _LEFT, 0
    for name in names:
        w = 44 + 7 * len(_clip(name, _LEGEND_CHARS))
        if x > _LEFT and x + w > width:
            x, y = _LEFT, y + 16
        out.append((x, y))
        x += w
    return out


def _plottable(x: object, y: object, x_log: bool) -> bool:
    return _finite(x) and _finite(y) and (not x_log or float(x) > 0)  # type: ignore[arg-type]


def _thin(pts: list, n: int) -> list:
    """Every k-th point, keeping the last, so a long ROC curve stays a few kilobytes."""
    if len(pts) <= n:
        return pts
    step = math.ceil(len(pts) / n)
    return pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])


def _scale(lo: float, hi: float, a: float, b: float, log: bool):  # type: ignore[no-untyped-def]
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    k = (b - a) / (hi - lo)
    return lambda v: a + ((math.log10(v) if log else v) - lo) * k


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    """Decades on a log axis; about five round numbers on a linear one."""
    if log:
        return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                if lo * (1 - 1e-9) <= 10.0 ** e <= hi * (1 + 1e-9)] or [lo, hi]
    if hi - lo < 1e-12:
        return [lo]
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick(v: float, log: bool) -> str:
    if log:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e") if v < 0.01 or v >= 1e4 else f"{v:g}"
    return f"{v:g}"
