"""report.html in a real headless Chromium: two screens, filters, sorting, expanding, pictures, no errors.

The demo report at 1400×900: everything but the findings table fits in two screens; the
severity chips, stage/check/text filters and column sorting work; rows expand to their
evidence; the at-a-glance SVG figures draw; links open the collapsed parts they point
into; without JavaScript everything stays readable; hostile text stays text.
Set ``MLWARDEN_SCREENSHOT=/path/report.png`` to keep the full-page picture of the demo.

Uses Debian's /usr/bin/chromium through Playwright (never ``playwright install``: no
network). Without Chromium the tests skip, except under CI, where they fail loudly.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlwarden.findings import Report
from mlwarden.registry import STAGES
from mlwarden.report.html import HtmlFormat

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
LEAK = "data.leakage.exact_duplicates"
VIEWPORT = {"width": 1400, "height": 900}
XSS = "<script>alert(1)</script>"  # planted by the hostile_report fixture (conftest.py)


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must run the browser tests (install it with `make chromium`)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _open(browser: Any, report: Report, path: Path, js: bool = True) -> tuple[Any, list[str]]:
    """Write and load the report in a 1400×900 window; return the page and everything that went wrong on it."""
    path.write_text(HtmlFormat().render(report), encoding="utf-8")
    context = browser.new_context(viewport=VIEWPORT, java_script_enabled=js)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: r.url.startswith(("file:", "data:")) or problems.append(f"request: {r.url}"))
    page.route("http*://**", lambda route: route.abort())
    page.goto(path.as_uri(), wait_until="load")
    return page, problems


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _visible_rows(page: Any, attr: str) -> list[str]:
    return page.eval_on_selector_all(".frow", f"rs => rs.filter(r => !r.hidden).map(r => r.getAttribute('{attr}'))")


def test_demo_report_in_chromium(browser: Any, demo_report: Report, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page, problems = _open(browser, demo_report, tmp_path / "report.html")
    try:
        summary = page.locator("#summary")
        expect(summary).to_be_visible()
        counts = demo_report.counts()
        for sev, n in counts.items():
            expect(summary.locator(f'[data-severity-count="{sev}"] b')).to_have_text(f"{n:,}")
        expect(summary).to_contain_text(f"{len(demo_report.findings)} findings")

        # two screens: everything but the (scrolling) findings table fits in twice the window's height,
        # with the summary and the top of the findings table on the first screen
        expect(page.locator("#f-count")).to_have_text(f"{len(demo_report.findings)} of {len(demo_report.findings)} shown")
        assert page.locator(".frow[open]").count() == 0
        height = page.evaluate("document.documentElement.scrollHeight")
        table = page.locator(".ftable").bounding_box()
        assert height <= 2 * VIEWPORT["height"] + table["height"], (height, table)
        assert summary.bounding_box()["y"] + summary.bounding_box()["height"] <= VIEWPORT["height"]
        assert table["y"] < VIEWPORT["height"] - 100
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]  # no sideways scrolling
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)  # the page as it opens: everything collapsed
        data = shot.read_bytes()
        width, png_height = _png_size(data)
        assert width == VIEWPORT["width"] and png_height == height and len(data) > 50_000
        if os.environ.get("MLWARDEN_SCREENSHOT"):  # for people: keep the picture of the demo report
            Path(os.environ["MLWARDEN_SCREENSHOT"]).write_bytes(data)

        stages = page.locator("#attack-surface svg [data-stage]")
        expect(stages).to_have_count(6)
        splits = page.locator('#attack-surface svg [data-stage="splits"]')
        expect(splits).to_have_class("stage sev-critical")
        fill = splits.locator("rect").evaluate("r => getComputedStyle(r).fill")
        assert fill == "rgb(127, 29, 29)"  # the stylesheet applied (its CSP hash matched)

        # the stage links to its worst finding (findings are sorted worst first), which opens
        leak = next(f for f in demo_report.findings if f.check in demo_report.stages["splits"])
        assert leak.severity.value == "critical"
        target = page.locator(f"#finding-{leak.id}")
        expect(target).not_to_have_attribute("open", "")
        splits.locator("a").click()
        page.wait_for_function("id => location.hash === '#finding-' + id", arg=leak.id)
        expect(target).to_be_in_viewport()
        expect(target).to_have_attribute("open", "")
        assert page.evaluate("window.scrollY") > 0

        page.locator('button[data-filter="critical"]').click()  # the severity filter hides it …
        expect(target).to_be_hidden()
        rest = len(demo_report.findings) - counts["critical"]
        expect(page.locator("#f-count")).to_have_text(f"{rest} of {len(demo_report.findings)} shown")
        assert "critical" not in _visible_rows(page, "data-severity")
        page.locator('button[data-filter="critical"]').click()  # … and shows it again
        expect(target).to_be_visible()
        target.locator("summary").click()
        expect(target).not_to_have_attribute("open", "")

        # stage, check and free-text filters
        page.select_option("#f-stage", "feedback")
        first_stage = {}  # a finding's stage is the first stage (data → feedback) whose checks include it
        for stage in STAGES:
            for cid in demo_report.stages.get(stage, ()):
                first_stage.setdefault(cid, stage)
        in_feedback = [f for f in demo_report.findings if first_stage.get(f.check) == "feedback"]
        assert set(_visible_rows(page, "data-stage")) == {"feedback"}
        assert len(_visible_rows(page, "id")) == len(in_feedback) > 0
        page.select_option("#f-stage", "")
        page.select_option("#f-check", LEAK)
        assert _visible_rows(page, "data-check") == [LEAK] * sum(f.check == LEAK for f in demo_report.findings)
        page.select_option("#f-check", "")
        page.fill("#f-text", "applicant_id")
        hits = _visible_rows(page, "id")
        assert 0 < len(hits) < len(demo_report.findings)
        page.fill("#f-text", "")
        assert len(_visible_rows(page, "id")) == len(demo_report.findings)

        # sorting reorders the rows; ties keep the worst-first order
        order = _visible_rows(page, "id")
        page.locator('button[data-sort="check"]').click()
        checks = _visible_rows(page, "data-check")
        assert checks == sorted(checks) and _visible_rows(page, "id") != order
        page.locator('button[data-sort="check"]').click()
        assert _visible_rows(page, "data-check") == sorted(checks, reverse=True)
        expect(page.locator('button[data-sort="check"]')).to_have_attribute("data-dir", "-1")
        page.locator('button[data-sort="stage"]').click()
        stage_order = [int(x) for x in _visible_rows(page, "data-stage-order")]
        assert stage_order == sorted(stage_order)
        page.locator('button[data-sort="severity"]').click()
        assert _visible_rows(page, "id") == order

        # expanding a row shows its evidence
        row = page.locator(f"#finding-{leak.id}")
        evidence = row.locator(".evidence")
        expect(evidence).to_be_hidden()
        row.locator("summary").click()
        expect(evidence).to_be_visible()
        key, value = next(iter(leak.evidence.items()))
        expect(evidence.locator("th").first).to_have_text(key)
        if isinstance(value, (int, str)):
            expect(evidence.locator("td").first).to_have_text(str(value))
        expect(row.locator(".fix")).to_be_visible()

        # the pictures: inline SVG, drawn, with their text
        charts = page.locator("#glance svg.chart")
        assert charts.count() >= 6
        charts.first.scroll_into_view_if_needed()
        expect(charts.first).to_be_visible()
        box = charts.first.bounding_box()
        assert box["width"] > 300 and box["height"] > 100
        expect(page.locator("#glance svg.whiskers").first).to_contain_text("race")
        expect(page.locator("#glance svg.curve", has_text="Membership inference ROC")).to_be_visible()

        # a check link opens the collapsed check details it points into
        page.locator('#glance figcaption a[href="#check-data.drift.columns"]').click()
        expect(page.locator("#check-data\\.drift\\.columns")).to_have_attribute("open", "")
        expect(page.locator("#check-data\\.drift\\.columns svg.whiskers")).to_be_visible()
        expect(page.locator("#check-data\\.drift\\.columns > details")).not_to_have_attribute("open", "")  # metrics
        page.locator('nav.toc a[href="#checklist"]').click()  # a folded section opens when a link lands on it
        expect(page.locator("#checklist > details")).to_have_attribute("open", "")
        expect(page.locator("#checklist-D\\.1")).to_be_visible()
        assert problems == []
    finally:
        page.context.close()


def test_demo_report_reads_without_javascript(browser: Any, demo_report: Report, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page, problems = _open(browser, demo_report, tmp_path / "nojs.html", js=False)
    try:
        expect(page.locator(".tools > span[data-js]")).to_be_hidden()  # controls that need the script stay out
        rows = page.locator(".frow")
        expect(rows).to_have_count(len(demo_report.findings))
        first = demo_report.findings[0]
        row = page.locator(f"#finding-{first.id}")
        expect(row.locator(".c.title")).to_have_text(first.title[:300])
        row.locator("summary").click()  # <details> open without any script
        expect(row.locator(".fbody")).to_be_visible()
        expect(page.locator("#glance svg.chart").first).to_be_visible()
        page.locator("#checks > summary").click()
        expect(page.locator("#stage-splits > summary")).to_be_visible()
        assert problems == []
    finally:
        page.context.close()


def test_hostile_text_stays_text_in_chromium(browser: Any, hostile_report: Report, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page, problems = _open(browser, hostile_report, tmp_path / "hostile.html")
    try:
        expect(page.locator("h1")).to_have_text(f"mlwarden audit: target {XSS}")
        expect(page.locator(".frow .c.title")).to_have_text(f"column {XSS} leaks")
        assert page.locator("script").count() == 1 and page.locator("main img").count() == 0
        expect(page.locator("#summary")).to_contain_text(f"ValueError: {XSS}")
        expect(page.locator('#attack-surface svg [data-stage="training"]')).to_have_class("stage sev-error")
        page.locator('#attack-surface svg [data-stage="data"] a').click()
        expect(page.locator("#finding-badc0ffee0000001")).to_be_in_viewport()
        assert problems == []
    finally:
        page.context.close()
