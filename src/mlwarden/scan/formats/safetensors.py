"""Safetensors: validate the JSON header against the data it describes.

A safetensors file is ``u64 N`` (little-endian), ``N`` bytes of JSON, then the data
section. The format executes nothing, so the risks are in the header: offsets that point
outside the data or overlap (loaders other than the Rust reference have read out of bounds
on them), sizes that disagree with ``shape`` and ``dtype``, and bytes no tensor claims — gaps or a
trailing blob — where a payload can ride along unseen. Only the header is read; the data
section is measured, never loaded.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

from ...findings import Severity
from ..base import ScanContext, ScanIssue, Where
from .jsonguard import read_bounded
from .protobuf import stream_size

# Bits per element, from the reference implementation's Dtype enum (safetensors ≥ 0.6).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}  # fmt: skip
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}
_HIDDEN_DATA = (
    "Bytes that no tensor claims are ignored by loaders but travel with the model; "
    "re-save the file with the safetensors library, which writes a gap-free layout."
)


class _HeaderError(ValueError):
    pass


def scan_safetensors(stream: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Check a safetensors header and its layout; report through ``ctx``."""
    ctx.formats[str(where)] = "safetensors"
    size = stream_size(stream)

    def add(kind: str, severity: Severity, message: str, remediation: str = "", **detail: Any) -> None:
        ctx.add(ScanIssue(kind=f"safetensors.{kind}", severity=severity, message=message,
                          where=where, detail=detail, remediation=remediation))

    if size < 8:
        ctx.incomplete("safetensors.parse_error", where, f"file is {size} bytes, too short for a safetensors header")
        return
    n = int.from_bytes(stream.read(8), "little")
    if n > size - 8:
        add("header_out_of_range", Severity.HIGH,
            f"header length {n} points past the end of the file ({size - 8} bytes follow): truncated, "
            "or built so that readers disagree on where the data starts",
            "Do not load the file; re-export the model with the safetensors library.",
            header_bytes=n, file_size=size)
        return
    if n > ctx.limits.max_header_bytes:
        ctx.incomplete("safetensors.header_too_large", where,
                       f"header claims {n} bytes, over the {ctx.limits.max_header_bytes}-byte limit "
                       "(the safetensors library's own), so it is not inspected",
                       remediation="Re-export the model with the safetensors library.", header_bytes=n)
        return
    raw, why = read_bounded(stream, n, ctx.limits.max_json_tokens)
    if raw is None:
        ctx.incomplete("safetensors.header_too_complex", where, why,
                       remediation="Re-export the model with the safetensors library.", header_bytes=n)
        return
    try:
        header = _parse_header(raw)
    except _HeaderError as e:
        ctx.incomplete("safetensors.parse_error", where, f"invalid safetensors header ({e})",
                       remediation="Loaders disagree on malformed headers; re-export the model with the "
                       "safetensors library.")
        return
    del raw
    _check_entries(header, size - 8 - n, 8 + n, stream, add)


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _HeaderError(f"not UTF-8 ({e.reason} at byte {e.start})") from None

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                # Two parsers may keep different copies: one validates, another loads.
                raise _HeaderError(f"duplicate key {key!r}")
            out[key] = value
        return out

    def no_constant(name: str) -> Any:
        raise _HeaderError(f"non-standard JSON constant {name}")

    try:
        header = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except _HeaderError:
        raise
    except (ValueError, RecursionError) as e:
        raise _HeaderError(f"not valid JSON ({e})"[:300]) from None
    if not isinstance(header, dict):
        raise _HeaderError(f"top level is a JSON {type(header).__name__}, not an object")
    return header


def _check_entries(header: dict[str, Any], data_size: int, data_start: int,
                   stream: BinaryIO, add: Any) -> None:
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                add("metadata_invalid", Severity.MEDIUM,
                    "__metadata__ must map strings to strings; loaders reject or mis-read it",
                    "Keep __metadata__ a flat string-to-string map.")
            continue
        span = _check_tensor(name, entry, data_size, add)
        if span is not None:
            spans.append(span)
    _check_layout(spans, data_size, data_start, stream, add)


def _check_tensor(name: str, entry: Any, data_size: int, add: Any) -> tuple[int, int, str] | None:
    def bad(message: str) -> None:
        add("tensor_invalid", Severity.MEDIUM, f"tensor {name!r}: {message}",
            "Re-export the model with the safetensors library.", tensor=name)

    if not isinstance(entry, dict):
        bad(f"entry is a JSON {type(entry).__name__}, not an object")
        return None
    missing = _ENTRY_KEYS - entry.keys()
    if missing:
        bad(f"missing {', '.join(sorted(missing))}")
        return None
    extra = entry.keys() - _ENTRY_KEYS
    if extra:
        add("tensor_extra_fields", Severity.LOW,
            f"tensor {name!r} carries unknown fields {sorted(extra)[:5]}", tensor=name)
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_BITS:
        bad(f"unknown dtype {str(dtype)[:40]!r}")
        return None
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        bad("shape must be a list of non-negative integers")
        return None
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_uint(o) for o in offsets)):
        bad("data_offsets must be [begin, end] with non-negative integers")
        return None
    begin, end = offsets
    if begin > end:
        bad(f"data_offsets begin {begin} > end {end}")
        return None
    if end > data_size:
        add("offset_out_of_range", Severity.HIGH,
            f"tensor {name!r} ends at {end}, past the {data_size}-byte data section",
            "Out-of-range offsets make non-reference loaders read outside the file; do not load it.",
            tensor=name, data_offsets=[begin, end], data_size=data_size)
        return None
    elements = 1
    for d in shape:
        elements *= d
        if elements > 1 << 64:  # already larger than any file; stop multiplying
            break
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        add("size_mismatch", Severity.MEDIUM,
            f"tensor {name!r}: shape {shape[:8]} of {dtype} needs {bits / 8:g} bytes, "
            f"data_offsets span {end - begin}",
            "Loaders disagree on mismatched sizes; re-export the model.",
            tensor=name, expected_bytes=bits / 8, span_bytes=end - begin)
    return begin, end, name


def _check_layout(spans: list[tuple[int, int, str]], data_size: int, data_start: int,
                  stream: BinaryIO, add: Any) -> None:
    covered = 0
    last = ""
    for begin, end, name in sorted(spans):
        if begin == end:
            continue  # empty tensors occupy no bytes and overlap nothing
        if begin < covered:
            add("overlap", Severity.HIGH,
                f"tensors {last!r} and {name!r} overlap (byte {begin} < {covered})",
                "Overlapping tensors alias each other's memory; do not load the file.",
                tensors=[last, name], offset=begin)
        elif begin > covered:
            add("gap", Severity.LOW,
                f"{begin - covered} unclaimed bytes before tensor {name!r}", _HIDDEN_DATA,
                gap_bytes=begin - covered, head=_peek(stream, data_start + covered))
        if end > covered:
            covered, last = end, name
    if covered < data_size:
        add("trailing_data", Severity.MEDIUM,
            f"{data_size - covered} bytes after the last tensor belong to no tensor: a hidden payload",
            _HIDDEN_DATA, trailing_bytes=data_size - covered, head=_peek(stream, data_start + covered))


def _peek(stream: BinaryIO, offset: int) -> str:
    """The first bytes of unclaimed data, in hex, so a reader can spot a pickle or zip magic."""
    stream.seek(offset)
    return stream.read(16).hex()


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
