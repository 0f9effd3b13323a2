"""report.html in a real headless Chromium: no errors, the map links to findings, no script runs.

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
from mlwarden.report.html import HtmlFormat

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
LEAK = "data.leakage.exact_duplicates"
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


def _open(browser: Any, report: Report, path: Path) -> tuple[Any, list[str]]:
    """Write and load the report; return the page and everything that went wrong on it."""
    path.write_text(HtmlFormat().render(report), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
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

        stages = page.locator("#attack-surface svg [data-stage]")
        expect(stages).to_have_count(6)
        splits = page.locator('#attack-surface svg [data-stage="splits"]')
        expect(splits).to_have_class("stage sev-critical")
        fill = splits.locator("rect").evaluate("r => getComputedStyle(r).fill")
        assert fill == "rgb(127, 29, 29)"  # the stylesheet applied (its CSP hash matched)

        # the stage links to its worst finding (findings are sorted worst first)
        leak = next(f for f in demo_report.findings if f.check in demo_report.stages["splits"])
        assert leak.severity.value == "critical"
        target = page.locator(f"#finding-{leak.id}")
        expect(target).not_to_be_in_viewport()
        splits.locator("a").click()
        page.wait_for_function("id => location.hash === '#finding-' + id", arg=leak.id)
        expect(target).to_be_in_viewport()
        assert page.evaluate("window.scrollY") > 0

        page.locator('button[data-filter="critical"]').click()  # the severity filter hides it …
        expect(target).to_be_hidden()
        page.locator('button[data-filter="critical"]').click()  # … and shows it again
        expect(target).to_be_visible()

        page.evaluate("window.scrollTo(0, 0)")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        data = shot.read_bytes()
        width, height = _png_size(data)
        assert width == 1280 and height > 1500 and len(data) > 50_000
        assert problems == []
    finally:
        page.close()


def test_hostile_text_stays_text_in_chromium(browser: Any, hostile_report: Report, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page, problems = _open(browser, hostile_report, tmp_path / "hostile.html")
    try:
        expect(page.locator("h1")).to_have_text(f"mlwarden audit: target {XSS}")
        expect(page.get_by_text(f"column {XSS} leaks")).to_be_visible()
        assert page.locator("script").count() == 1 and page.locator("main img").count() == 0
        expect(page.locator("#summary")).to_contain_text(f"ValueError: {XSS}")
        expect(page.locator('#attack-surface svg [data-stage="training"]')).to_have_class("stage sev-error")
        page.locator('#attack-surface svg [data-stage="data"] a').click()
        expect(page.locator("#finding-badc0ffee0000001")).to_be_in_viewport()
        assert problems == []
    finally:
        page.close()
