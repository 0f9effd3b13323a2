"""Figures built from check metrics (report.figures) and the whiskers renderer (report.whiskers)."""

from __future__ import annotations

import math
import re

import pytest

from mlwarden.findings import CheckResult, Report, Target
from mlwarden.registry import Chart, Curve, Whiskers
from mlwarden.report.figures import ADAPTERS, GALLERY_SIZE, figures, gallery
from mlwarden.report.html import HtmlFormat
from mlwarden.report.whiskers import whisker_chart

XSS = "<script>alert(1)</script>"

BASE_RATES = {"favorable": 1, "confidence": 0.9, "train": {
    "race": {"black": {"reference": "white", "rate": 0.25, "rate_ci": [0.2, 0.3]},
             "white": {"reference": "white", "rate": 0.6, "rate_ci": [0.55, 0.65]}}},
    "test": {"race": {"black": {"reference": "white", "rate": 0.2, "rate_ci": [0.1, 0.35]}}}}

DRIFT = {"thresholds": {"psi_moderate": 0.1, "psi_major": 0.25}, "columns": {
    "test": {"a": {"psi": 0.02, "psi_ci": [0.0, 0.05]}, "b": {"psi": 0.5, "psi_ci": [0.4, 0.6]}},
    "feedback": {"a": {"psi": 0.3, "psi_ci": [0.2, 0.4]}, "c": {"psi": float("nan")}}}}


def _coords(svg: str) -> list[float]:
    attrs = re.findall(r'\b(?:d|x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"', svg)
    return [float(t) for a in attrs for t in re.findall(r"-?[0-9.]+(?:e-?[0-9]+)?|nan|inf", a)]


def _check(cid: str, metrics: dict, charts: tuple = ()) -> CheckResult:
    return CheckResult(id=cid, title=cid, status="fail", metrics=metrics, charts=charts)


def test_base_rates_become_group_rates_with_whiskers_per_split() -> None:
    [w] = ADAPTERS["fairness.base_rates"](BASE_RATES, {})
    assert isinstance(w, Whiskers) and "90 % CI" in w.title and w.x_range == (0.0, 100.0)
    assert w.groups == ("race: black", "race: white (ref)")
    train, test = dict(w.series)["train"], dict(w.series)["test"]
    assert train == (pytest.approx((25.0, 20.0, 30.0)), pytest.approx((60.0, 55.0, 65.0)))
    assert test[0] == pytest.approx((20.0, 10.0, 35.0)) and all(math.isnan(v) for v in test[1])  # no white row in test


def test_drift_shows_the_most_drifted_columns_with_thresholds() -> None:
    [w] = ADAPTERS["data.drift.columns"](DRIFT, {})
    assert w.groups == ("b", "a")  # by the worst PSI over splits; the NaN column is left out
    assert [n for n, _ in w.series] == ["train → test", "train → feedback"]
    assert dict(w.series)["train → feedback"][1] == pytest.approx((0.3, 0.2, 0.4))
    assert w.references == (("moderate", 0.1), ("major", 0.25))


def test_leakage_shares_per_split_have_wilson_intervals() -> None:
    exact = {"test": {"rows": 200, "duplicated_rows": 50}, "feedback": {"rows": 10, "duplicated_rows": 0}}
    near = {"test": {"rows": 200, "near_duplicate_rows": 2}}
    [w] = ADAPTERS["data.leakage.exact_duplicates"](exact, {"data.leakage.near_duplicates": near})
    assert w.groups == ("test", "feedback") and [n for n, _ in w.series] == ["exact copy", "near copy"]
    (p, lo, hi), (p0, lo0, hi0) = dict(w.series)["exact copy"]
    assert p == 25.0 and 18 < lo < 25 < hi < 32  # Wilson 95 % for 50/200
    assert p0 == 0.0 and lo0 == 0.0 and 20 < hi0 < 35  # 0/10 still has an upper bound
    assert all(math.isnan(v) for v in dict(w.series)["near copy"][1])  # near duplicates has no feedback split


def test_quarantine_counts_become_bars_with_a_total() -> None:
    m = {"rows": {"feedback": 440}, "quarantine_count": 404, "quarantine_counts": {"trigger": 40, "flood": 0}}
    [c] = ADAPTERS["data.poisoning.feedback"](m, {})
    assert isinstance(c, Chart) and "of 440" in c.title
    assert c.labels == ("trigger value", "flood of copies", "any reason") and c.values == (40.0, 0.0, 404.0)


def test_attack_metrics_become_curves() -> None:
    ev = {"robustness_curve": [{"cost": 0.5, "success_rate": 0.1}, {"cost": 2, "success_rate": 0.6}],
          "noise_curve": [{"cost": 0.5, "success_rate": 0.0}, {"cost": 2, "success_rate": 0.05}]}
    [c] = ADAPTERS["model.evasion.constrained"](ev, {})
    assert isinstance(c, Curve) and c.x_log and [n for n, _ in c.series] == ["search", "random noise"]
    ex = {"curve": [{"source": "uniform", "policy": "labels", "queries": 1000, "fidelity": 0.9},
                    {"source": "uniform", "policy": "labels", "queries": 100, "fidelity": 0.6}]}
    [c] = ADAPTERS["model.extraction.surrogate"](ex, {})
    assert c.series == (("labels (random rows)", ((100.0, 0.6), (1000.0, 0.9))),)


@pytest.mark.parametrize("cid", sorted(ADAPTERS))
@pytest.mark.parametrize("metrics", [{"x": 1}, {"columns": [1, 2]}, {"train": {"race": "oops"}, "groups": {"g": 3},
                                     "curve": "nope", "quarantine_counts": {"a": "b"}, "test": 5}])
def test_adapters_draw_nothing_on_shapes_they_do_not_know(cid: str, metrics: dict) -> None:
    own = Chart(title="own", labels=("a",), values=(1.0,))
    figs = figures(_check(cid, metrics, (own,)), {})
    assert figs[-1] is own  # the check's own figure survives whatever the adapter made of it
    page = HtmlFormat().render(Report(tool_version="0", target=Target(name="t"), started_at="2026-01-01",
                                      duration_s=0.0, checks=(_check(cid, metrics, (own,)),)))
    assert "NaN" not in page and "nan," not in page


def test_gallery_follows_its_table_prefers_named_figures_and_is_capped() -> None:
    poison = (Curve(title="Clean-accuracy drop", x_label="x", y_label="y", series=(("a", ((1.0, 1.0),)),)),
              Curve(title="Backdoor success vs poison rate", x_label="x", y_label="y", series=(("a", ((1.0, 1.0),)),)))
    checks = [_check("model.poisoning.wargame", {}, poison), _check("fairness.base_rates", BASE_RATES),
              _check("data.drift.columns", DRIFT)]
    report = Report(tool_version="0", target=Target(name="t"), started_at="", duration_s=0.0, checks=tuple(checks))
    picked = gallery(report, {c.id: figures(c, {}) for c in checks})
    assert [cid for cid, _ in picked] == ["fairness.base_rates", "data.drift.columns", "model.poisoning.wargame"]
    assert picked[2][1].title.startswith("Backdoor")
    many = {cid: [Chart(title=cid, labels=("a",), values=(1.0,))] for cid in ADAPTERS}
    many.update({"model.privacy.membership": many["data.drift.columns"], "data.leakage.target": many["data.drift.columns"],
                 "model.poisoning.wargame": many["data.drift.columns"], "fairness.proxies": many["data.drift.columns"]})
    assert len(gallery(report, many)) == GALLERY_SIZE


def test_whiskers_draw_dots_whiskers_and_references_without_nan() -> None:
    svg = str(whisker_chart(title=f"t {XSS}", x_label="rate", groups=(f"g {XSS}", "b", "c"),
                            series=(("s0", ((10.0, 5.0, 15.0), (float("nan"), 1.0, 2.0), (30.0, float("nan"), 40.0))),
                                    (f"s1 {XSS}", ((12.0, 8.0, 16.0),))),
                            references=(("moderate", 10.0), ("major", 12.0), ("off", float("inf")))))
    assert XSS not in svg and "&lt;script&gt;" in svg
    assert svg.count('<circle class="dot s0"') == 1 + 2  # legend + two finite estimates (the NaN one is dropped)
    assert svg.count('<path class="whisker') == 2  # s0 row a, s1 row a; c's interval has a NaN end: dot only
    assert svg.count('<line class="ref"') == 2 and ">moderate</text>" in svg and ">major</text>" in svg
    levels = {float(y) for y in re.findall(r'<text class="ref-label" x="[^"]*" y="([^"]*)"', svg)}
    assert len(levels) == 2  # close labels stagger instead of overlapping
    nums = _coords(svg)
    assert nums and all(math.isfinite(v) for v in nums)


def test_whiskers_cap_groups_and_say_so() -> None:
    groups = tuple(f"col{i}" for i in range(40))
    svg = str(whisker_chart(title="t", x_label="x", groups=groups, max_groups=10,
                            series=(("s", tuple((float(i), i - 1.0, i + 1.0) for i in range(40))),)))
    assert svg.count('<text class="bar-label"') == 11 and "30 more not shown" in svg
    empty = str(whisker_chart(title="t", x_label="x", groups=(), series=()))
    assert all(math.isfinite(v) for v in _coords(empty))
