"""safetensors: a hand-built valid file is clean; each header lie is reported."""

from __future__ import annotations

import io
import json
import struct

import pytest

from mlwarden.scan.base import Limits, ScanContext, Where
from mlwarden.scan.formats.safetensors import scan_safetensors

from .conftest import kinds


def build(header: dict | bytes, data: bytes = b"", n: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if n is None else n) + raw + data


def valid_header() -> dict:
    return {
        "__metadata__": {"format": "pt"},
        "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "I8", "shape": [4], "data_offsets": [16, 20]},
        "q": {"dtype": "F4", "shape": [4], "data_offsets": [20, 22]},
        "empty": {"dtype": "F16", "shape": [0, 3], "data_offsets": [22, 22]},
    }


def test_valid_file_is_clean_and_format_recorded(scan):
    ctx = ScanContext(policy=None)
    scan_safetensors(io.BytesIO(build(valid_header(), bytes(22))), ctx, Where(path="m.safetensors"))
    assert ctx.issues == []
    assert ctx.formats["m.safetensors"] == "safetensors"


def entry(**changes) -> dict:
    h = valid_header()
    h["w"] = {**h["w"], **changes}
    return h


@pytest.mark.parametrize(
    ("header", "kind", "severity"),
    [
        (entry(dtype="F128"), "safetensors.tensor_invalid", "medium"),
        (entry(shape=[2, -2]), "safetensors.tensor_invalid", "medium"),
        (entry(shape="2x2"), "safetensors.tensor_invalid", "medium"),
        (entry(shape=[True, 4]), "safetensors.tensor_invalid", "medium"),
        (entry(data_offsets=[16, 0]), "safetensors.tensor_invalid", "medium"),
        (entry(data_offsets=[0, 16, 4]), "safetensors.tensor_invalid", "medium"),
        (entry(shape=[3, 2]), "safetensors.size_mismatch", "medium"),
        (entry(data_offsets=[0, 4096]), "safetensors.offset_out_of_range", "high"),
        (entry(extra="x"), "safetensors.tensor_extra_fields", "low"),
        ({**valid_header(), "__metadata__": {"n": 1}}, "safetensors.metadata_invalid", "medium"),
        ({**valid_header(), "__metadata__": ["x"]}, "safetensors.metadata_invalid", "medium"),
        ({**valid_header(), "x": [1, 2]}, "safetensors.tensor_invalid", "medium"),
    ],
)
def test_header_rule_violations(scan, header, kind, severity):
    issues = scan(scan_safetensors, build(header, bytes(22)))
    match = [i for i in issues if i.kind == kind]
    assert match, kinds(issues)
    assert match[0].severity.value == severity


def test_overlapping_tensors_are_high(scan):
    h = valid_header()
    h["b"] = {"dtype": "I8", "shape": [4], "data_offsets": [12, 16]}
    h["q"] = {"dtype": "F4", "shape": [12], "data_offsets": [16, 22]}
    issues = scan(scan_safetensors, build(h, bytes(22)))
    overlap = [i for i in issues if i.kind == "safetensors.overlap"]
    assert len(overlap) == 1 and overlap[0].severity.value == "high"
    assert set(overlap[0].detail["tensors"]) == {"w", "b"}


def test_gap_is_low_and_trailing_payload_is_medium(scan):
    h = valid_header()
    h["b"] = {"dtype": "I8", "shape": [4], "data_offsets": [18, 22]}  # 2 unclaimed bytes at 16
    h["q"] = {"dtype": "F4", "shape": [4], "data_offsets": [22, 24]}
    h["empty"] = {"dtype": "F16", "shape": [0], "data_offsets": [24, 24]}
    payload = b"\x80\x04\x95" + b"\x00" * 13
    issues = scan(scan_safetensors, build(h, bytes(24) + payload))
    gap = [i for i in issues if i.kind == "safetensors.gap"]
    trailing = [i for i in issues if i.kind == "safetensors.trailing_data"]
    assert gap and gap[0].severity.value == "low" and gap[0].detail["gap_bytes"] == 2
    assert trailing and trailing[0].severity.value == "medium"
    assert trailing[0].detail["trailing_bytes"] == len(payload)
    assert trailing[0].detail["head"].startswith("800495")  # a pickle's magic, for the reader


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
        b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
        b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}',
        b'{"a": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}',
        b"[1, 2, 3]",
        b"{not json",
        b'{"a": "\xff\xfe"}',
        b"[" * 100_000,
    ],
)
def test_malformed_headers_are_parse_errors(scan, raw):
    issues = scan(scan_safetensors, build(raw, bytes(4)))
    assert [i.kind for i in issues] == ["safetensors.parse_error"]
    assert issues[0].severity.value == "high"  # fails closed: what no parser accepts is not vetted


def test_header_length_past_end_of_file_is_high(scan):
    issues = scan(scan_safetensors, build(valid_header(), bytes(22), n=10_000))
    assert [(i.kind, i.severity.value) for i in issues] == [("safetensors.header_out_of_range", "high")]
    assert issues[0].detail["header_bytes"] == 10_000


def test_header_over_limit_is_not_read(scan):
    issues = scan(scan_safetensors, build(valid_header(), bytes(22)), limits=Limits(max_header_bytes=64))
    assert [(i.kind, i.severity.value) for i in issues] == [("safetensors.header_too_large", "high")]


def test_header_of_countless_containers_is_refused_before_parsing(scan):
    raw = b'{"a": [' + b"[]," * 5000 + b"[]]}"
    issues = scan(scan_safetensors, build(raw, bytes(4)), limits=Limits(max_json_tokens=1000))
    assert [(i.kind, i.severity.value) for i in issues] == [("safetensors.header_too_complex", "high")]
    assert "not fully scanned" in issues[0].message


@pytest.mark.parametrize("data", [b"", b"\x01\x02", struct.pack("<Q", 2**63)])
def test_tiny_or_absurd_files(scan, data):
    issues = scan(scan_safetensors, data)
    assert len(issues) == 1 and issues[0].severity.rank >= 2
