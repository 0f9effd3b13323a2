"""Tensors of the Open Inference Protocol v2 as numpy arrays, and back, for REST and gRPC.

The protocol carries a tensor as ``{name, datatype, shape, data}``; ``data`` is row-major
(nested or flat JSON in REST, one typed repeated field or little-endian raw bytes in gRPC).
Everything a server sends is checked here — datatype known, element count equal to the
product of the shape — so a wrong answer is a :class:`SourceError`, never a silent reshape.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import SourceError

# datatype → numpy dtype (BYTES decodes to str objects); FP16 and BF16 are not accepted in
# JSON and mlwarden never sends them, but a gRPC server may answer FP16 as raw bytes.
DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": object,
}
# InferTensorContents field that carries each datatype in gRPC.
CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
    "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


class ServerError(SourceError):
    """The server answered, with an error of its own (HTTP 4xx/5xx, a gRPC status other than transport)."""


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as model metadata describes it (``-1`` = variable dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class Tensor:
    """One input tensor to send: ``data`` already has ``shape`` and a dtype matching ``datatype``."""

    name: str
    datatype: str
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> list[int]:
        return [int(d) for d in self.data.shape]


def datatype_of(values: np.ndarray) -> str:
    """The OIP datatype that carries ``values`` without loss (text as BYTES)."""
    k = values.dtype.kind
    if k == "b":
        return "BOOL"
    if k in "iu":
        return "INT64" if k == "i" or values.dtype.itemsize < 8 else "UINT64"
    if k == "f":
        return "FP64"
    return "BYTES"


def tensor(name: str, values: np.ndarray, parameters: dict[str, Any] | None = None) -> Tensor:
    dt = datatype_of(values)
    data = values.astype(DTYPES[dt]) if dt != "BYTES" else np.asarray([_text(v) for v in values.ravel()],
                                                                      dtype=object).reshape(values.shape)
    params = dict(parameters or {})
    if dt == "BYTES":
        params.setdefault("content_type", "str")  # so the server decodes text, not raw bytes
    return Tensor(name, dt, data, params)


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        raise SourceError("a text feature holds a missing value; OIP v2 cannot send it")
    return str(v)


def spec_from(d: Any, where: str) -> TensorSpec:
    """A :class:`TensorSpec` from a REST metadata entry (a dict)."""
    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("datatype"), str):
        raise SourceError(f"{where}: model metadata lists a tensor without name/datatype: {str(d)[:80]}")
    shape = d.get("shape") or []
    if not isinstance(shape, list) or not all(isinstance(s, int) for s in shape):
        raise SourceError(f"{where}: model metadata gives tensor {d['name']!r} a shape that is not a list of ints")
    params = d.get("parameters")
    return TensorSpec(d["name"], d["datatype"].upper(), tuple(shape), params if isinstance(params, dict) else {})


def _checked_shape(shape: Any, name: str, where: str) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise SourceError(f"{where}: output {name!r} has an invalid shape {str(shape)[:60]}")
    return tuple(int(s) for s in shape)


def from_json(out: Any, where: str) -> tuple[str, np.ndarray]:
    """(name, array) of one REST output tensor, checked against its declared shape."""
    if not isinstance(out, dict) or not isinstance(out.get("name"), str):
        raise SourceError(f"{where}: the response has an output that is not a named tensor")
    name, dt = out["name"], str(out.get("datatype", "")).upper()
    if dt not in DTYPES:
        raise SourceError(f"{where}: output {name!r} has unknown datatype {dt[:20]!r}")
    shape = _checked_shape(out.get("shape"), name, where)
    flat = _flatten(out.get("data"), name, where)
    if len(flat) != math.prod(shape):
        raise SourceError(f"{where}: output {name!r} declares shape {list(shape)} but carries {len(flat)} values")
    try:
        arr = np.asarray(flat, dtype=DTYPES[dt]) if dt != "BYTES" else np.asarray(flat, dtype=object)
    except (TypeError, ValueError, OverflowError):
        raise SourceError(f"{where}: output {name!r} holds values that are not {dt}") from None
    return name, arr.reshape(shape)


def _flatten(data: Any, name: str, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise SourceError(f"{where}: output {name!r} has no data list")
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:  # iterative, so a deeply nested hostile answer cannot exhaust the recursion limit
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            if isinstance(v, dict):
                raise SourceError(f"{where}: output {name!r} holds an object where a value belongs")
            flat.append(v)
        else:
            stack.pop()
    return flat


def to_json(t: Tensor) -> dict[str, Any]:
    flat = t.data.ravel()
    data = flat.tolist()
    if t.datatype in ("FP32", "FP64") and not np.isfinite(flat).all():
        raise SourceError(f"feature {t.name!r} holds NaN or infinity, which OIP v2 JSON cannot carry; "
                          "impute it or use a grpc:// endpoint")
    out: dict[str, Any] = {"name": t.name, "shape": t.shape, "datatype": t.datatype, "data": data}
    if t.parameters:
        out["parameters"] = t.parameters
    return out


def fill_proto(msg: Any, t: Tensor) -> None:
    """Fill an ``InferInputTensor`` message with ``t``."""
    msg.name, msg.datatype = t.name, t.datatype
    msg.shape.extend(t.shape)
    for k, v in t.parameters.items():
        set_param(msg.parameters[k], v)
    values = t.data.ravel()
    target = getattr(msg.contents, CONTENTS[t.datatype])
    target.extend([str(v).encode() for v in values] if t.datatype == "BYTES" else values.tolist())


def set_param(p: Any, v: Any) -> None:
    if isinstance(v, bool):
        p.bool_param = v
    elif isinstance(v, int):
        p.int64_param = v
    elif isinstance(v, float):
        p.double_param = v
    else:
        p.string_param = str(v)


def from_proto(out: Any, raw: bytes | None, where: str) -> tuple[str, np.ndarray]:
    """(name, array) of one gRPC ``InferOutputTensor`` (its typed contents or its raw bytes)."""
    name, dt = out.name, out.datatype.upper()
    if dt not in DTYPES:
        raise SourceError(f"{where}: output {name!r} has unknown datatype {dt[:20]!r}")
    shape = _checked_shape(list(out.shape), name, where)
    n = math.prod(shape)
    if raw is not None:
        arr = _from_raw(raw, dt, n, name, where)
    elif dt == "BYTES":
        arr = np.asarray([b.decode("utf-8", "replace") for b in out.contents.bytes_contents], dtype=object)
    else:
        arr = np.asarray(getattr(out.contents, CONTENTS[dt]), dtype=DTYPES[dt]) if dt in CONTENTS else np.empty(0)
    if arr.size != n:
        raise SourceError(f"{where}: output {name!r} declares shape {list(shape)} but carries {arr.size} values")
    return name, arr.reshape(shape)


def _from_raw(raw: bytes, dt: str, n: int, name: str, where: str) -> np.ndarray:
    if dt != "BYTES":
        item = np.dtype(DTYPES[dt]).newbyteorder("<")
        if len(raw) != n * item.itemsize:
            raise SourceError(f"{where}: raw output {name!r} has {len(raw)} bytes, not {n} x {dt}")
        return np.frombuffer(raw, dtype=item).astype(DTYPES[dt])
    vals, pos = [], 0
    while pos < len(raw):  # BYTES raw = each element as a 4-byte little-endian length, then its bytes
        if pos + 4 > len(raw):
            raise SourceError(f"{where}: raw output {name!r} is truncated")
        (ln,) = struct.unpack_from("<I", raw, pos)
        vals.append(raw[pos + 4:pos + 4 + ln].decode("utf-8", "replace"))
        pos += 4 + ln
    return np.asarray(vals, dtype=object)
