"""Inline SVG for the HTML report: the attack-surface map and horizontal bar charts.

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


_ROW_H, _LABEL_W, _BAR_W, _VALUE_W = 24, 180, 300, 150


def bar_chart(*, title: str, labels: Sequence[str], values: Sequence[float], unit: str = "",
              max_bars: int = 30) -> Markup:
    """Horizontal bars with labels and values; over ``max_bars`` bars the rest are counted."""
    shown = list(zip(labels, values))[:max_bars]
    hidden = max(len(labels) - len(shown), 0)
    nums = [v if _finite(v) else 0.0 for _, v in shown]
    lo, hi = min([0.0, *nums]), max([0.0, *nums])
    span = (hi - lo) or 1.0
    zero = _LABEL_W + _BAR_W * (0 - lo) / span
    height = 30 + _ROW_H * len(shown) + (20 if hidden else 0)
    width = _LABEL_W + _BAR_W + _VALUE_W
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="0" y="16">{escape(_clip(title, 80))}</text>',
    ]
    if lo < 0:
        parts.append(f'<line class="zero" x1="{zero:.1f}" y1="26" x2="{zero:.1f}" y2="{28 + _ROW_H * len(shown)}"/>')
    for i, ((label, value), num) in enumerate(zip(shown, nums)):
        y = 28 + i * _ROW_H
        x0, x1 = sorted((zero, _LABEL_W + _BAR_W * (num - lo) / span))
        text = _clip(f"{_fmt(value)}{' ' + unit if unit and unit != '%' else unit}", 18)
        parts.append(
            f'<text class="bar-label" x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end">{escape(_clip(label))}</text>'
            f'<rect class="bar{" neg" if num < 0 else ""}" x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{_ROW_H - 8}" rx="3"><title>{escape(_clip(label, 200))}: {escape(text)}</title></rect>'
            f'<text class="bar-value" x="{_LABEL_W + _BAR_W + 8}" y="{y + 15}">{escape(text)}</text>'
        )
    if hidden:
        parts.append(f'<text class="bar-label" x="{_LABEL_W - 8}" y="{height - 6}" text-anchor="end">'
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
