"""ONNX: real models built with onnx.helper (a test-only tool); the scanner reads bytes only."""

from __future__ import annotations

import io

import pytest

from mlwarden.scan.base import ScanContext, Where
from mlwarden.scan.formats.onnx import scan_onnx

from .conftest import kinds

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper


def graph(nodes, initializers=(), name="g"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    return helper.make_graph(nodes, name, [x], [y], initializer=list(initializers))


def model(nodes, initializers=(), opsets=(("", 17),), functions=()) -> bytes:
    m = helper.make_model(graph(nodes, initializers),
                          opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], functions=list(functions))
    return m.SerializeToString()


def external(name: str, **entries: str) -> TensorProto:
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    for key, value in entries.items():
        e = t.external_data.add()
        e.key, e.value = key, value
    return t


def test_standard_model_is_clean(scan):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    data = model([helper.make_node("Add", ["x", "w"], ["y"])], [w])
    assert scan(scan_onnx, data) == []


def test_custom_domain_is_medium_and_vendor_domain_info(scan):
    nodes = [helper.make_node("EvilOp", ["x"], ["t"], domain="com.evil"),
             helper.make_node("FusedGemm", ["t"], ["y"], domain="com.microsoft")]
    issues = scan(scan_onnx, model(nodes, opsets=(("", 17), ("com.evil", 1), ("com.microsoft", 1))))
    by_kind = {i.kind: i for i in issues}
    assert by_kind["onnx.custom_op"].severity.value == "medium"
    assert by_kind["onnx.custom_op"].detail == {"domain": "com.evil", "ops": {"EvilOp": 1}}
    assert by_kind["onnx.vendor_op"].severity.value == "info"


def test_custom_op_inside_a_subgraph_is_found(scan):
    inner = graph([helper.make_node("Backdoor", ["x"], ["y"], domain="evil.ops")], name="then")
    plain = graph([helper.make_node("Identity", ["x"], ["y"])], name="else")
    node = helper.make_node("If", ["x"], ["y"], then_branch=inner, else_branch=plain)
    issues = scan(scan_onnx, model([node]))
    assert [i.detail["domain"] for i in issues if i.kind == "onnx.custom_op"] == ["evil.ops"]


def test_model_local_function_is_not_a_custom_op(scan):
    fn = helper.make_function("local.fns", "MyRelu", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    data = model([helper.make_node("MyRelu", ["x"], ["y"], domain="local.fns")],
                 opsets=(("", 17), ("local.fns", 1)), functions=[fn])
    assert scan(scan_onnx, data) == []


@pytest.mark.parametrize(
    "location",
    ["/etc/passwd", "../../etc/passwd", "weights/../../secret.bin", "C:\\Windows\\win.ini",
     "\\\\server\\share\\w.bin", "/dev/zero", "http://evil.example/w.bin",
     "~/.ssh/id_rsa", "weights.bin\x00.txt", "nul"],
)
def test_external_data_escape_is_high(scan, location):
    issues = scan(scan_onnx, model([helper.make_node("Add", ["x", "w"], ["y"])], [external("w", location=location)]))
    escape = [i for i in issues if i.kind == "onnx.external_data_escape"]
    assert len(escape) == 1 and escape[0].severity.value == "high"
    assert escape[0].detail["tensor"] == "w"


def test_plain_external_data_is_info(scan):
    ini = [external("w", location="weights/model.data", offset="0", length="16")]
    issues = scan(scan_onnx, model([helper.make_node("Add", ["x", "w"], ["y"])], ini))
    assert [(i.kind, i.severity.value) for i in issues] == [("onnx.external_data", "info")]
    assert issues[0].detail["locations"] == ["weights/model.data"]


def test_external_data_without_location_or_with_bad_offset(scan):
    ini = [external("a"), external("b", location="b.bin", offset="-1")]
    issues = scan(scan_onnx, model([helper.make_node("Add", ["x", "a"], ["y"])], ini))
    assert sum(i.kind == "onnx.external_data_invalid" for i in issues) == 2


class CountingBytesIO(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, n: int | None = -1) -> bytes:
        out = super().read(n)
        self.read_bytes += len(out)
        return out


def test_large_initializer_is_skipped_not_read():
    big = TensorProto(name="big", data_type=TensorProto.UINT8, dims=[8 << 20], raw_data=bytes(8 << 20))
    stream = CountingBytesIO(model([helper.make_node("Add", ["x", "big"], ["y"])], [big]))
    ctx = ScanContext(policy=None)
    scan_onnx(stream, ctx, Where(path="big.onnx"))
    assert ctx.issues == []
    assert stream.read_bytes < 4096


@pytest.mark.parametrize(
    "data",
    [b"", b"\x0a\xff\xff\xff\xff\x0f", b"\x3a\x05abc", b"\xff" * 20, b"hello world, not a model",
     b"\x08\x07"],  # the last one is a valid ModelProto prefix with no graph
)
def test_malformed_protobuf_is_a_parse_error(scan, data):
    issues = scan(scan_onnx, data)
    assert "onnx.parse_error" in kinds(issues)
    assert all(i.severity.rank >= 2 for i in issues if i.kind == "onnx.parse_error")


def test_deeply_nested_subgraphs_stop_at_the_depth_limit(scan):
    leaf = graph([helper.make_node("Identity", ["x"], ["y"])])
    g = leaf
    for _ in range(25):  # each level nests graph -> node -> attribute -> graph
        g = graph([helper.make_node("If", ["x"], ["y"], then_branch=g, else_branch=leaf)])
    data = helper.make_model(g).SerializeToString()
    assert "onnx.parse_error" in kinds(scan(scan_onnx, data))
