"""A request the server accepts, found once per probe and shared by every family.

Families that measure the server *working* (probability vectors, latency, quotas) need one
valid inference request. It comes from ``--example`` (an OIP v2 REST body), else from the
model metadata (one row of neutral values per declared input). It is sent once, with the
caller's key; if the server refuses it, those families say so instead of guessing.
The same example travels as JSON over REST and as a ``ModelInferRequest`` over gRPC.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..sources.oip import oip_v2_pb2 as pb
from ..sources.oip.tensors import DTYPES, Tensor, fill_proto, set_param
from .session import ProbeSession, Reply

INFER = "/inference.GRPCInferenceService/ModelInfer"
METADATA = "/inference.GRPCInferenceService/ModelMetadata"


@dataclass(frozen=True)
class Example:
    """Input tensors (REST form, flat ``data``) whose first dimension is rows."""

    inputs: tuple[dict[str, Any], ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    source: str = "metadata"

    def tensors(self, rows: int = 1) -> list[dict[str, Any]]:
        out = []
        for t in self.inputs:
            shape = list(t["shape"]) or [1]
            per_row = math.prod(shape[1:]) if len(shape) > 1 else 1
            first = list(t["data"][:per_row])
            out.append({**t, "shape": [rows, *shape[1:]], "data": first * rows})
        return out

    def rest(self, rows: int = 1, outputs: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"inputs": self.tensors(rows)}
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        if outputs:
            body["outputs"] = [{"name": n} for n in outputs]
        return body

    def proto(self, s: ProbeSession, rows: int = 1, outputs: list[str] | None = None) -> Any:
        req = pb.ModelInferRequest(model_name=s.target.model, model_version=s.target.version or "")
        for k, v in self.parameters.items():
            set_param(req.parameters[k], v)
        for t in self.tensors(rows):
            dt = t["datatype"]
            data = (np.asarray([str(v) for v in t["data"]], dtype=object) if dt == "BYTES"
                    else np.asarray(t["data"], dtype=DTYPES[dt]))
            fill_proto(req.inputs.add(), Tensor(t["name"], dt, data.reshape(t["shape"]), dict(t.get("parameters") or {})))
        for n in outputs or ():
            req.outputs.add(name=n)
        return req


def model_path(s: ProbeSession) -> str:
    t = s.target
    return f"/v2/models/{t.model}" + (f"/versions/{t.version}" if t.version else "")


def metadata(s: ProbeSession, *, retry_throttled: bool = True) -> tuple[Reply, dict[str, Any] | None]:
    """The model metadata reply (with the caller's key) and its content as a dict, cached."""
    if "metadata" not in s.cache:
        if s.target.protocol == "rest":
            r = s.http("GET", model_path(s), retry_throttled=retry_throttled)
            doc = _json(r.body) if r.outcome == "ok" else None
        else:
            req = pb.ModelMetadataRequest(name=s.target.model, version=s.target.version or "")
            r = s.grpc(METADATA, req.SerializeToString())
            doc = _proto_meta(r.body) if r.outcome == "ok" else None
        s.cache["metadata"] = (r, doc if isinstance(doc, dict) else None)
    return s.cache["metadata"]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _proto_meta(raw: bytes) -> dict[str, Any] | None:
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError

    try:
        return MessageToDict(pb.ModelMetadataResponse.FromString(raw))
    except DecodeError:
        return None


def _neutral(datatype: str) -> Any:
    if datatype.startswith("FP"):
        return 0.5
    if datatype == "BOOL":
        return True
    if datatype == "BYTES":
        return "a"
    return 1


def from_metadata(doc: dict[str, Any]) -> Example | None:
    ins = doc.get("inputs") or []
    tensors = []
    for t in ins:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            return None
        dt = str(t.get("datatype", "FP64")).upper()
        if dt not in DTYPES or dt in ("FP16",):
            return None
        shape = [1 if int(d) < 0 else int(d) for d in (t.get("shape") or [1])]
        shape[0] = 1
        if math.prod(shape) > 100_000:
            return None
        tensors.append({"name": t["name"], "datatype": dt, "shape": shape, "data": [_neutral(dt)] * math.prod(shape)})
    return Example(tuple(tensors)) if tensors else None


def from_body(body: dict[str, Any]) -> Example:
    """An :class:`Example` from a REST inference body (``--example``); ValueError says what is wrong."""
    ins = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(ins, list) or not ins:
        raise ValueError("the example must be an OIP v2 inference body with a non-empty \"inputs\" list")
    tensors = []
    for t in ins:
        if not isinstance(t, dict) or not {"name", "datatype", "shape", "data"} <= set(t):
            raise ValueError("each example input needs name, datatype, shape and data")
        flat = np.asarray(t["data"], dtype=object).ravel().tolist()
        if len(flat) != math.prod(t["shape"]) or str(t["datatype"]).upper() not in DTYPES:
            raise ValueError(f"example input {t['name']!r}: data does not match its shape or datatype")
        tensors.append({**t, "datatype": str(t["datatype"]).upper(), "data": flat})
    given = body.get("parameters")
    params: dict[str, Any] = given if isinstance(given, dict) else {}
    return Example(tuple(tensors), params, "--example")


def working_example(s: ProbeSession) -> tuple[Example | None, str]:
    """A request the server answers with 2xx/OK (and why there is none), cached."""
    if "example" in s.cache:
        return s.cache["example"]
    ex: Example | None = None
    why = ""
    if s.options.example is not None:
        ex = from_body(s.options.example)
    else:
        r, doc = metadata(s)
        ex = from_metadata(doc) if doc else None
        if ex is None:
            why = ("the model metadata declares no usable inputs; pass --example with a valid inference body"
                   if doc else f"the model metadata is not readable ({r.status} {r.outcome})")
    if ex is not None:
        r = infer(s, ex)
        if r.outcome != "ok":
            why = f"the server refuses the {ex.source} example ({r.status}: {r.text(160)})"
            ex = None
        else:
            s.cache["example_reply"] = r
    s.cache["example"] = (ex, why)
    return ex, why


def infer(s: ProbeSession, ex: Example, *, rows: int = 1, outputs: list[str] | None = None, auth: bool = True,
          retry_throttled: bool = True) -> Reply:
    if s.target.protocol == "rest":
        return s.http("POST", model_path(s) + "/infer", body=ex.rest(rows, outputs), auth=auth,
                      retry_throttled=retry_throttled)
    return s.grpc(INFER, ex.proto(s, rows, outputs).SerializeToString(), auth=auth)


def outputs_of(s: ProbeSession, r: Reply) -> dict[str, np.ndarray]:
    """Output name → array of an inference reply (empty when it does not parse)."""
    from ..errors import SourceError
    from ..sources.oip.tensors import from_json, from_proto

    try:
        if s.target.protocol == "rest":
            doc = _json(r.body)
            outs = doc.get("outputs") if isinstance(doc, dict) else None
            return dict(from_json(o, "probe") for o in outs) if isinstance(outs, list) else {}
        resp = pb.ModelInferResponse.FromString(r.body)
        raw = list(resp.raw_output_contents)
        return dict(from_proto(o, raw[i] if i < len(raw) else None, "probe") for i, o in enumerate(resp.outputs))
    except (SourceError, ValueError, TypeError):
        return {}
    except Exception:  # noqa: BLE001 — a protobuf DecodeError from a hostile answer: nothing to read
        return {}
