"""Inline SVG of point estimates with confidence whiskers: one row per group, one dot per series.

The picture statisticians draw for "is this group different, and how sure are we": group
rates with their intervals (fairness), effect sizes per column with bootstrap intervals
(drift), shares per split (leakage). Vertical reference lines mark thresholds or the
reference group. Like :mod:`.svg`, every text goes through ``escape`` and every coordinate
comes from a finite number, so no NaN reaches the markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from .svg import _clip, _finite, _fmt, _scale, _tick, _ticks

Estimate = tuple[float, float, float]
_SERIES_CLASSES = 8


def whisker_chart(*, title: str, x_label: str, groups: Sequence[str],
                  series: Sequence[tuple[str, Sequence[Estimate]]], references: Sequence[tuple[str, float]] = (),
                  x_range: tuple[float, float] | None = None, max_groups: int = 30, width: int = 630) -> Markup:
    """Rows of groups; in each, every series' estimate as a dot with its (low, high) whisker.

    Estimates that are not finite are left out (the group keeps its row); an interval with
    a non-finite end is drawn as the dot alone.
    """
    names = [str(n) for n, _ in series][:_SERIES_CLASSES]
    rows = [str(g) for g in groups][:max_groups]
    hidden = max(len(groups) - len(rows), 0)
    data = [[_estimate(vals[i]) if i < len(vals) else None for i in range(len(rows))] for _, vals in series]
    data = data[: len(names)]
    refs = [(str(label), float(x)) for label, x in references if _finite(x)]
    values = [v for col in data for e in col if e for v in e if v is not None and _finite(v)]
    lo, hi = x_range if x_range else (min([0.0, *values, *(x for _, x in refs)]),
                                       max([0.0, *values, *(x for _, x in refs)]))
    if not (_finite(lo) and _finite(hi)) or hi <= lo:
        lo, hi = (lo, lo + 1.0) if _finite(lo) else (0.0, 1.0)

    label_w, right = round(width * 0.3), width - 18
    legend = len(names) > 1
    fx = _scale(lo, hi, label_w, right, False)
    ref_rows = _ref_rows([(label, fx(x)) for label, x in refs])
    top = 30 + (18 if legend else 0) + 13 * (max(ref_rows, default=-1) + 1)
    row_h = max(20, 8 + 6 * len(names))
    bottom = top + row_h * max(len(rows), 1)
    height = bottom + 40 + (18 if hidden else 0)
    parts = [f'<svg class="chart whiskers" viewBox="0 0 {width} {height}" width="{width}" role="img" '
             f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>",
             f'<text class="chart-title" x="0" y="16">{escape(_clip(title, width // 7))}</text>']
    if legend:
        x = 0.0
        for i, name in enumerate(names):
            text = _clip(name, 22)
            parts.append(f'<circle class="dot s{i}" cx="{x + 5:.1f}" cy="35" r="4"/>'
                         f'<text class="legend" x="{x + 13:.1f}" y="39">{escape(text)}</text>')
            x += 24 + 7 * len(text)
    for v in _ticks(lo, hi, False):
        x = fx(v)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{bottom + 15}" text-anchor="middle">{escape(_tick(v, False))}</text>')
    parts.append(f'<path class="axis" d="M{label_w},{bottom} L{right},{bottom}"/>'
                 f'<text class="axis-label" x="{(label_w + right) / 2:.1f}" y="{bottom + 33}" text-anchor="middle">'
                 f'{escape(_clip(x_label, (right - label_w) // 7))}</text>')
    for (label, x), level in zip(refs, ref_rows):
        if lo <= x <= hi:
            parts.append(f'<line class="ref" x1="{fx(x):.1f}" y1="{top - 4}" x2="{fx(x):.1f}" y2="{bottom}">'
                         f"<title>{escape(_clip(label, 200))}: {escape(_fmt(x))}</title></line>"
                         f'<text class="ref-label" x="{fx(x):.1f}" y="{top - 7 - 13 * level}" text-anchor="middle">'
                         f"{escape(_clip(label, 18))}</text>")
    for r, group in enumerate(rows):
        y0 = top + r * row_h
        if r % 2 == 0:
            parts.append(f'<rect class="band-row" x="{label_w}" y="{y0}" width="{right - label_w}" height="{row_h}"/>')
        parts.append(f'<text class="bar-label" x="{label_w - 8}" y="{y0 + row_h / 2 + 4:.1f}" text-anchor="end">'
                     f"{escape(_clip(group, max(label_w // 7, 6)))}</text>")
        for i, name in enumerate(names):
            e = data[i][r]
            if e is None:
                continue
            est, low, high = e
            y = y0 + row_h / 2 + (i - (len(names) - 1) / 2) * 6
            tip = f"{group} — {name}: {_fmt(est)}" + (f" ({_fmt(low)} to {_fmt(high)})" if low is not None else "")
            body = f"<title>{escape(_clip(tip, 300))}</title>"
            if low is not None and high is not None:
                a, b = fx(max(low, lo)), fx(min(high, hi))
                body += (f'<path class="whisker s{i}" d="M{a:.1f},{y:.1f} L{b:.1f},{y:.1f} M{a:.1f},{y - 3:.1f} '
                         f'L{a:.1f},{y + 3:.1f} M{b:.1f},{y - 3:.1f} L{b:.1f},{y + 3:.1f}"/>')
            body += f'<circle class="dot s{i}" cx="{fx(min(max(est, lo), hi)):.1f}" cy="{y:.1f}" r="4"/>'
            parts.append(f"<g>{body}</g>")
    if hidden:
        parts.append(f'<text class="bar-label" x="0" y="{height - 6}">… {hidden:,} more not shown</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _ref_rows(refs: Sequence[tuple[str, float]]) -> list[int]:
    """The text row of each reference label: a label that would overlap the one before moves up."""
    rows, last_end = [], [-1e9, -1e9]
    for label, x in refs:
        half = 3.3 * len(_clip(label, 18))
        level = 0 if x - half > last_end[0] else 1
        last_end[level] = x + half
        rows.append(level)
    return rows


def _estimate(e: Any) -> tuple[float, float | None, float | None] | None:
    """(estimate, low, high) with non-finite parts dropped; None when the estimate itself is missing."""
    try:
        est, low, high = (float(v) if v is not None else math.nan for v in e)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(est):
        return None
    if not (math.isfinite(low) and math.isfinite(high)):
        return est, None, None
    return est, min(low, high), max(low, high)
