"""report.sarif — SARIF 2.1.0 for GitHub code scanning (and any other SARIF viewer).

One run; one rule per check that ran (errored ones included, so their notification can
point at them); one result per finding. What GitHub needs beyond the OASIS schema
(PROTOCOLS.md §2): non-empty rule descriptions and help, ``security-severity`` on the
*rule*, repo-relative URIs, ``partialFingerprints.primaryLocationLineHash`` (API uploads
do not fill it in, and without it every upload duplicates the alerts), and its limits.

GitHub rates an alert by its rule's ``security-severity``, not by the result, so a check
whose findings differ in severity shows all of them at its worst one; each result keeps
its own ``level`` and its exact severity in ``properties``. Splitting rules by severity
would fix the rating but change a finding's ``ruleId`` whenever its severity moves, which
closes the alert and opens a new one — worse for triage.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from ..findings import CheckResult, Finding, Report, Severity

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
MAX_RESULTS = 25_000
"""GitHub rejects a run with more results (and shows only the 5,000 worst)."""
MAX_GZIP_BYTES = 10_000_000
"""GitHub's upload limit for a SARIF file, gzipped."""
MAX_TAGS = 10
"""GitHub accepts 20 tags a rule but shows only 10; keep the ones we choose."""
MAX_EVIDENCE_ITEMS = 12
MAX_TEXT = 300

# Midpoints of GitHub's bands (critical > 9.0, high 7.0–8.9, medium 4.0–6.9, low 0.1–3.9).
# Info has no score: without security-severity GitHub shows a plain note, not a
# security alert, which is what an informational finding is.
SECURITY_SEVERITY: dict[Severity, str | None] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: None,
}
LEVEL: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SURROGATE = re.compile("[\ud800-\udfff]")
_URI_SAFE = "/:@!$&'()*+,;=-._~"
_URL_SAFE = _URI_SAFE + "?#[]%"


class SarifFormat:
    filename = "report.sarif"

    def render(self, report: Report) -> str:
        return _fit(sarif_dict(report))


def _dump(log: dict[str, Any]) -> str:
    text = json.dumps(log, indent=2, ensure_ascii=False, default=_default)
    # A lone surrogate (an undecodable file name) can't be written as UTF-8; as an
    # escape it is the same JSON string ensure_ascii would give, and the rest stays readable.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def _too_big(text: str) -> bool:
    data = text.encode("utf-8")
    return len(data) > MAX_GZIP_BYTES and len(gzip.compress(data, compresslevel=6)) > MAX_GZIP_BYTES


def _fit(log: dict[str, Any]) -> str:
    """Keep the file under GitHub's upload limit: drop result evidence, then the mildest results."""
    text = _dump(log)
    if not _too_big(text):
        return text
    run = log["runs"][0]
    for result in run["results"]:
        result["properties"].pop("evidence", None)
        result["properties"].pop("rows", None)
    total = len(run["results"])
    notes = run["invocations"][0]["toolExecutionNotifications"]
    notes.append({"level": "warning", "message": {"text": (
        f"this file would exceed GitHub's {MAX_GZIP_BYTES / 1e6:g} MB gzipped limit: evidence is left "
        "out of the results (report.json has it)")}})
    text = _dump(log)
    while _too_big(text) and run["results"]:
        run["results"] = run["results"][: len(run["results"]) // 2]  # worst first, so the mildest go
        notes[-1]["message"]["text"] = (
            f"this file would exceed GitHub's {MAX_GZIP_BYTES / 1e6:g} MB gzipped limit: evidence is left "
            f"out and only the {len(run['results'])} most severe of {total} results kept (report.json has all)")
        text = _dump(log)
    return text


def sarif_dict(report: Report) -> dict[str, Any]:
    ran = [c for c in report.checks if c.status != "skipped"]
    index = {c.id: i for i, c in enumerate(ran)}
    findings = [f for f in report.findings if f.check in index]  # already worst first
    kept = findings[:MAX_RESULTS]
    notes = [_errored(c, index) for c in ran if c.status == "error"]
    if len(findings) > len(kept):
        notes.append({
            "level": "warning",
            "message": {"text": f"{len(findings)} findings exceed GitHub's limit of {MAX_RESULTS} results a run; "
                                f"only the {MAX_RESULTS} most severe are in this file (report.json has all)."},
        })
    spec_uri = _spec_uri(report)
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "mlwarden",
                "version": report.tool_version,
                "semanticVersion": report.tool_version,
                "rules": [_rule(c, report) for c in ran],
            }},
            "invocations": [{
                "executionSuccessful": not any(c.status == "error" for c in ran),
                "toolExecutionNotifications": notes,
            }],
            "results": [_result(f, index[f.check], spec_uri, n) for f, n in zip(kept, _occurrences(kept))],
            "properties": {"target": report.target.name, "engine": report.engine},
        }],
    }


def _rule(check: CheckResult, report: Report) -> dict[str, Any]:
    doc = report.docs.get(check.id, "").strip()
    first = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    worst = max((f.severity for f in check.findings), key=lambda s: s.rank, default=None)
    stage = next((s for s, ids in report.stages.items() if check.id in ids), None)
    refs = sorted({*report.references.get(check.id, ()), *(r for f in check.findings for r in f.references)})
    tags = list(dict.fromkeys(["security", "ml", *([stage] if stage else []), *refs]))[:MAX_TAGS]
    props: dict[str, Any] = {"tags": tags, "precision": "high"}
    # "high": findings are measured on the whole data, not guessed; a check with known
    # false positives would need a precision attribute the Report does not carry yet.
    score = SECURITY_SEVERITY[worst] if worst is not None else None
    if score is not None:
        props["security-severity"] = score
    title = check.title or check.id
    return {
        "id": check.id,
        "name": _rule_name(check.id),
        "shortDescription": {"text": title},
        "fullDescription": {"text": first or title},
        "help": {"text": doc or title, "markdown": doc or title},
        "defaultConfiguration": {"level": LEVEL[worst] if worst is not None else "warning"},
        "properties": props,
    }


def _occurrences(findings: list[Finding]) -> list[int]:
    """1 for the first finding with an id, 2 for the next with the same id, and so on.

    GitHub's ``primaryLocationLineHash`` is ``hash:occurrence``. The finding id is the
    hash: it already names what was found and where (file, not line — code findings key
    on the snippet), so an alert survives code moving down a line; putting the line
    number in would close and reopen the alert every time it did.
    """
    seen: dict[str, int] = {}
    out = []
    for f in findings:
        seen[f.id] = seen.get(f.id, 0) + 1
        out.append(seen[f.id])
    return out


def _result(f: Finding, rule_index: int, spec_uri: str, occurrence: int) -> dict[str, Any]:
    line = f.location.line if f.location.line and f.location.line >= 1 else 1
    location: dict[str, Any] = {"physicalLocation": {
        "artifactLocation": {"uri": artifact_uri(f.location.artifact) if f.location.artifact else spec_uri},
        "region": {"startLine": line},
    }}
    logical = []
    if f.location.column is not None:
        logical.append({"name": str(f.location.column), "kind": "column"})
    if f.location.member is not None:
        logical.append({"name": str(f.location.member), "kind": "resource"})
    if logical:
        location["logicalLocations"] = logical
    props: dict[str, Any] = {"severity": f.severity.value, "evidence": _trim_evidence(f.evidence),
                             "references": list(f.references)}
    if f.location.rows:
        props["rows"] = [_scalar(r) for r in f.location.rows[:MAX_EVIDENCE_ITEMS]]
    return {
        "ruleId": f.check,
        "ruleIndex": rule_index,
        "level": LEVEL[f.severity],
        "message": {"text": _message(f)},
        "locations": [location],
        "partialFingerprints": {"primaryLocationLineHash": f"{f.id}:{occurrence}", "mlwarden/v1": f.id},
        "properties": props,
    }


def _errored(check: CheckResult, index: dict[str, int]) -> dict[str, Any]:
    return {
        "level": "error",
        "message": {"text": f"check {check.id} failed to run: {check.message or 'no message'}"},
        "associatedRule": {"id": check.id, "index": index[check.id]},
    }


def _message(f: Finding) -> str:
    """The title plus the evidence a reader needs first: its scalar values, shortly."""
    bits = [f"{k}={_short(v)}" for k, v in f.evidence.items() if _is_scalar(v)][:6]
    where = [f"column {f.location.column}"] if f.location.column is not None else []
    where += [f"member {f.location.member}"] if f.location.member is not None else []
    text = f.title.strip() or f.check
    if where:
        text += f" ({', '.join(where)})"
    if bits:
        text += " [" + ", ".join(bits) + "]"
    return text


def artifact_uri(artifact: str) -> str:
    """A finding's artifact as a SARIF URI: URLs as they are, paths relative and encoded.

    Paths inside the spec's folder arrive relative to it (``Spec.display``); those stay
    relative, with forward slashes and percent-encoding. A path outside it is absolute,
    and becomes a ``file://`` URI, which the upload action relativizes to the checkout.
    """
    if _URL.match(artifact):
        return _quote(artifact, _URL_SAFE)
    win = PureWindowsPath(artifact)
    if win.drive or "\\" in artifact:
        posix = win.as_posix()
        if win.drive:
            return "file:///" + _quote(posix, _URI_SAFE)
    else:
        posix = str(PurePosixPath(artifact))
    if posix.startswith("/"):
        return "file://" + _quote(posix, _URI_SAFE)
    return _quote(posix.removeprefix("./"), _URI_SAFE)


def _quote(text: str, safe: str) -> str:
    """Percent-encode as UTF-8; a name Python decoded with surrogateescape gets its bytes back."""
    try:
        return quote(text, safe=safe, errors="surrogateescape")
    except UnicodeEncodeError:
        return quote(text, safe=safe, errors="backslashreplace")


def _spec_uri(report: Report) -> str:
    """Where findings without an artifact point: the spec, relative to its own folder.

    Reports without a spec (scan, probe) fall back to a URL target, else to the spec's
    conventional name, because GitHub rejects a result that has no location.
    """
    spec = report.target.spec
    if spec:
        name = PureWindowsPath(spec).name if "\\" in spec else PurePosixPath(spec).name
        return _quote(name or spec, _URI_SAFE)
    if _URL.match(report.target.name):
        return artifact_uri(report.target.name)
    return "mlwarden.yaml"


def _rule_name(check_id: str) -> str:
    """SARIF's rule ``name`` is an identifier-like label: ``ExactDuplicates``."""
    last = check_id.rsplit(".", 1)[-1]
    return "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", last) if p) or "Check"


def _trim_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence small enough for an alert: scalars, short strings, the head of lists."""
    out: dict[str, Any] = {}
    for k, v in list(evidence.items())[:MAX_EVIDENCE_ITEMS]:
        if getattr(v, "ndim", 0) and hasattr(v, "tolist"):  # a numpy array
            v = v.ravel()[:MAX_EVIDENCE_ITEMS].tolist()
        if isinstance(v, dict):
            out[str(k)] = {str(a): _scalar(b) for a, b in list(v.items())[:MAX_EVIDENCE_ITEMS]}
        elif isinstance(v, (list, tuple, set, frozenset)):
            out[str(k)] = [_scalar(x) for x in _head(v)]
        else:
            out[str(k)] = _scalar(v)
    return out


def _head(values: Iterable[Any]) -> list[Any]:
    out = []
    for i, v in enumerate(values):
        if i >= MAX_EVIDENCE_ITEMS:
            break
        out.append(v)
    return out


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool)) or (hasattr(v, "item") and getattr(v, "ndim", 0) == 0)


def _scalar(v: Any) -> Any:
    """A JSON-safe scalar: numpy unwrapped, NaN and infinities as text (JSON has none)."""
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if v is None or isinstance(v, (bool, int, float)):
        return v
    return _short(v)


def _short(v: Any) -> str:
    v = _scalar(v) if not isinstance(v, str) and _is_scalar(v) else v
    text = v if isinstance(v, str) else str(v)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)
