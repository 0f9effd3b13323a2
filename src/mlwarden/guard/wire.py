"""REST and gRPC inference requests decoded into one :class:`InferCall`, answers encoded back.

Everything a client sends is hostile until checked: element counts are capped *before*
anything is allocated, nesting is walked iteratively (a deeply nested JSON array cannot
exhaust the stack), every tensor's data must match the product of its shape, and each
problem is one :class:`~.errors.Invalid` line naming the input. What the values mean
(ranges, categories) is :mod:`.schema`'s business.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..sources.oip.tensors import CONTENTS, DTYPES
from .errors import Invalid, TooLarge

MAX_ELEMENTS = 1_000_000
MAX_DEPTH = 8
MAX_INPUTS = 1024
REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs"})


@dataclass(frozen=True)
class WireTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]
    """Row-major, flat."""


@dataclass(frozen=True)
class InferCall:
    model: str
    version: str
    id: str
    inputs: tuple[WireTensor, ...]
    outputs: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)


def _shape(raw: Any, name: str) -> tuple[int, ...]:
    if not isinstance(raw, (list, tuple)) or not raw or len(raw) > 4 or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_ELEMENTS for s in raw):
        raise Invalid(f"input '{name}': shape must be a list of 1 to 4 non-negative integers")
    if math.prod(raw) > MAX_ELEMENTS:
        raise TooLarge(f"input '{name}': shape {list(raw)} holds more than {MAX_ELEMENTS:,} elements")
    return tuple(int(s) for s in raw)


def _flatten(data: Any, name: str, limit: int) -> list[Any]:
    if not isinstance(data, list):
        raise Invalid(f"input '{name}': 'data' must be a JSON array")
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                if len(stack) >= MAX_DEPTH:
                    raise Invalid(f"input '{name}': 'data' is nested deeper than {MAX_DEPTH} levels")
                stack.append(iter(v))
                break
            if isinstance(v, dict):
                raise Invalid(f"input '{name}': 'data' holds an object where a value belongs")
            flat.append(v)
            if len(flat) > limit:
                raise Invalid(f"input '{name}': 'data' holds more values than its shape ({limit})")
        else:
            stack.pop()
    return flat


def _str(doc: dict[str, Any], key: str, where: str) -> str:
    v = doc.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str) or len(v) > 256:
        raise Invalid(f"{where}'{key}' must be a string of at most 256 characters")
    return v


def _params(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 64 or not all(
            isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool))) for k, v in raw.items()):
        raise Invalid(f"{where}'parameters' must map names to strings, numbers or booleans")
    return raw


def from_json(doc: Any, model: str, version: str, *, allow: frozenset[str] = frozenset()) -> InferCall:
    """The call a REST ``/infer`` body makes (already parsed JSON); ``allow`` names extra top-level fields."""
    if not isinstance(doc, dict):
        raise Invalid("the request body must be a JSON object with an 'inputs' list")
    unknown = doc.keys() - REQUEST_FIELDS - allow
    if unknown:  # strict like the schema: a field we would ignore may be one the client thinks matters
        raise Invalid(f"unknown field {min(unknown)[:40]!r} in the request; OIP v2 allows id, parameters, "
                      "inputs and outputs")
    ins = doc.get("inputs")
    if not isinstance(ins, list) or not ins:
        raise Invalid("the request needs a non-empty 'inputs' list")
    if len(ins) > MAX_INPUTS:
        raise TooLarge(f"the request has {len(ins)} inputs; at most {MAX_INPUTS} are accepted")
    tensors, total = [], 0
    for i, t in enumerate(ins):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise Invalid(f"inputs[{i}] must be an object with a 'name'")
        name = t["name"][:128]
        dt = t.get("datatype")
        if not isinstance(dt, str) or dt.upper() not in DTYPES:
            raise Invalid(f"input '{name}': unknown datatype {str(dt)[:20]!r} (use FP64, FP32, INT64, BOOL, BYTES…)")
        shape = _shape(t.get("shape"), name)
        total += math.prod(shape)
        if total > MAX_ELEMENTS:
            raise TooLarge(f"the request holds more than {MAX_ELEMENTS:,} values")
        flat = _flatten(t.get("data"), name, math.prod(shape))
        if len(flat) != math.prod(shape):
            raise Invalid(f"input '{name}': shape {list(shape)} needs {math.prod(shape)} values, got {len(flat)}")
        tensors.append(WireTensor(name, dt.upper(), shape, flat))
    outs = doc.get("outputs") or []
    if not isinstance(outs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outs):
        raise Invalid("'outputs' must be a list of objects with a 'name'")
    return InferCall(model, version, _str(doc, "id", ""), tuple(tensors), tuple(o["name"][:128] for o in outs[:16]),
                     _params(doc.get("parameters"), ""))


def _param(p: Any) -> Any:
    which = p.WhichOneof("parameter_choice")
    return getattr(p, which) if which else None


def from_proto(req: Any) -> InferCall:
    """The call a gRPC ``ModelInferRequest`` makes (typed contents or raw bytes)."""
    if not req.inputs:
        raise Invalid("the request needs at least one input")
    if len(req.inputs) > MAX_INPUTS:
        raise TooLarge(f"the request has {len(req.inputs)} inputs; at most {MAX_INPUTS} are accepted")
    raw = list(req.raw_input_contents)
    if raw and len(raw) != len(req.inputs):
        raise Invalid(f"{len(raw)} raw_input_contents for {len(req.inputs)} inputs")
    tensors, total = [], 0
    for i, t in enumerate(req.inputs):
        name = t.name[:128] or f"inputs[{i}]"
        dt = t.datatype.upper()
        if dt not in DTYPES:
            raise Invalid(f"input '{name}': unknown datatype {t.datatype[:20]!r} (use FP64, FP32, INT64, BOOL, BYTES…)")
        shape = _shape(list(t.shape), name)
        n = math.prod(shape)
        total += n
        if total > MAX_ELEMENTS:
            raise TooLarge(f"the request holds more than {MAX_ELEMENTS:,} values")
        if raw:
            flat = _from_raw(raw[i], dt, n, name)
        elif dt == "BYTES":
            flat = [b.decode("utf-8", "replace") for b in t.contents.bytes_contents]
        elif dt in CONTENTS:
            flat = list(getattr(t.contents, CONTENTS[dt]))
        else:
            raise Invalid(f"input '{name}': {dt} travels only in raw_input_contents")
        if len(flat) != n:
            raise Invalid(f"input '{name}': shape {list(shape)} needs {n} values, got {len(flat)}")
        tensors.append(WireTensor(name, dt, shape, flat))
    params = {k: _param(v) for k, v in list(req.parameters.items())[:64]}
    return InferCall(req.model_name, req.model_version, req.id[:256], tuple(tensors),
                     tuple(o.name[:128] for o in req.outputs[:16]), params)


def _from_raw(raw: bytes, dt: str, n: int, name: str) -> list[Any]:
    if dt != "BYTES":
        item = np.dtype(DTYPES[dt]).newbyteorder("<")
        if len(raw) != n * item.itemsize:
            raise Invalid(f"input '{name}': raw contents of {len(raw)} bytes, not {n} x {dt}")
        return np.frombuffer(raw, dtype=item).tolist()
    vals: list[Any] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw) or len(vals) >= n:
            raise Invalid(f"input '{name}': raw BYTES contents are malformed")
        (ln,) = struct.unpack_from("<I", raw, pos)
        if pos + 4 + ln > len(raw):
            raise Invalid(f"input '{name}': raw BYTES contents are truncated")
        vals.append(raw[pos + 4:pos + 4 + ln].decode("utf-8", "replace"))
        pos += 4 + ln
    return vals


@dataclass(frozen=True)
class OutTensor:
    name: str
    datatype: str
    values: np.ndarray


@dataclass(frozen=True)
class InferAnswer:
    model: str
    version: str
    id: str
    outputs: tuple[OutTensor, ...]


def datatype(values: np.ndarray) -> str:
    k = values.dtype.kind
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}.get(k, "BYTES")


def to_json(a: InferAnswer) -> dict[str, Any]:
    outs = []
    for o in a.outputs:
        data = o.values.ravel().tolist() if o.datatype != "BYTES" else [str(v) for v in o.values.ravel()]
        outs.append({"name": o.name, "datatype": o.datatype, "shape": list(o.values.shape), "data": data})
    doc: dict[str, Any] = {"model_name": a.model, "id": a.id, "outputs": outs}
    if a.version:
        doc["model_version"] = a.version
    return doc


def fill_proto(resp: Any, a: InferAnswer) -> Any:
    resp.model_name, resp.model_version, resp.id = a.model, a.version, a.id
    for o in a.outputs:
        t = resp.outputs.add(name=o.name, datatype=o.datatype, shape=list(o.values.shape))
        flat = o.values.ravel()
        target = getattr(t.contents, CONTENTS[o.datatype])
        target.extend([str(v).encode() for v in flat] if o.datatype == "BYTES" else flat.tolist())
    return resp
