"""SavedModel / GraphDef: protobufs hand-built with a tiny wire-format writer (no TensorFlow)."""

from __future__ import annotations

import pytest

from mlwarden.scan.formats.protobuf import Message, ParseError
from mlwarden.scan.formats.savedmodel import scan_graphdef_pb, scan_savedmodel_pb

from .conftest import kinds


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def ld(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def vi(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def node(name: str, op: str, **attrs: str) -> bytes:
    """NodeDef: name=1, op=2, attr=5 (map entry key=1, value=2 → AttrValue.s=2)."""
    out = ld(1, name) + ld(2, op)
    for key, value in attrs.items():
        out += ld(5, ld(1, key) + ld(2, ld(2, value)))
    return out


def function(name: str, *nodes: bytes) -> bytes:
    """FunctionDef: signature=1 (OpDef.name=1), node_def=3."""
    return b"".join(ld(3, n) for n in nodes) + ld(1, ld(1, name))  # signature last on purpose


def graph(nodes: list[bytes], functions: list[bytes] = ()) -> bytes:
    """GraphDef: node=1, library=2 (FunctionDefLibrary.function=1)."""
    out = b"".join(ld(1, n) for n in nodes)
    if functions:
        out += ld(2, b"".join(ld(1, f) for f in functions))
    return out


def saved_model(graph_def: bytes) -> bytes:
    """SavedModel: schema_version=1, meta_graphs=2 → MetaGraphDef.graph_def=2."""
    return vi(1, 1) + ld(2, ld(1, ld(4, "serve")) + ld(2, graph_def))


BENIGN = [node("x", "Placeholder"), node("w", "Const"), node("mm", "MatMul"), node("out", "Add")]
SAVER = [node("save/SaveV2", "SaveV2"), node("save/RestoreV2", "RestoreV2")]


def test_benign_graph_has_only_the_expected_checkpoint_info(scan):
    issues = scan(scan_savedmodel_pb, saved_model(graph(BENIGN + SAVER)))
    assert [(i.kind, i.severity.value) for i in issues] == [("savedmodel.checkpoint_ops", "info")]
    assert issues[0].detail["ops"] == {"RestoreV2": 1, "SaveV2": 1}


def test_plain_graph_is_clean(scan):
    assert scan(scan_savedmodel_pb, saved_model(graph(BENIGN))) == []


def test_readfile_in_graph_and_pyfunc_in_library(scan):
    fn = function("__inference_serve_42", node("steal", "ReadFile"), node("cb", "PyFunc", token="pyfunc_0"))
    issues = scan(scan_savedmodel_pb, saved_model(graph([*BENIGN, node("read", "ReadFile")], [fn])))
    by_op = {i.detail["op"]: i for i in issues if i.kind == "savedmodel.dangerous_op"}
    assert by_op["PyFunc"].severity.value == "critical"
    assert by_op["PyFunc"].detail["nodes"] == ["__inference_serve_42/cb"]
    assert by_op["ReadFile"].severity.value == "high"
    assert sorted(by_op["ReadFile"].detail["nodes"]) == ["__inference_serve_42/steal", "graph/read"]


def test_print_to_file_is_high_but_print_to_stderr_is_not(scan):
    nodes = [node("p1", "PrintV2", output_stream="file:///tmp/exfil.txt"),
             node("p2", "PrintV2", output_stream="stderr")]
    issues = scan(scan_savedmodel_pb, saved_model(graph(nodes)))
    assert len(issues) == 1 and issues[0].severity.value == "high"
    assert issues[0].detail["nodes"] == ["graph/p1 -> file:///tmp/exfil.txt"]


def test_frozen_graphdef(scan):
    issues = scan(scan_graphdef_pb, graph([*BENIGN, node("w", "WriteFile")]))
    assert [(i.kind, i.severity.value) for i in issues] == [("savedmodel.dangerous_op", "high")]


@pytest.mark.parametrize(
    "data",
    [b"", b"\x08\x01", b"\x12\xff\xff\xff\xff\x0f", b"\x10\x05", b"\x12\x03\x12\x01", b"not a model at all"],
)
def test_malformed_is_parse_error(scan, data):
    issues = scan(scan_savedmodel_pb, data)
    assert "savedmodel.parse_error" in kinds(issues)


def test_wire_reader_limits():
    with pytest.raises(ParseError, match="varint longer"):
        list(Message.from_bytes(b"\x08" + b"\xff" * 11).fields())
    with pytest.raises(ParseError, match="wire type"):
        list(Message.from_bytes(b"\x0b").fields())  # a start-group tag
    with pytest.raises(ParseError, match="field number"):
        list(Message.from_bytes(b"\x00\x01").fields())
    nested = b"x"
    for _ in range(80):
        nested = ld(1, nested)
    msg = Message.from_bytes(nested)
    with pytest.raises(ParseError, match="nested deeper"):
        while True:
            msg = msg.sub(next(iter(msg.fields())))


def test_wire_reader_reads_scalars_and_skips_payloads():
    data = vi(1, 300) + ld(2, b"abc") + varint(3 << 3 | 5) + (7).to_bytes(4, "little") + vi(4, 2**64 - 1)
    fields = list(Message.from_bytes(data).fields())
    assert [(f.number, f.value) for f in fields] == [(1, 300), (2, 0), (3, 7), (4, 2**64 - 1)]
    assert (fields[1].offset, fields[1].length) == (len(vi(1, 300)) + 2, 3)
