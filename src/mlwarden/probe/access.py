"""Access: what an outsider without a key can reach, and what a tenant with one can reach beyond its model.

Rules (``endpoint.access.*``):

* ``inference_open`` — an inference request without credentials reaches the model (2xx, or a
  validation answer instead of 401/403). Anyone can query, evade or extract it. **high**.
* ``metadata_open`` — model metadata is served without credentials (the input schema is the
  attacker's first step). **medium**.
* ``admin_open`` — model-control or server-management routes answer without credentials:
  OIP/Triton/MLServer repository index, model load/unload, Triton stats/trace/logging/shared
  memory, KServe V1 model list; gRPC ``RepositoryIndex``/``RepositoryModelLoad`` of Triton and
  MLServer. Load/unload open is **critical** (anyone can take the model down or swap it), the rest **high**.
  Load and unload are only ever asked for a model name that does not exist, so the probe changes nothing.
* ``plaintext_credentials`` — the server accepts the API key over a connection without TLS. **high**.
* ``other_models`` — with the caller's credentials (none when no key is given), models other than
  the target answer ``ready``: names read from the repository index and guessed from the target's
  name. On a shared server a tenant's key reaches other tenants' models. **high**.
"""

from __future__ import annotations

import secrets
from typing import Any

from ..findings import Severity
from ..sources.oip import oip_v2_pb2 as pb
from .base import FamilyResult, Issue
from .payloads import Example, infer, metadata, model_path, working_example
from .session import ProbeSession, Reply

REFS = ("OWASP-ML05", "AML.T0040", "AML.T0049", "NIST-MANAGE")
GUESSES = ("{m}-v2", "{m}_v2", "{m}2", "{m}-staging", "{m}-dev", "{m}-test", "{m}-canary", "model", "default")
MAX_CANDIDATES = 12
TRITON, MLSERVER = "/inference.GRPCInferenceService/", "/inference.model_repository.ModelRepositoryService/"


def _issue(rule: str, sev: Severity, title: str, desc: str, fix: str, **evidence: Any) -> Issue:
    return Issue(rule=f"endpoint.access.{rule}", severity=sev, title=title, description=desc, remediation=fix,
                 evidence=evidence, references=REFS)


def reached(r: Reply, missing_name: str | None = None) -> bool:
    """Whether an unauthenticated request got past authentication (a route that does not exist did not)."""
    if r.outcome in ("unauthorized", "throttled", "hang", "dropped"):
        return False
    if r.status in (404, 405, "UNIMPLEMENTED"):
        return missing_name is not None and r.status == 404 and missing_name in r.text(2000)
    return True


def probe(s: ProbeSession) -> FamilyResult:
    out = FamilyResult()
    ex, _ = working_example(s)
    _inference(s, out, ex)
    _metadata(s, out)
    index = _admin(s, out)
    _plaintext_key(s, out, ex)
    _other_models(s, out, index)
    return out


def _inference(s: ProbeSession, out: FamilyResult, ex: Example | None) -> None:
    if ex is not None:
        r = infer(s, ex, auth=False, retry_throttled=False)
    elif s.target.protocol == "rest":
        r = s.http("POST", model_path(s) + "/infer", body={"inputs": []}, auth=False, retry_throttled=False)
    else:
        r = s.grpc(TRITON + "ModelInfer", pb.ModelInferRequest(model_name=s.target.model).SerializeToString(),
                   auth=False)
    out.metrics["inference_without_key"] = r.status
    if reached(r):
        out.issues.append(_issue(
            "inference_open", Severity.HIGH, "Inference answers without credentials",
            f"{r.what} without any credential was answered {r.status}"
            + (" with predictions" if r.outcome == "ok" else " by the model's own input checks") +
            ": anyone who reaches the endpoint can query it, evade it or extract it.",
            "Require an API key, mTLS or a token on every inference route (e.g. behind `mlwarden guard`).",
            status=r.status, request=r.what))


def _metadata(s: ProbeSession, out: FamilyResult) -> None:
    if s.target.protocol == "rest":
        r = s.http("GET", model_path(s), auth=False, retry_throttled=False)
    else:
        req = pb.ModelMetadataRequest(name=s.target.model, version=s.target.version or "")
        r = s.grpc(TRITON + "ModelMetadata", req.SerializeToString(), auth=False)
    out.metrics["metadata_without_key"] = r.status
    if r.outcome == "ok":
        out.issues.append(_issue(
            "metadata_open", Severity.MEDIUM, "Model metadata is served without credentials",
            f"{r.what} answered {r.status} without credentials: the input schema, output names and platform "
            "tell an attacker how to build queries.", "Require credentials on metadata routes as on inference.",
            request=r.what))


def _admin(s: ProbeSession, out: FamilyResult) -> list[str]:
    """Open management routes become one finding; the model names any index listed are returned."""
    ghost = f"mlwarden-probe-{secrets.token_hex(4)}"  # no such model: load/unload of it changes nothing
    open_routes: list[tuple[str, Any, bool]] = []
    names: list[str] = []
    if s.target.protocol == "rest":
        calls: list[tuple[str, str, Any, bool, str | None]] = [
                 ("POST", "/v2/repository/index", {}, False, None),
                 ("POST", f"/v2/repository/models/{ghost}/load", {}, True, ghost),
                 ("POST", f"/v2/repository/models/{ghost}/unload", {}, True, ghost),
                 ("GET", "/v2/models/stats", None, False, None), ("GET", "/v2/trace/setting", None, False, None),
                 ("GET", "/v2/logging", None, False, None), ("GET", "/v2/systemsharedmemory/status", None, False, None),
                 ("GET", "/v1/models", None, False, None)]
        for method, path, body, is_control, missing in calls:
            r = s.http(method, path, body=body, auth=False, retry_throttled=False)
            if reached(r, missing):
                open_routes.append((r.what, r.status, is_control))
                if path.endswith("/index") or path == "/v1/models":
                    names += _index_names_json(r.body)
    else:
        ghost_b = ghost.encode()
        rpcs = [(TRITON + "RepositoryIndex", b"", False), (MLSERVER + "RepositoryIndex", b"", False),
                 (TRITON + "RepositoryModelLoad", b"\x12" + bytes([len(ghost_b)]) + ghost_b, True),
                 (MLSERVER + "RepositoryModelLoad", b"\x0a" + bytes([len(ghost_b)]) + ghost_b, True)]
        for path, req, is_control in rpcs:
            r = s.grpc(path, req, auth=False)
            if reached(r):
                open_routes.append((path, r.status, is_control))
                if path.endswith("Index") and r.outcome == "ok":
                    names += _index_names_proto(r.body)
    out.metrics["admin_routes_open"] = [w for w, _, _ in open_routes]
    if open_routes:
        control_routes = [w for w, _, c in open_routes if c]
        out.issues.append(_issue(
            "admin_open", Severity.CRITICAL if control_routes else Severity.HIGH,
            "Model-control routes answer without credentials" if control_routes
            else "Management routes answer without credentials",
            f"Without credentials, {len(open_routes)} management route(s) answered: "
            f"{'; '.join(f'{w} → {st}' for w, st, _ in open_routes[:8])}."
            + (" Anyone can unload the model or load another from the repository." if control_routes else ""),
            "Disable model control and management APIs in production (Triton --model-control-mode=none, "
            "--http-restricted-api), or put them behind authentication on a separate, internal port.",
            routes=[w for w, _, _ in open_routes], model_control=bool(control_routes)))
    return names


def _index_names_json(raw: bytes) -> list[str]:
    import json

    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return []
    items = doc.get("models", []) if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        return []
    return [str(i.get("name")) if isinstance(i, dict) else str(i) for i in items[:200]
            if (isinstance(i, dict) and i.get("name")) or isinstance(i, str)]


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while i < len(buf):
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
    raise ValueError("truncated varint")


def _fields(buf: bytes) -> list[tuple[int, bytes]]:
    """(field number, bytes) of the length-delimited fields of one protobuf message."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 2:
            n, i = _varint(buf, i)
            out.append((key >> 3, buf[i:i + n]))
            i += n
        elif wire == 0:
            _, i = _varint(buf, i)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError("unsupported wire type")
    return out


def _index_names_proto(raw: bytes) -> list[str]:
    """Model names of a RepositoryIndexResponse (Triton and MLServer: models = 1, ModelIndex.name = 1)."""
    try:
        return [v.decode("utf-8", "replace") for f, m in _fields(raw) if f == 1
                for g, v in _fields(m) if g == 1][:200]
    except ValueError:
        return []


def _plaintext_key(s: ProbeSession, out: FamilyResult, ex: Example | None) -> None:
    if s.target.tls or not s.options.key:
        return
    r = s.cache.get("example_reply") if ex is not None else metadata(s)[0]
    if r is not None and r.outcome == "ok":
        out.issues.append(_issue(
            "plaintext_credentials", Severity.HIGH, "The server accepts the API key over plain text",
            f"A request carrying the key over an unencrypted connection was answered {r.status}: every client's "
            "key crosses the network in clear and can be replayed by whoever sees it.",
            "Serve only over TLS and refuse (or never listen for) plaintext requests; rotate keys that were "
            "sent in clear.", request=r.what, status=r.status))


def _other_models(s: ProbeSession, out: FamilyResult, index: list[str]) -> None:
    m = s.target.model
    listed = [n for n in dict.fromkeys(index) if n != m]
    guessed = [g.format(m=m) for g in GUESSES if g.format(m=m) not in listed and g.format(m=m) != m]
    candidates = (listed + guessed)[:MAX_CANDIDATES]
    auth = bool(s.options.key)
    found: list[dict[str, str]] = []
    for name in candidates:
        if s.target.protocol == "rest":
            r = s.http("GET", f"/v2/models/{name}/ready", auth=auth, retry_throttled=False)
            ok = r.outcome == "ok"
        else:
            r = s.grpc(TRITON + "ModelReady", pb.ModelReadyRequest(name=name).SerializeToString(), auth=auth)
            ok = r.outcome == "ok" and pb.ModelReadyResponse.FromString(r.body).ready
        if ok:
            found.append({"model": name, "found_by": "repository index" if name in listed else "name guess"})
    out.metrics.update(models_listed=listed[:50], models_tried=candidates, other_models_reachable=len(found))
    if found:
        who = "the caller's key" if auth else "no credentials"
        out.issues.append(_issue(
            "other_models", Severity.HIGH, f"{len(found)} other model(s) on the server answer with {who}",
            f"Besides {m}, these models answer ready with {who}: "
            f"{', '.join(f['model'] + ' (' + f['found_by'] + ')' for f in found[:8])}. On a shared server, one "
            "tenant's access reaches the others' models.",
            "Scope every key to its models (per-key model access in the gateway) and do not expose the "
            "repository index.", models=found[:20]))
