"""ONNX models: custom operator domains and external-data paths, read from the wire format.

An ONNX file is a protobuf ``ModelProto``. Two things in it reach outside the model when a
runtime loads it: nodes in a non-standard operator domain (the runtime must load a native
custom-op library to run them), and tensors whose data lives in an external file named by
a ``location`` the runtime joins to the model's folder (ONNX Runtime and onnx have shipped
path-traversal fixes for exactly this). The walk streams the file: initializer payloads
are skipped by seeking, so multi-gigabyte models cost a few reads.

Field numbers are from onnx/onnx.proto.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ...findings import Severity
from ..base import ScanContext, ScanIssue, Where
from .protobuf import LEN, Field, Message, ParseError, stream_size

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}
# ONNX Runtime's contrib ops: native code, but shipped inside the runtime, not the model.
VENDOR_DOMAINS = {"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
                  "com.microsoft.dml", "org.pytorch.aten"}
_SPECIAL_PREFIXES = ("/dev/", "/proc/", "/sys/", "//", "\\\\")
_WINDOWS_DEVICES = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)
_MAX_LOCATION = 65_536


@dataclass
class _Found:
    ops: Counter[tuple[str, str]] = field(default_factory=Counter)  # (domain, op_type) -> nodes
    functions: set[tuple[str, str]] = field(default_factory=set)  # model-local (domain, name)
    external: Counter[str] = field(default_factory=Counter)  # location -> tensors
    issues: list[tuple[str, Severity, str, str, dict[str, Any]]] = field(default_factory=list)
    has_graph: bool = False


def scan_onnx(stream: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Walk an ONNX ModelProto; report custom op domains and external-data escapes."""
    ctx.formats[str(where)] = "onnx"
    found = _Found()
    try:
        _model(Message(stream, 0, stream_size(stream)), found, ctx)
        if not found.has_graph:
            raise ParseError("no graph field: not an ONNX model")
    except ParseError as e:
        ctx.incomplete("onnx.parse_error", where, f"cannot parse as ONNX ({e})",
                       remediation="A model no parser accepts cannot be reviewed; re-export it.")
    _report(found, ctx, where)


def _model(msg: Message, found: _Found, ctx: ScanContext) -> None:
    for f in msg.fields():
        if f.number == 7:
            found.has_graph = True
            _graph(msg.sub(f), found, ctx)
        elif f.number == 25:  # functions: FunctionProto
            _function(msg.sub(f), found, ctx)
        elif f.number == 20:  # training_info: initialization=1, algorithm=2
            info = msg.sub(f)
            for g in info.fields():
                if g.number in (1, 2):
                    _graph(info.sub(g), found, ctx)


def _graph(msg: Message, found: _Found, ctx: ScanContext) -> None:
    if ctx.out_of_time():
        raise ParseError("time limit reached")
    for f in msg.fields():
        if f.number == 1:
            _node(msg.sub(f), found, ctx)
        elif f.number == 5:
            _tensor(msg.sub(f), found)
        elif f.number == 15:  # sparse_initializer: values=1, indices=2
            _sparse(msg.sub(f), found)


def _function(msg: Message, found: _Found, ctx: ScanContext) -> None:
    name = domain = ""
    for f in msg.fields():
        if f.number == 1:
            name = msg.text(f)
        elif f.number == 10:
            domain = msg.text(f)
        elif f.number == 7:
            _node(msg.sub(f), found, ctx)
        elif f.number == 11:  # attribute_proto defaults may hold graphs and tensors
            _attribute(msg.sub(f), found, ctx)
    found.functions.add((domain, name))


def _node(msg: Message, found: _Found, ctx: ScanContext) -> None:
    op = domain = ""
    for f in msg.fields():
        if f.number == 4:
            op = msg.text(f, 256)
        elif f.number == 7:
            domain = msg.text(f, 256)
        elif f.number == 5:
            _attribute(msg.sub(f), found, ctx)
    found.ops[(domain, op)] += 1


def _attribute(msg: Message, found: _Found, ctx: ScanContext) -> None:
    for f in msg.fields():
        if f.number in (6, 11):  # g, graphs: subgraphs of If / Loop / Scan
            _graph(msg.sub(f), found, ctx)
        elif f.number in (5, 10):  # t, tensors
            _tensor(msg.sub(f), found)
        elif f.number in (22, 23):  # sparse_tensor(s)
            _sparse(msg.sub(f), found)


def _sparse(msg: Message, found: _Found) -> None:
    for f in msg.fields():
        if f.number in (1, 2):
            _tensor(msg.sub(f), found)


def _tensor(msg: Message, found: _Found) -> None:
    name, external, entries = "", False, []
    for f in msg.fields():  # raw_data (9) is never read: the iterator seeks past it
        if f.number == 8:
            name = msg.text(f, 256)
        elif f.number == 14:
            external = f.value == 1
        elif f.number == 13:
            entries.append(_entry(msg, f))
    if not entries:
        if external:
            found.issues.append(("onnx.external_data_invalid", Severity.MEDIUM,
                                 f"tensor {name!r} is marked EXTERNAL but names no location", "", {"tensor": name}))
        return
    info = dict(entries)
    location = info.get("location")
    if location is None:
        found.issues.append(("onnx.external_data_invalid", Severity.MEDIUM,
                             f"tensor {name!r} has external_data without a location", "", {"tensor": name}))
        return
    for key in ("offset", "length"):
        if key in info and not info[key].isdigit():
            found.issues.append(("onnx.external_data_invalid", Severity.MEDIUM,
                                 f"tensor {name!r} has a non-numeric external {key} {info[key][:40]!r}",
                                 "", {"tensor": name}))
    reason = _escape_reason(location)
    if reason:
        found.issues.append(("onnx.external_data_escape", Severity.HIGH,
                             f"tensor {name!r} loads its data from {location[:200]!r}: {reason}",
                             "A runtime that follows this path reads files outside the model's folder "
                             "(and may return their bytes as weights). Do not load the model; external "
                             "data must be a plain relative file beside the model.",
                             {"tensor": name, "location": location[:1000]}))
    found.external[location[:1000]] += 1


def _entry(msg: Message, f: Field) -> tuple[str, str]:
    entry = msg.sub(f)
    key = value = ""
    for g in entry.fields():
        if g.wire_type != LEN:
            continue
        if g.number == 1:
            key = entry.text(g, 256)
        elif g.number == 2:
            if g.length > _MAX_LOCATION:
                raise ParseError(f"external-data value of {g.length} bytes")
            value = entry.read(g, _MAX_LOCATION).decode("utf-8", errors="replace")
    return key, value


def _escape_reason(location: str) -> str:
    if "\x00" in location:
        return "contains a NUL byte (paths are cut there by C runtimes)"
    if location.startswith(_SPECIAL_PREFIXES):
        return "a device, proc or network path"
    path = location.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "an absolute path"
    if path.startswith("~"):
        return "a home-directory path"
    if "://" in path:
        return "a URL, not a path relative to the model"
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        return "climbs out of the model's folder with '..'"
    if _WINDOWS_DEVICES.match(posixpath.basename(normal)):
        return "a Windows device name"
    return ""


def _report(found: _Found, ctx: ScanContext, where: Where) -> None:
    for kind, severity, message, remediation, detail in found.issues:
        ctx.add(ScanIssue(kind=kind, severity=severity, message=message, where=where,
                          remediation=remediation, detail=detail))
    by_domain: dict[str, dict[str, int]] = {}
    for (domain, op), count in found.ops.items():
        if domain in STANDARD_DOMAINS or (domain, op) in found.functions:
            continue  # standard ops, or calls to functions defined (and walked) in the model
        by_domain.setdefault(domain, {})[op] = count
    for domain, ops in sorted(by_domain.items()):
        vendor = domain in VENDOR_DOMAINS
        ctx.add(ScanIssue(
            kind="onnx.vendor_op" if vendor else "onnx.custom_op",
            severity=Severity.INFO if vendor else Severity.MEDIUM, where=where,
            message=(f"{sum(ops.values())} node(s) use operator domain {domain!r} "
                     + ("(runtime contrib ops, built into ONNX Runtime)" if vendor
                        else "— custom ops run native code from a library loaded at runtime")),
            remediation="" if vendor else
            "Only register custom-op libraries you build or trust; the model alone cannot be vetted.",
            detail={"domain": domain, "ops": dict(sorted(ops.items())[:50])}))
    if found.external:
        ctx.add(ScanIssue(
            kind="onnx.external_data", severity=Severity.INFO, where=where,
            message=f"{sum(found.external.values())} tensor(s) load data from {len(found.external)} external file(s)",
            remediation="Scan the external data files too; they load with the model.",
            detail={"locations": sorted(found.external)[:50]}))
