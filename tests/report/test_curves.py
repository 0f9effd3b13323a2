"""Line charts (registry.Curve) in report.html: axes, ticks, labels, series, bands, escaping, no NaN."""

from __future__ import annotations

import math
import re

from mlwarden.findings import CheckResult, Report, Target
from mlwarden.registry import Chart, Curve
from mlwarden.report.html import HtmlFormat
from mlwarden.report.svg import line_chart

XSS = "<script>alert(1)</script>"

ROC = Curve(
    title=f"ROC of {XSS}", x_label="false-positive rate", y_label=f"true-positive rate {XSS}",
    series=((f"RMIA {XSS}", ((0.0, 0.0), (1e-4, 0.02), (1e-3, 0.05), (0.01, 0.2), (0.1, 0.6), (1.0, 1.0))),
            ("threshold", ((1e-3, 0.01), (0.01, float("nan")), (0.1, 0.3), (1.0, 1.0)))),
    bands=((f"RMIA {XSS}", ((1e-3, 0.03, 0.08), (0.01, 0.15, 0.25), (0.1, 0.55, 0.65))),),
    x_log=True, y_range=(0.0, 1.0))

POISON = Curve(
    title="Backdoor success vs poison rate", x_label="poison rate (% of train)", y_label="success",
    series=(("undefended", ((0.1, 0.0), (1.0, 0.4), (10.0, 0.97))), ("screened", ((0.1, 0.0), (1.0, 0.0), (10.0, 0.02)))))


def _report() -> Report:
    check = CheckResult(id="model.privacy.membership", title="Membership", status="fail", duration_s=1.0,
                        charts=(ROC, POISON, Chart(title="bars", labels=("a", "b"), values=(1.0, 2.0))))
    return Report(tool_version="0.0.0-test", target=Target(name="t", spec="mlwarden.yaml"),
                  started_at="2026-01-01T00:00:00+00:00", duration_s=1.0, checks=(check,), engine="local",
                  stages={"serving": ["model.privacy.membership"]}, docs={})


def _svgs(html: str, section: str = 'id="checks"') -> list[str]:
    """The line charts of one part of the page: the check details (default) or the at-a-glance gallery."""
    start = html.index(section)
    end = html.find("</section>", start) if section == 'id="glance"' else len(html)
    return re.findall(r'<svg class="chart curve".*?</svg>', html[start:end], flags=re.DOTALL)


def _numbers(svg: str) -> list[str]:
    coords = re.findall(r'\b(?:d|x|y|x1|x2|y1|y2|cx|cy)="([^"]*)"', svg)
    return [tok for c in coords for tok in re.findall(r"[-+0-9.eEnaNif]+", c)]


def test_report_renders_curves_with_axes_series_and_bands() -> None:
    html = HtmlFormat().render(_report())
    roc, poison = _svgs(html)
    assert len(re.findall(r'<path class="series s\d"', roc)) == 2
    assert len(re.findall(r'<path class="band s0"', roc)) == 1
    assert roc.count('class="axis-label"') == 2 and "(log scale)" in roc
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', roc)
    assert {"1e-4", "1e-3", "0.01", "0.1", "1"} <= set(ticks)  # decades on the log FPR axis
    assert {"0", "0.2", "0.4", "0.6", "0.8", "1"} <= set(ticks)  # the fixed 0–1 rate axis
    assert "undefended" in poison and "screened" in poison and "(log scale)" not in poison
    assert '<svg class="chart" ' in html  # the bar chart beside them still renders
    [glance] = _svgs(html, 'id="glance"')  # the membership ROC is also the check's at-a-glance figure
    assert 'viewBox="0 0 440 ' in glance and "(log scale)" in glance
    assert len(re.findall(r'<path class="series s\d"', glance)) == 2


def test_compact_curve_puts_a_whole_legend_under_the_plot() -> None:
    svg = str(line_chart(title="t", x_label="x", y_label="y", width=440, plot_h=130,
                         series=(("backdoor, undefended", ((1.0, 0.1), (2.0, 0.9))),
                                 ("backdoor, screened", ((1.0, 0.0), (2.0, 0.05))))))
    legend = re.findall(r'<text class="legend" x="([0-9.]+)" y="([0-9.]+)">([^<]*)</text>', svg)
    assert [t for *_, t in legend] == ["backdoor, undefended", "backdoor, screened"]  # not clipped
    height = float(re.search(r'viewBox="0 0 440 ([0-9.]+)"', svg).group(1))
    assert all(float(y) > 30 + 130 for _, y, _ in legend) and all(float(y) < height for _, y, _ in legend)
    (x1, y1, _), (x2, y2, _) = legend
    assert y1 != y2 or float(x2) - float(x1) >= 7 * len("backdoor, undefended")  # no overlap


def test_curve_coordinates_are_finite_and_labels_escaped() -> None:
    html = HtmlFormat().render(_report())
    for svg in _svgs(html):
        nums = _numbers(svg)
        assert nums and all(math.isfinite(float(n)) for n in nums), nums
        assert "nan" not in svg.lower().replace("alert", "")
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_log_axis_drops_nonpositive_x_and_nan_points() -> None:
    svg = str(line_chart(title="t", x_label="x", y_label="y", x_log=True,
                         series=(("a", ((0.0, 0.5), (-1.0, 0.2), (0.01, float("nan")), (0.1, 0.3), (1.0, 0.9))),)))
    [d] = re.findall(r'<path class="series s0" d="([^"]*)"', svg)
    assert d.count("L") == 1  # only (0.1, 0.3) and (1.0, 0.9) are drawable


def test_long_series_are_thinned_and_keep_their_ends() -> None:
    pts = tuple((i / 999, (i / 999) ** 0.5) for i in range(1000))
    svg = str(line_chart(title="t", x_label="x", y_label="y", series=(("a", pts),), max_points=50))
    [d] = re.findall(r'<path class="series s0" d="([^"]*)"', svg)
    segs = d[1:].split(" L")
    assert 40 <= len(segs) <= 52
    assert float(segs[-1].split(",")[0]) == max(float(s.split(",")[0]) for s in segs)  # the last point stays


def test_empty_curve_says_so() -> None:
    svg = str(line_chart(title="t", x_label="x", y_label="y", series=(("a", ((float("nan"), 1.0),)),)))
    assert "no finite points" in svg and "<path" not in svg
