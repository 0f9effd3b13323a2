"""Disclosure: what the endpoint tells an attacker beyond the label it owes the caller.

Rules (``endpoint.disclosure.*``):

* ``stack_trace`` — an answer (to any request of the probe, the malformed ones of
  :mod:`.inputs` included) carries a stack trace: code paths, library versions, sometimes data. **high**.
* ``banner`` — headers or error messages name the serving framework or ML library, with a
  version where given (``Server: uvicorn``, ``X-Powered-By``, ``sklearn`` in an error). **low**.
* ``probabilities`` — inference returns a full probability vector per row (by default, or to
  anyone who asks for a probability output by name). Full vectors make extraction and
  membership inference far cheaper than labels. **medium**; **low** when rounded to ≤ 2 decimals.
  A request that gets no answer (dropped, timed out) is asked once more; if it still gets none,
  the metrics say ``inconclusive``, never ``not exposed``.
* ``training_metadata`` — model metadata reveals how the model was trained: data locations,
  metrics, hyperparameters, authors, source paths. **medium**.
* ``cors_credentials`` — a browser on any origin may call the endpoint with the user's
  credentials (``Access-Control-Allow-Origin: *`` or the reflected origin, with
  ``Allow-Credentials: true``). **high**. A bare wildcard without credentials: ``cors_wildcard``, **low**.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from ..findings import Severity
from ..sources.endpoint import PROBA_OUTPUTS
from .base import FamilyResult, Issue
from .payloads import infer, metadata, model_path, outputs_of, working_example
from .session import ProbeSession, Reply

REFS = ("OWASP-ML05", "OWASP-ML04", "AML.T0024", "AML.T0007", "NIST-MANAGE")
TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"\n]{1,300}\", line \d+|\bat [\w$.]+\([\w$]+\.java:\d+\)"
                   r"|goroutine \d+ \[running\]|Exception in thread \"|panicked at |\bat .{1,200}\.(?:js|ts):\d+:\d+")
FRAMEWORKS = re.compile(r"\b(uvicorn|gunicorn|hypercorn|tornado|werkzeug|flask|fastapi|starlette|aiohttp|python"
                        r"|triton|mlserver|torchserve|kserve|seldon|bentoml|tensorflow|tf[_-]serving|onnxruntime"
                        r"|sklearn|scikit-learn|xgboost|lightgbm|torch|pytorch|numpy|pandas|grpc-python)"
                        r"(?:[/ -]v?(\d+(?:\.\d+)+))?", re.IGNORECASE)
BANNER_HEADERS = ("server", "x-powered-by", "x-aspnet-version", "x-runtime", "x-framework", "x-model-server",
                  "x-served-by", "x-version")
TRAINING = re.compile(r"train|dataset|data[_ -]?path|s3://|gs://|hdfs://|abfss?://|/home/|/users/|[a-z]:\\"
                      r"|accuracy|\bauc\b|\bf1\b|precision|recall|\bloss\b|epoch|learning[_ -]?rate|hyper|n_estimators"
                      r"|max_depth|author|created[_ -]?by|\bgit\b|commit|features?[_ -]importance|\bseed\b", re.IGNORECASE)
SCHEMA_KEYS = ("name", "versions", "platform", "datatype", "shape")
EVIL_ORIGIN = "https://mlwarden-probe.invalid"


def _issue(rule: str, sev: Severity, title: str, desc: str, fix: str, **evidence: Any) -> Issue:
    return Issue(rule=f"endpoint.disclosure.{rule}", severity=sev, title=title, description=desc, remediation=fix,
                 evidence=evidence, references=REFS)


def probe(s: ProbeSession) -> FamilyResult:
    out = FamilyResult()
    _provoke(s)
    _traces(s, out)
    _banners(s, out)
    _probabilities(s, out)
    _training(s, out)
    if s.target.protocol == "rest":
        _cors(s, out)
    return out


def _provoke(s: ProbeSession) -> None:
    """One plainly wrong request, so that even a probe without the inputs family sees an error answer."""
    if s.target.protocol == "rest":
        s.http("POST", model_path(s) + "/infer", body={"inputs": [{"name": "x", "datatype": "FP64", "shape": [1],
                                                                   "data": ["not-a-number"]}]})
    else:
        from .payloads import INFER

        s.grpc(INFER, b"\x0a\xff\xff")  # a length prefix that runs past the message: malformed protobuf


def _traces(s: ProbeSession, out: FamilyResult) -> None:
    hits: list[dict[str, str]] = []
    for r in s.replies:
        m = TRACE.search(r.body[:16384].decode("utf-8", "replace")) or TRACE.search(" ".join(v for _, v in r.headers))
        if m:
            hits.append({"request": r.what, "status": str(r.status), "excerpt": _excerpt(r, m.start())})
    out.metrics["answers_with_stack_trace"] = len(hits)
    if hits:
        out.issues.append(_issue(
            "stack_trace", Severity.HIGH, f"{len(hits)} answer(s) carry a stack trace",
            f"Error answers include stack traces (first: {hits[0]['request']} → {hits[0]['status']}): file paths, "
            "library versions and code structure help an attacker aim, and traces can echo data.",
            "Return a short error message and log the trace server-side only.", samples=hits[:5]))


def _excerpt(r: Reply, at: int) -> str:
    text = r.body.decode("utf-8", "replace")
    return " ".join(text[max(0, at - 40):at + 160].split())


def _banners(s: ProbeSession, out: FamilyResult) -> None:
    seen: dict[str, str] = {}
    for r in s.replies:
        for k, v in r.headers:
            if k in BANNER_HEADERS and (FRAMEWORKS.search(v) or re.search(r"\d+\.\d+", v)):
                seen.setdefault(f"header {k}", v[:120])
        if r.outcome != "ok":
            m = FRAMEWORKS.search(r.body[:4096].decode("utf-8", "replace"))
            if m and m.group(1).lower() not in ("python",):
                seen.setdefault(f"error body ({r.what})", m.group(0)[:80])
    out.metrics["banners"] = seen
    if seen:
        with_version = any(re.search(r"\d+\.\d+", v) for v in seen.values())
        out.issues.append(_issue(
            "banner", Severity.LOW, "The endpoint names its framework" + (" and version" if with_version else ""),
            "Headers or error messages identify the serving stack: "
            f"{'; '.join(f'{k}: {v}' for k, v in list(seen.items())[:6])}. Known versions map to known CVEs.",
            "Strip Server/X-Powered-By headers at the gateway and return generic error messages.",
            banners=seen))


_NO_ANSWER = ("hang", "dropped")


def _probabilities(s: ProbeSession, out: FamilyResult) -> None:
    ex, why = working_example(s)
    if ex is None:
        out.metrics["probabilities"] = f"not tested: {why}"
        return
    tried: list[str] = []
    first = s.cache.get("example_reply")
    found = _proba_in(outputs_of(s, first)) if first is not None else None
    how = "by default"
    unanswered: list[str] = []
    if found is None:
        for name in PROBA_OUTPUTS:
            r = infer(s, ex, outputs=[name])
            if r.outcome in _NO_ANSWER:  # a dropped keep-alive or a busy server is no answer: ask again
                r = infer(s, ex, outputs=[name])
            tried.append(f"{name}:{r.status or r.outcome}")
            if r.outcome in _NO_ANSWER:
                unanswered.append(name)
            if r.outcome == "ok":
                found = _proba_in(outputs_of(s, r))
                if found is not None:
                    how = f"when asked for output {name!r}"
                    break
    out.metrics["probability_outputs_tried"] = tried
    if found is None:
        # "not exposed" only when every request was answered: a timeout says nothing either way
        out.metrics["probabilities"] = (f"inconclusive: no answer when asking for {', '.join(unanswered)}"
                                        if unanswered else "not exposed")
        return
    name, arr = found
    decimals = _decimals(arr)
    out.metrics["probabilities"] = {"output": name, "classes": int(arr.shape[1]), "decimals": decimals, "how": how}
    rounded = decimals <= 2
    out.issues.append(_issue(
        "probabilities", Severity.LOW if rounded else Severity.MEDIUM,
        f"Inference returns full probability vectors ({name!r}, {how})",
        f"Output {name!r} gives {arr.shape[1]} class probabilities per row with {decimals} decimals {how}: "
        "confidence scores make model extraction and membership inference far cheaper than labels alone.",
        "Return the label only (or top-1 with a coarse, rounded score) to callers that do not need scores.",
        output=name, classes=int(arr.shape[1]), decimals=decimals, how=how))


def _proba_in(outs: dict[str, np.ndarray]) -> tuple[str, np.ndarray] | None:
    for name, arr in outs.items():
        if arr.dtype.kind != "f" or arr.ndim != 2 or arr.shape[1] < 2 or not np.isfinite(arr).all():
            continue
        if (arr >= -1e-6).all() and (arr <= 1 + 1e-6).all() and np.allclose(arr.sum(axis=1), 1.0, atol=1e-3):
            return name, arr.astype(np.float64)
    return None


def _decimals(arr: np.ndarray) -> int:
    for d in range(7):
        if np.allclose(arr, np.round(arr, d), atol=1e-9, rtol=0):
            return d
    return 7


def _training(s: ProbeSession, out: FamilyResult) -> None:
    _, doc = metadata(s)
    if not doc:
        return
    hits: list[str] = []

    def walk(v: Any, path: str) -> None:
        if len(hits) >= 20:
            return
        if isinstance(v, dict):
            for k, w in v.items():
                if k in SCHEMA_KEYS and (path == "" or path.startswith(("inputs.", "outputs."))):
                    continue  # the schema itself is what metadata is for
                if TRAINING.search(str(k)):
                    hits.append(f"{path}{k}={json.dumps(w, default=str)[:80]}")
                else:
                    walk(w, f"{path}{k}.")
        elif isinstance(v, list):
            for i, w in enumerate(v[:50]):
                walk(w, f"{path}{i}.")
        elif isinstance(v, str) and TRAINING.search(v):
            hits.append(f"{path.rstrip('.')}={v[:80]}")

    walk(doc, "")
    out.metrics["training_details_in_metadata"] = hits
    if hits:
        out.issues.append(_issue(
            "training_metadata", Severity.MEDIUM, "Model metadata reveals training details",
            f"The model metadata carries {len(hits)} training detail(s): {'; '.join(hits[:5])}. Data locations, "
            "metrics and hyperparameters help an attacker replicate, extract or poison the model.",
            "Serve only the input/output schema in metadata; keep training lineage in the model registry.",
            details=hits))


def _cors(s: ProbeSession, out: FamilyResult) -> None:
    path = model_path(s) + "/infer"
    r = s.http("OPTIONS", path, headers={"origin": EVIL_ORIGIN, "access-control-request-method": "POST",
                                         "access-control-request-headers": "authorization,content-type"})
    allow, creds = r.header("access-control-allow-origin"), (r.header("access-control-allow-credentials") or "")
    if allow is None:
        g = s.http("GET", model_path(s), headers={"origin": EVIL_ORIGIN})
        allow, creds = g.header("access-control-allow-origin"), (g.header("access-control-allow-credentials") or "")
    out.metrics["cors"] = {"allow_origin": allow, "allow_credentials": creds}
    if allow in ("*", EVIL_ORIGIN) and creds.strip().lower() == "true":
        out.issues.append(_issue(
            "cors_credentials", Severity.HIGH, "Any web origin may call the endpoint with the user's credentials",
            f"Access-Control-Allow-Origin: {allow} with Access-Control-Allow-Credentials: true — a page on any site "
            "can query the model as a logged-in user and read the answers.",
            "Allow only the origins that need the API, never reflect the Origin header, and drop "
            "Allow-Credentials unless a listed origin needs it.", allow_origin=allow, allow_credentials=creds))
    elif allow == "*":
        out.issues.append(_issue(
            "cors_wildcard", Severity.LOW, "Any web origin may call the endpoint (CORS wildcard)",
            "Access-Control-Allow-Origin: * lets scripts on any site call the endpoint (without credentials).",
            "List the origins that need the API.", allow_origin=allow))
