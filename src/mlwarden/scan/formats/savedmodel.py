"""TensorFlow SavedModel (``saved_model.pb``) and frozen GraphDef: ops that leave the graph.

A SavedModel is a graph, not code — except for the ops that call back into Python
(``PyFunc``) or touch the file system. Loading and serving a model runs its ops, so a
``ReadFile`` in a serving function reads the server's files, a ``WriteFile`` plants one,
and ``ImmutableConst`` maps an arbitrary path into memory.

Checkpoint ops (``SaveV2``, ``RestoreV2``, ``MergeV2Checkpoints`` …) are in every
SavedModel: the saver graph TensorFlow writes itself restores ``variables/`` through them,
with the path fed in at load time. They are reported once, as info, not as a threat; the
same goes for ``InitializeTableFromTextFile``, which reads vocabulary files from
``assets/``.

Field numbers are from tensorflow/core/protobuf/saved_model.proto, meta_graph.proto and
tensorflow/core/framework/{graph,node_def,function,attr_value}.proto.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ...findings import Severity
from ..base import ScanContext, ScanIssue, Where
from .protobuf import LEN, Message, ParseError, stream_size

_PYTHON = "Runs a Python function from the loading process: code execution by design."
_FILE = "Reads or writes files on the machine that loads or serves the model."
DANGEROUS_OPS: dict[str, tuple[Severity, str]] = {
    "PyFunc": (Severity.CRITICAL, _PYTHON),
    "PyFuncStateless": (Severity.CRITICAL, _PYTHON),
    "EagerPyFunc": (Severity.CRITICAL, _PYTHON),
    "ReadFile": (Severity.HIGH, _FILE),
    "WriteFile": (Severity.HIGH, _FILE),
    "MatchingFiles": (Severity.HIGH, "Lists files on the serving machine (reconnaissance)."),
    "ImmutableConst": (Severity.HIGH, "Memory-maps a file named in the graph into a tensor."),
    "WholeFileReader": (Severity.MEDIUM, _FILE),
    "WholeFileReaderV2": (Severity.MEDIUM, _FILE),
    "TextLineReader": (Severity.MEDIUM, _FILE),
    "TextLineReaderV2": (Severity.MEDIUM, _FILE),
    "FixedLengthRecordReader": (Severity.MEDIUM, _FILE),
    "FixedLengthRecordReaderV2": (Severity.MEDIUM, _FILE),
    "TFRecordReader": (Severity.MEDIUM, _FILE),
    "TFRecordReaderV2": (Severity.MEDIUM, _FILE),
    "TextLineDataset": (Severity.MEDIUM, _FILE),
    "TFRecordDataset": (Severity.MEDIUM, _FILE),
    "TFRecordDatasetV2": (Severity.MEDIUM, _FILE),
    "FixedLengthRecordDataset": (Severity.MEDIUM, _FILE),
    "FixedLengthRecordDatasetV2": (Severity.MEDIUM, _FILE),
    "SaveDataset": (Severity.MEDIUM, _FILE),
    "SaveDatasetV2": (Severity.MEDIUM, _FILE),
    "LoadDataset": (Severity.MEDIUM, _FILE),
    "CreateSummaryFileWriter": (Severity.MEDIUM, _FILE),
    "DebugIdentity": (Severity.MEDIUM, "Streams tensors to the debug_urls (file:// or grpc://)."),
    "DebugIdentityV2": (Severity.MEDIUM, "Streams tensors to debug URLs (file:// or grpc://)."),
    "DebugNanCount": (Severity.MEDIUM, "Streams tensors to the debug_urls (file:// or grpc://)."),
    "DebugNumericSummary": (Severity.MEDIUM, "Streams tensors to the debug_urls (file:// or grpc://)."),
}
EXPECTED_FILE_OPS = {"SaveV2", "RestoreV2", "MergeV2Checkpoints", "Save", "SaveSlices", "Restore",
                     "RestoreSlice", "ShardedFilename", "ShardedFilespec",
                     "InitializeTableFromTextFile", "InitializeTableFromTextFileV2"}
_REMEDIATION = ("Do not load or serve this model. Inspect the op with `saved_model_cli show --all`, "
                "rebuild the model from trusted code, and keep only its weights.")


@dataclass
class _Found:
    hits: dict[str, list[str]] = field(default_factory=dict)  # op -> "function/node" places
    expected: dict[str, int] = field(default_factory=dict)
    print_to_file: list[str] = field(default_factory=list)
    graphs: int = 0


def scan_savedmodel_pb(stream: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Walk saved_model.pb (SavedModel → MetaGraphDef → GraphDef and its function library)."""
    ctx.formats[str(where)] = "savedmodel"
    _scan(stream, ctx, where, _saved_model)


def scan_graphdef_pb(stream: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Walk a frozen GraphDef .pb (a bare GraphDef, no SavedModel wrapper)."""
    ctx.formats[str(where)] = "tf-graphdef"
    _scan(stream, ctx, where, _graph)


def _scan(stream: BinaryIO, ctx: ScanContext, where: Where, walk: Any) -> None:
    found = _Found()
    try:
        walk(Message(stream, 0, stream_size(stream)), found, ctx, "graph")
        if not found.graphs:
            raise ParseError("no graph found")
    except ParseError as e:
        ctx.incomplete("savedmodel.parse_error", where, f"cannot parse as a TensorFlow graph ({e})",
                       remediation="A model no parser accepts cannot be reviewed; re-export it.")
    _report(found, ctx, where)


def _saved_model(msg: Message, found: _Found, ctx: ScanContext, place: str) -> None:
    for f in msg.fields():
        if f.number == 2:  # meta_graphs
            meta = msg.sub(f)
            for g in meta.fields():
                if g.number == 2:  # graph_def
                    _graph(meta.sub(g), found, ctx, place)


def _graph(msg: Message, found: _Found, ctx: ScanContext, place: str) -> None:
    found.graphs += 1
    for f in msg.fields():
        if ctx.out_of_time():
            raise ParseError("time limit reached")
        if f.number == 1:  # node
            _node(msg.sub(f), found, place)
        elif f.number == 2:  # library: FunctionDefLibrary.function = 1
            library = msg.sub(f)
            for g in library.fields():
                if g.number == 1:
                    _function(library.sub(g), found)


def _function(msg: Message, found: _Found) -> None:
    name, nodes = "function", []
    for f in msg.fields():
        if f.number == 1:  # signature: OpDef.name = 1
            signature = msg.sub(f)
            for g in signature.fields():
                if g.number == 1 and g.wire_type == LEN:
                    name = signature.text(g, 256)
        elif f.number == 3:  # node_def
            nodes.append(msg.sub(f))
    for node in nodes:  # after the loop: the signature may come after the nodes
        _node(node, found, name)


def _node(msg: Message, found: _Found, place: str) -> None:
    name = op = ""
    attrs = []
    for f in msg.fields():
        if f.number == 1:
            name = msg.text(f, 256)
        elif f.number == 2:
            op = msg.text(f, 256)
        elif f.number == 5:
            attrs.append(msg.sub(f))  # read only if the op needs it; Const values can be huge
    where = f"{place}/{name}"
    if op in DANGEROUS_OPS:
        found.hits.setdefault(op, []).append(where)
    elif op in EXPECTED_FILE_OPS:
        found.expected[op] = found.expected.get(op, 0) + 1
    elif op == "PrintV2":
        for entry in attrs:
            key, value = _attr_string(entry)
            if key == "output_stream" and value.startswith("file://"):
                found.print_to_file.append(f"{where} -> {value[:200]}")


def _attr_string(entry: Message) -> tuple[str, str]:
    """Key and string value (AttrValue.s = 2) of one NodeDef.attr map entry."""
    key = value = ""
    for f in entry.fields():
        if f.number == 1:
            key = entry.text(f, 256)
        elif f.number == 2:
            attr = entry.sub(f)
            for g in attr.fields():
                if g.number == 2 and g.wire_type == LEN:
                    value = attr.text(g, 4096)
    return key, value


def _report(found: _Found, ctx: ScanContext, where: Where) -> None:
    for op, places in sorted(found.hits.items()):
        severity, why = DANGEROUS_OPS[op]
        ctx.add(ScanIssue(kind="savedmodel.dangerous_op", severity=severity, where=where,
                          message=f"{len(places)} {op} op(s): {why}", remediation=_REMEDIATION,
                          detail={"op": op, "nodes": places[:20]}))
    if found.print_to_file:
        ctx.add(ScanIssue(kind="savedmodel.dangerous_op", severity=Severity.HIGH, where=where,
                          message=f"{len(found.print_to_file)} PrintV2 op(s) write to a file",
                          remediation=_REMEDIATION, detail={"op": "PrintV2", "nodes": found.print_to_file[:20]}))
    if found.expected:
        ctx.add(ScanIssue(kind="savedmodel.checkpoint_ops", severity=Severity.INFO, where=where,
                          message="checkpoint and asset file ops present (expected in every SavedModel)",
                          detail={"ops": dict(sorted(found.expected.items()))}))
