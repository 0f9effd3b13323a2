"""report.html as text: sections, the attack-surface map, anchors, offline-ness, escaping, size."""

from __future__ import annotations

import base64
import math
import hashlib
import re

from markupsafe import escape

from mlwarden.findings import CheckResult, Finding, Location, Report, Severity, Target
from mlwarden.registry import STAGES
from mlwarden.report.html import HtmlFormat, Limits, doc_html
from mlwarden.report.svg import bar_chart

XSS = "<script>alert(1)</script>"  # planted by the hostile_report fixture (conftest.py)

LEAK = "data.leakage.exact_duplicates"
REFERENCE_HOSTS = ("https://owasp.org/", "https://atlas.mitre.org/", "https://airc.nist.gov/")


def _stage_group(html: str, stage: str) -> str:
    m = re.search(rf'<g class="([^"]*)" data-stage="{stage}">(.*?)</g>', html)
    assert m, f"no stage group for {stage}"
    return m.group(0)


def test_demo_report_has_header_summary_and_counts(demo_report: Report) -> None:
    html = HtmlFormat().render(demo_report)
    assert html.startswith("<!doctype html>")
    assert 'id="summary"' in html and 'id="attack-surface"' in html
    assert str(escape(demo_report.target.name)) in html and demo_report.tool_version in html
    assert demo_report.started_at in html and "engine" in html
    counts = demo_report.counts()
    assert counts["critical"] >= 1
    for sev, n in counts.items():
        assert re.search(rf'data-severity-count="{sev}"[^>]*><b>{n:,}</b>{sev}</button>', html), sev
    passed = sum(1 for c in demo_report.checks if c.status == "pass")
    failed = sum(1 for c in demo_report.checks if c.status == "fail")
    assert f"<b>{passed}</b> passed" in html and f"<b>{failed}</b> failed" in html
    assert 'worst severity <span class="badge sev-critical">critical</span>' in html


def test_demo_map_has_six_stages_coloured_and_linked(demo_report: Report) -> None:
    html = HtmlFormat().render(demo_report)
    assert '<svg class="surface"' in html and 'role="img"' in html and "<title id=\"surface-title\">" in html
    surface = html[html.index('<svg class="surface"'): html.index("</svg>", html.index('<svg class="surface"'))]
    assert re.findall(r'data-stage="([a-z]+)"', surface) == list(STAGES)
    splits = _stage_group(html, "splits")
    assert next(f for f in demo_report.findings if f.check == LEAK).severity is Severity.CRITICAL
    leak = next(f for f in demo_report.findings if f.check in demo_report.stages["splits"])  # the stage's worst
    assert leak.severity is Severity.CRITICAL
    assert 'class="stage sev-critical"' in splits and f'href="#finding-{leak.id}"' in splits
    for stage in STAGES:
        if stage not in demo_report.stages:
            assert "sev-absent" in _stage_group(html, stage) and "not in this" in _stage_group(html, stage)


def test_demo_findings_have_anchors_titles_and_reference_links(demo_report: Report) -> None:
    html = HtmlFormat().render(demo_report)
    for f in demo_report.findings:
        assert html.count(f'id="finding-{f.id}"') == 1
        assert str(escape(f.title)) in html
    leak = next(f for f in demo_report.findings if f.check == LEAK)
    assert f'id="check-{LEAK}"' in html
    assert 'href="https://owasp.org/www-project-machine-learning-security-top-10/docs/ML08_2023-Model_Skewing"' in html
    assert str(leak.evidence["duplicated_rows"]) in html
    assert "<strong>What it finds.</strong>" in html  # the check's documentation, Markdown-ish


def test_report_loads_nothing_from_the_network(demo_report: Report, hostile_report: Report) -> None:
    for html in (HtmlFormat().render(demo_report), HtmlFormat().render(hostile_report)):
        assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
        assert not re.search(r"<link[^>]*\bhref\s*=\s*\"(?!data:)", html, re.I)
        assert not re.search(r"<(img|iframe|embed|object|audio|video|source)\b", html, re.I)
        assert not re.search(r"\bsrc\s*=\s*[\"']?(https?:)?//", html, re.I)
        assert "@import" not in html and not re.search(r"url\(\s*['\"]?(https?:)?//", html)
        for url in re.findall(r'href="(https?://[^"]*)"', html):
            assert url.startswith(REFERENCE_HOSTS), url


def test_csp_pins_the_inline_style_and_script(demo_report: Report) -> None:
    html = HtmlFormat().render(demo_report)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert "default-src 'none'" in csp
    for tag, directive in (("style", "style-src"), ("script", "script-src")):
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        assert len(bodies) == 1
        digest = base64.b64encode(hashlib.sha256(bodies[0].encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp


def test_user_text_is_escaped_everywhere(hostile_report: Report) -> None:
    html = HtmlFormat().render(hostile_report)
    assert XSS not in html and "alert(1)</script>" not in html
    assert html.count("<script") == 1  # the page's own filter script, nothing else
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "onerror=alert(2)>" not in html and "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<strong>bold</strong>" in html and "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in html


def test_errored_and_skipped_checks_are_visible_with_their_message(hostile_report: Report) -> None:
    html = HtmlFormat().render(hostile_report)
    summary = html[html.index('id="summary"'): html.index('id="attack-surface"')]
    assert "<b>1</b> errored" in summary and "<b>1</b> skipped" in summary
    assert "model.broken" in summary and "ValueError: &lt;script&gt;" in summary
    assert 'id="skipped"' in html and "needs &lt;script&gt;" in html
    training = _stage_group(html, "training")
    assert "sev-error" in training and "1 error" in training
    assert "sev-absent" in _stage_group(html, "artifact")
    assert "unchecked" in _stage_group(html, "splits")  # present, but no check covered it


def _big_report(n_small_checks: int = 100, per_small: int = 100, n_big: int = 40_000) -> Report:
    rows = tuple(range(1_000))
    evidence = {"sample": list(range(500)), "blob": "x" * 20_000,
                "wide": {f"col{i}": i / 3 for i in range(300)}}

    def finding(check: str, i: int, sev: Severity) -> Finding:
        return Finding(id=f"{check}-{i:06d}", check=check, severity=sev, title=f"finding {i} of {check} " + "t" * 200,
                       description="d" * 10_000, remediation="r" * 5_000, evidence=evidence,
                       location=Location(artifact="data/train.parquet", column=f"c{i}", rows=rows),
                       references=("OWASP-ML02", "AML.T0020"))

    checks = [CheckResult(id="data.big", title="Big", status="fail", metrics={"m": list(range(100_000))},
                          findings=tuple(finding("data.big", i, Severity.MEDIUM) for i in range(n_big - 1))
                          + (finding("data.big", 999_999, Severity.CRITICAL),))]
    for c in range(n_small_checks):
        cid = f"data.small{c:03d}"
        checks.append(CheckResult(id=cid, title=cid, status="fail",
                                  metrics={f"k{i}": {"v": list(range(50))} for i in range(500)},
                                  findings=tuple(finding(cid, i, Severity.LOW) for i in range(per_small))))
    return Report(tool_version="0", target=Target(name="big"), started_at="2026-01-01T00:00:00+00:00",
                  duration_s=1.0, checks=tuple(checks), stages={"data": [c.id for c in checks]},
                  docs={c.id: "doc " * 5_000 for c in checks})


def test_fifty_thousand_findings_stay_under_five_megabytes() -> None:
    report = _big_report()
    assert len(report.findings) == 50_000
    html = HtmlFormat().render(report)
    assert len(html.encode("utf-8")) < 5_000_000
    assert re.search(r'data-severity-count="critical"[^>]*><b>1</b>', html)
    assert re.search(r'data-severity-count="medium"[^>]*><b>39,999</b>', html)
    assert "50,000 findings" in html and "report.json lists all" in html
    assert 'id="finding-data.big-999999"' in html  # the worst finding is always shown
    assert 'href="#finding-data.big-999999"' in _stage_group(html, "data")
    assert "more finding" in html and "more keys" in html
    rows = _rows(html)
    full = [r for r in rows if r["tag"] == "details"]
    assert 0 < len(full) <= Limits().findings_total < len(rows) <= Limits().findings_total + Limits().compact_total
    assert rows[0]["id"] == "finding-data.big-999999" and rows[0]["tag"] == "details"
    assert "more findings not shown here" in html


def test_limits_halve_down_to_one() -> None:
    lim = Limits()
    for _ in range(20):
        lim = lim.halved()
    assert all(v == 1 for v in lim.__dict__.values())


def test_rendering_is_deterministic(demo_report: Report) -> None:
    assert HtmlFormat().render(demo_report) == HtmlFormat().render(demo_report)


def test_doc_html_renders_bold_code_lists_and_escapes_the_rest() -> None:
    out = str(doc_html("Finds **leaks** in ``a<b`` and `c`.\n\n- one *x*\n- two\n\n<i>raw</i>", Limits()))
    assert out == ("<p>Finds <strong>leaks</strong> in <code>a&lt;b</code> and <code>c</code>.</p>"
                   "<ul><li>one <em>x</em></li><li>two</li></ul><p>&lt;i&gt;raw&lt;/i&gt;</p>")
    assert str(doc_html("2 * 3 * 4", Limits())) == "<p>2 * 3 * 4</p>"


def test_bar_chart_labels_values_and_caps() -> None:
    out = str(bar_chart(title="Rows", labels=("a", "b", "c"), values=(10.0, float("nan"), -5.0),
                        unit="rows", max_bars=2))
    assert 'role="img"' in out and "<title>Rows</title>" in out
    assert out.count('<rect class="bar') == 2 and "10 rows" in out and "nan rows" in out
    assert "1 more not shown" in out
    neg = str(bar_chart(title="d", labels=("x", "y"), values=(-1.0, 1.0)))
    assert 'class="bar neg"' in neg


# --- the two-screen layout: one findings table, collapsed details, pictures at a glance ---------------

def _rows(html: str) -> list[dict[str, str]]:
    """Every findings-table row's opening tag attributes, in page order."""
    out = []
    for m in re.finditer(r'<(details|div) class="frow[^"]*" ([^>]*)>', html):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(2)))
        attrs["tag"] = m.group(1)
        attrs["open"] = " open" in f" {m.group(2)}" and "open=" not in m.group(2)
        out.append(attrs)
    return out


def test_demo_findings_are_one_table_worst_first_with_details_collapsed(demo_report: Report) -> None:
    html = HtmlFormat().render(demo_report)
    rows = _rows(html)
    assert [r["id"] for r in rows] == [f"finding-{f.id}" for f in demo_report.findings]
    assert all(r["tag"] == "details" and not r["open"] for r in rows)  # all expandable, none expanded
    ranks = [int(r["data-rank"]) for r in rows]
    assert ranks == sorted(ranks, reverse=True) and [r["data-order"] for r in rows] == [str(i) for i in range(len(rows))]
    leak = next(f for f in demo_report.findings if f.check == LEAK)
    row = next(r for r in rows if r["id"] == f"finding-{leak.id}")
    assert row["data-stage"] == "splits" and row["data-check"] == LEAK and row["data-severity"] == "critical"
    body = html[html.index(f'id="finding-{leak.id}"'):]
    body = body[: body.index("</details>")]
    assert '<div class="evidence">' in body and "How to fix" in body and "ML08_2023" in body
    assert 'href="#check-data.leakage.exact_duplicates"' in body
    # sorting and filtering controls are there, hidden until the script shows them
    tools = html[html.index('<div class="tools">'): html.index('<div class="ftable">')]
    assert "data-js hidden" in tools and 'id="f-stage"' in tools and 'id="f-check"' in tools and 'id="f-text"' in tools
    assert f'<option value="{LEAK}">' in tools and '<option value="splits">Splits</option>' in tools
    assert {m for m in re.findall(r'data-sort="(\w+)"', html)} == {"severity", "stage", "check", "title"}


def test_checks_without_findings_collapse_into_one_line(demo_report: Report) -> None:
    html = HtmlFormat().render(demo_report)
    quiet = [c for c in demo_report.checks if c.status == "pass" and not c.findings]
    assert quiet
    m = re.search(r'<details class="quiet"><summary>(\d+) checks passed with no findings</summary>(.*?)</details>', html)
    assert m and int(m.group(1)) == len(quiet)
    assert re.findall(r'href="#check-([^"]+)"', m.group(2)) == [c.id for c in quiet]
    for c in quiet:
        assert f'<details class="check" id="check-{c.id}">' in html  # the link lands on the check's details
    # the per-stage check details start collapsed: one line per stage inside one collapsed card
    assert '<details id="checks" class="card">' in html and ' open' not in html[html.index('id="checks"'):][:200]


GLANCE = ("Favourable-label rate by group", "Model decisions by group", "Drift per column: PSI",
          "Rows leaked from train, by split", "Feedback rows quarantined", "Decisions flipped vs cost budget",
          "Membership inference ROC", "Surrogate fidelity vs query budget", "Backdoor success vs poison rate")


def test_demo_glance_shows_the_pictures_people_would_rather_look_at(demo_report: Report) -> None:
    html = HtmlFormat().render(demo_report)
    glance = html[html.index('id="glance"'): html.index("</section>", html.index('id="glance"'))]
    titles = re.findall(r'<svg class="chart[^"]*"[^>]*><title>([^<]*)</title>', glance)
    assert len(titles) == len(GLANCE)
    for want, got in zip(GLANCE, titles):
        assert got.startswith(want), (want, got)
    kinds = re.findall(r'<svg class="(chart[^"]*)"', glance)
    assert kinds.count("chart whiskers") == 4 and kinds.count("chart curve") == 4 and kinds.count("chart") == 1
    assert all('viewBox="0 0 440 ' in svg for svg in re.findall(r"<svg class=\"chart.*?>", glance))
    # each picture names the check it came from, and the check's details hold the full-size version
    assert re.findall(r'from <a href="#check-([^"]+)"', glance)[:3] == [
        "fairness.base_rates", "fairness.model_disparity", "data.drift.columns"]
    checks = html[html.index('id="checks"'):]
    assert checks.count('<svg class="chart whiskers"') >= 4


def test_every_svg_coordinate_is_a_finite_number(demo_report: Report, hostile_report: Report) -> None:
    for html in (HtmlFormat().render(demo_report), HtmlFormat().render(hostile_report)):
        svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
        assert svgs
        for svg in svgs:
            for attr, value in re.findall(r'\s(d|x|y|x1|x2|y1|y2|cx|cy|r|width|height|viewBox|transform)="([^"]*)"', svg):
                assert not re.search(r"nan|inf", value, re.I), (attr, value)
                nums = re.findall(r"-?\d*\.?\d+(?:e[-+]?\d+)?", value)
                assert nums or value == "100%", (attr, value)
                assert all(math.isfinite(float(n)) for n in nums), (attr, value)


def test_no_inline_handlers_styles_or_script_urls(demo_report: Report, hostile_report: Report) -> None:
    for html in (HtmlFormat().render(demo_report), HtmlFormat().render(hostile_report)):
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", html, re.I)  # listeners come from the one script
        assert not re.search(r"<[^>]+\sstyle\s*=", html, re.I)  # the CSP would block them anyway
        assert "javascript:" not in html.lower()


def test_page_without_findings_says_so() -> None:
    check = CheckResult(id="data.ok", title="OK", status="pass")
    html = HtmlFormat().render(Report(tool_version="0", target=Target(name="t"), started_at="", duration_s=0.0,
                                      checks=(check,), stages={"data": ["data.ok"]}))
    assert "<p>No findings.</p>" in html and 'id="findings-rows"' not in html
    assert "1 check passed with no findings" in html
