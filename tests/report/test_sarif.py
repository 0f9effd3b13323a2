"""SARIF output: valid against the OASIS 2.1.0 schema and shaped the way GitHub code scanning needs."""

from __future__ import annotations

import copy
import dataclasses
import json
from urllib.parse import unquote

import pytest
from sarif_kit.validate import validation_errors

from mlwarden.findings import CheckResult, Finding, Location, Report, Severity
from mlwarden.report.sarif import SarifFormat, artifact_uri

LEVELS = {"none", "note", "warning", "error"}


def render(report: Report) -> dict:
    return json.loads(SarifFormat().render(report))


def _finding(check: str, n: int, severity: Severity = Severity.HIGH, **loc) -> Finding:
    return Finding(id=f"{n:016x}", check=check, severity=severity, title=f"finding {n}", description="d",
                   remediation="r", evidence={"n": n}, location=Location(**loc), references=("OWASP-ML02",))


def _with_checks(report: Report, *extra: CheckResult) -> Report:
    return dataclasses.replace(report, checks=report.checks + extra,
                               docs=report.docs | {c.id: f"{c.title}.\n\nMore." for c in extra})


def assert_github_ready(log: dict) -> None:
    """Schema-valid, plus what GitHub expects beyond the schema (PROTOCOLS.md §2)."""
    assert validation_errors(log) == []
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "mlwarden" and driver["version"]
    rules = driver["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for rule in rules:
        for key in ("shortDescription", "fullDescription", "help"):
            assert rule[key]["text"].strip(), (rule["id"], key)
        assert rule["defaultConfiguration"]["level"] in LEVELS
        assert "security" in rule["properties"]["tags"]
        assert len(rule["properties"]["tags"]) <= 10
        if "security-severity" in rule["properties"]:
            score = rule["properties"]["security-severity"]
            assert isinstance(score, str) and 0.1 <= float(score) <= 10.0
    assert isinstance(run["results"], list) and len(run["results"]) <= 25_000
    for result in run["results"]:
        assert result["level"] in LEVELS
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert "security-severity" in rules[result["ruleIndex"]]["properties"] or result["level"] == "note"
        assert result["message"]["text"].strip()
        assert result["partialFingerprints"]["primaryLocationLineHash"]
        assert 1 <= len(result["locations"]) <= 10
        phys = result["locations"][0]["physicalLocation"]
        assert phys["region"]["startLine"] >= 1
        uri = phys["artifactLocation"]["uri"]
        assert uri and " " not in uri and "\\" not in uri and not uri.startswith("/")


def test_demo_report_is_valid_and_complete(demo_report):
    log = render(demo_report)
    assert_github_ready(log)
    run = log["runs"][0]
    ran = [c for c in demo_report.checks if c.status != "skipped"]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [c.id for c in ran]
    assert len(run["results"]) == len(demo_report.findings) > 0
    assert run["invocations"][0]["executionSuccessful"] is True


def test_demo_results_carry_findings(demo_report):
    run = render(demo_report)["runs"][0]
    by_id = {r["partialFingerprints"]["mlwarden/v1"]: r for r in run["results"]}
    for f in demo_report.findings:
        result = by_id[f.id]
        assert result["ruleId"] == f.check
        assert result["message"]["text"].startswith(f.title)
        assert result["properties"]["severity"] == f.severity.value
        assert result["partialFingerprints"]["primaryLocationLineHash"] == f"{f.id}:1"
        expected = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
        assert result["level"] == expected[f.severity.value]
        if f.location.artifact:
            assert unquote(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) == f.location.artifact


def test_rule_severity_is_worst_finding_and_help_is_the_doc(demo_report):
    rules = {r["id"]: r for r in render(demo_report)["runs"][0]["tool"]["driver"]["rules"]}
    leak = rules["data.leakage.exact_duplicates"]
    worst = max((f.severity for f in demo_report.findings if f.check == leak["id"]), key=lambda s: s.rank)
    assert worst is Severity.CRITICAL  # the demo's planted leak
    assert float(leak["properties"]["security-severity"]) > 9.0  # GitHub's critical band
    doc = demo_report.docs[leak["id"]]
    assert leak["help"]["text"] == doc == leak["help"]["markdown"]
    assert leak["fullDescription"]["text"] == doc.split("\n\n")[0].replace("\n", " ")
    assert {"ml", "splits", "OWASP-ML08"} <= set(leak["properties"]["tags"])


def test_fingerprint_survives_a_line_move_and_tells_twins_apart(demo_report):
    """An alert must not close and reopen because code above it grew a line."""
    def hashes(*lines):
        findings = tuple(_finding("code.x.y", 1, line=n, artifact="src/a.py") for n in lines)
        run = render(_with_checks(demo_report, CheckResult(id="code.x.y", title="X", status="fail",
                                                           findings=findings)))["runs"][0]
        return [r["partialFingerprints"]["primaryLocationLineHash"] for r in run["results"] if r["ruleId"] == "code.x.y"]

    assert hashes(5) == hashes(9) == [f"{1:016x}:1"]
    assert hashes(5, 9) == [f"{1:016x}:1", f"{1:016x}:2"]  # same id twice: distinct fingerprints


def test_errored_check_is_a_notification(demo_report):
    broken = CheckResult(id="model.evasion.boundary", title="Model resists small perturbations",
                         status="error", message="ValueError: \x1b[31mshape mismatch\x1b[0m")
    log = render(_with_checks(demo_report, broken))
    assert_github_ready(log)
    inv = log["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    (note,) = [n for n in inv["toolExecutionNotifications"] if "model.evasion.boundary" in n["message"]["text"]]
    assert note["level"] == "error"
    assert "shape mismatch" in note["message"]["text"]
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert rules[note["associatedRule"]["index"]]["id"] == "model.evasion.boundary"


def test_report_without_findings(demo_report):
    clean = dataclasses.replace(
        demo_report, checks=tuple(dataclasses.replace(c, findings=(), status="pass") for c in demo_report.checks))
    log = render(clean)
    assert_github_ready(log)
    run = log["runs"][0]
    assert run["results"] == []
    assert run["tool"]["driver"]["rules"]  # the checks that ran are still listed
    assert all("security-severity" not in r["properties"] for r in run["tool"]["driver"]["rules"])


@pytest.mark.parametrize(("artifact", "uri"), [
    ("data/my train.parquet", "data/my%20train.parquet"),
    ("données/ünï 名.parquet", "donn%C3%A9es/%C3%BCn%C3%AF%20%E5%90%8D.parquet"),
    ("data\\win dir\\x.csv", "data/win%20dir/x.csv"),
    ("./models/m.pkl", "models/m.pkl"),
    ("s3://bucket/prefix/part-0.parquet", "s3://bucket/prefix/part-0.parquet"),
    ("s3://bucket/with space/x.parquet", "s3://bucket/with%20space/x.parquet"),
    ("https://host:8080/v2/models/loan?x=1", "https://host:8080/v2/models/loan?x=1"),
    ("/srv/outside spec/train.parquet", "file:///srv/outside%20spec/train.parquet"),
    ("C:\\data\\train.parquet", "file:///C:/data/train.parquet"),
    ("data/raw\udcff.bin", "data/raw%FF.bin"),  # an undecodable byte, as os.fsdecode gives it
    ("data/lone\ud800.bin", "data/lone%5Cud800.bin"),
])
def test_artifact_uri(artifact, uri):
    assert artifact_uri(artifact) == uri


def test_odd_paths_stay_valid(demo_report):
    artifacts = ["data/my train.parquet", "données/ünï 名.parquet", "s3://bucket/with space/x.parquet",
                 "data\\win\\x.csv", None]
    findings = tuple(_finding("data.odd.paths", i, column="col umn" if i % 2 else None,
                              member="archive/data.pkl" if i == 4 else None, line=None if i else 7, artifact=a)
                     for i, a in enumerate(artifacts))
    findings += (dataclasses.replace(_finding("data.odd.paths", 5, artifact="raw\udcff.bin"),
                                     title="bad \x00 \x1b[31m \ud800 name"),)
    odd = CheckResult(id="data.odd.paths", title="Odd paths", status="fail", findings=findings)
    report = _with_checks(dataclasses.replace(demo_report, target=dataclasses.replace(
        demo_report.target, spec="/work/my repo/pipe line.yaml")), odd)
    text = SarifFormat().render(report)
    text.encode("utf-8")  # writable as UTF-8 despite the lone surrogate
    log = json.loads(text)
    assert_github_ready(log)
    results = [r for r in log["runs"][0]["results"] if r["ruleId"] == "data.odd.paths"]
    uris = {r["partialFingerprints"]["mlwarden/v1"]: r["locations"][0]["physicalLocation"] for r in results}
    assert uris[f"{4:016x}"]["artifactLocation"]["uri"] == "pipe%20line.yaml"  # no artifact: the spec
    assert uris[f"{0:016x}"]["region"]["startLine"] == 7
    assert uris[f"{2:016x}"]["artifactLocation"]["uri"].startswith("s3://bucket/")
    logical = {r["partialFingerprints"]["mlwarden/v1"]: r["locations"][0].get("logicalLocations") for r in results}
    assert logical[f"{1:016x}"] == [{"name": "col umn", "kind": "column"}]
    assert logical[f"{4:016x}"] == [{"name": "archive/data.pkl", "kind": "resource"}]
    assert uris[f"{5:016x}"]["artifactLocation"]["uri"] == "raw%FF.bin"


def test_numpy_and_nan_evidence_give_strict_json(demo_report):
    np = pytest.importorskip("numpy")
    f = dataclasses.replace(_finding("data.np.values", 1), evidence={
        "share": np.float64(0.25), "count": np.int64(3), "ids": np.arange(40), "gap": float("nan"),
        "nested": {"x": np.float32(1.5)}, "long": "y" * 5000})
    report = _with_checks(demo_report, CheckResult(id="data.np.values", title="np", status="fail", findings=(f,)))
    text = SarifFormat().render(report)
    log = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert_github_ready(log)
    (result,) = [r for r in log["runs"][0]["results"] if r["ruleId"] == "data.np.values"]
    ev = result["properties"]["evidence"]
    assert ev["share"] == 0.25 and ev["count"] == 3 and ev["gap"] == "nan"
    assert len(ev["ids"]) < 40 and len(ev["long"]) < 5000


def test_results_capped_with_notification(demo_report, monkeypatch):
    import mlwarden.report.sarif as sarif

    assert sarif.MAX_RESULTS == 25_000  # GitHub's hard limit per run
    monkeypatch.setattr(sarif, "MAX_RESULTS", 100)  # same code path, a smaller file
    many = tuple(_finding("data.many.rows", i, Severity.LOW if i % 2 else Severity.HIGH) for i in range(150))
    only = CheckResult(id="data.many.rows", title="Many", status="fail", findings=many)
    report = dataclasses.replace(demo_report, checks=(only,), docs={only.id: "Many.\n\nMore."})
    log = render(report)
    assert validation_errors(log) == []
    run = log["runs"][0]
    assert len(run["results"]) == 100
    severities = [r["properties"]["severity"] for r in run["results"]]
    assert severities.count("high") == 75  # the most severe are kept
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert any("only the 100 most severe" in n["message"]["text"] for n in notes)
    assert run["invocations"][0]["executionSuccessful"] is True  # truncation is not a failure


def test_file_shrinks_to_the_upload_limit(demo_report, monkeypatch):
    import gzip
    import random

    import mlwarden.report.sarif as sarif

    assert sarif.MAX_GZIP_BYTES == 10_000_000  # GitHub's limit, gzipped
    monkeypatch.setattr(sarif, "MAX_GZIP_BYTES", 30_000)
    rng = random.Random(7)  # incompressible evidence, so gzip can't hide the size
    many = tuple(dataclasses.replace(
        _finding("data.big.evidence", i, Severity.HIGH if i < 10 else Severity.LOW),
        evidence={f"k{j}": "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=250)) for j in range(10)})
        for i in range(200))
    only = CheckResult(id="data.big.evidence", title="Big", status="fail", findings=many)
    report = dataclasses.replace(demo_report, checks=(only,), docs={only.id: "Big.\n\nMore."})
    text = SarifFormat().render(report)
    assert len(gzip.compress(text.encode("utf-8"))) <= 30_000
    log = json.loads(text)
    assert_github_ready(log)
    run = log["runs"][0]
    assert 10 < len(run["results"]) < 201
    assert all("evidence" not in r["properties"] for r in run["results"])
    kept = [r["properties"]["severity"] for r in run["results"]]
    assert kept.count("high") == 10  # the worst survive
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert "gzipped limit" in note["message"]["text"] and "of 200 results" in note["message"]["text"]


@pytest.mark.parametrize("breakage", [
    lambda log: log["runs"][0]["results"][0].__setitem__("level", "critical"),
    lambda log: log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"].__setitem__("startLine", 0),
    lambda log: log.__setitem__("version", "2.0.0"),
    lambda log: log["runs"][0]["tool"]["driver"].pop("name"),
])
def test_schema_validator_rejects_broken_documents(demo_report, breakage):
    """The validation above means something: the same validator rejects a broken log."""
    log = copy.deepcopy(render(demo_report))
    breakage(log)
    assert validation_errors(log)


def test_rules_of_passing_checks_carry_their_references(demo_report) -> None:
    """A check with no findings still tags its rule with the references it cites."""
    sarif = json.loads(SarifFormat().render(demo_report))
    rules = {r["id"]: r for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    passing = [c for c in demo_report.checks if c.status == "pass"]
    assert passing
    for c in passing:
        tags = rules[c.id]["properties"]["tags"]
        assert set(demo_report.references[c.id][:7]) <= set(tags), c.id
