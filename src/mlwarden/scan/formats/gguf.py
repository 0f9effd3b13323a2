"""GGUF (llama.cpp) files: a bounded header walk plus a Jinja2 check of the chat template.

GGUF stores no code, but two things in it are trusted by loaders: the lengths and offsets
of the header (llama.cpp and its bindings have had heap overflows on lying ones), and the
chat template, which servers render with Jinja2 — an unsandboxed render of a hostile
template is server-side template injection, i.e. code execution. Every length is checked
against the file before anything is read; strings we do not need are skipped by seeking.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension

from ...findings import Severity
from ..base import ScanContext, ScanIssue, Where
from .protobuf import stream_size

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_MAX_ARRAY_DEPTH = 8
_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_KEY = 65_535  # the spec caps keys at 2^16 - 1 bytes
_DEFAULT_ALIGNMENT = 32
# ggml type id -> (elements per block, bytes per block), from gguf-py's GGML_QUANT_SIZES.
_GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}  # fmt: skip
_TEMPLATE_FIX = (
    "Do not serve this model. Render chat templates only in a sandbox "
    "(jinja2.sandbox.ImmutableSandboxedEnvironment, as transformers does) and review the "
    "template before use."
)


class _Stop(Exception):
    """Parsing cannot go on; the message says why."""


class _Reader:
    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream, self.size, self.pos, self.order = stream, size, 0, "<"

    def take(self, n: int, what: str) -> bytes:
        if n > self.size - self.pos:
            raise _Stop(f"{what} needs {n} bytes at offset {self.pos}, only {self.size - self.pos} remain")
        self.stream.seek(self.pos)
        self.pos += n
        return self.stream.read(n)

    def skip(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise _Stop(f"{what} needs {n} bytes at offset {self.pos}, only {self.size - self.pos} remain")
        self.pos += n

    def num(self, fmt: str, what: str) -> Any:
        return struct.unpack(self.order + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str, keep: int) -> tuple[int, str | None]:
        """Length and text of a string; the text only when ``length <= keep`` (else skipped)."""
        n = self.num("Q", f"{what} length")
        if n > self.size - self.pos:
            raise _Stop(f"{what} claims {n} bytes at offset {self.pos}, past the end of the file")
        if n > keep:
            self.pos += n
            return n, None
        return n, self.take(n, what).decode("utf-8", errors="replace")


def scan_gguf(stream: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Walk a GGUF v2/v3 header, its tensor table, and check chat templates for SSTI."""
    ctx.formats[str(where)] = "gguf"

    def add(kind: str, severity: Severity, message: str, remediation: str = "", **detail: Any) -> None:
        ctx.add(ScanIssue(kind=f"gguf.{kind}", severity=severity, message=message, where=where,
                          detail=detail, remediation=remediation))

    r = _Reader(stream, stream_size(stream))
    try:
        meta = _header_and_metadata(r, ctx, add)
        _tensor_table(r, meta, ctx, add)
    except _Stop as e:
        ctx.incomplete("gguf.parse_error", where, f"GGUF parse stopped ({e})", offset=r.pos,
                       remediation="The header lies about its own sizes; llama.cpp-based loaders have "
                       "overflowed on such files. Do not load it.")


def _header_and_metadata(r: _Reader, ctx: ScanContext, add: Any) -> dict[str, Any]:
    if r.take(4, "magic") != b"GGUF":
        raise _Stop("no GGUF magic")
    version = r.num("I", "version")
    if version not in (2, 3):
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped not in (2, 3):
            raise _Stop(f"unsupported GGUF version {version} (this scanner reads v2 and v3)")
        r.order, version = ">", swapped
    n_tensors = r.num("Q", "tensor count")
    n_kv = r.num("Q", "metadata count")
    remaining = r.size - r.pos
    # Each entry needs at least a few bytes, so a count the file cannot hold is a lie.
    if n_kv * 13 > remaining or n_tensors * 24 > remaining:
        raise _Stop(f"{n_kv} metadata entries and {n_tensors} tensors cannot fit in {remaining} bytes")
    meta: dict[str, Any] = {"version": version, "n_tensors": n_tensors}
    seen: set[str] = set()
    for _ in range(n_kv):
        if ctx.out_of_time():
            raise _Stop("time limit reached while reading metadata")
        n, key = r.string("key", _MAX_KEY)
        if key is None:
            raise _Stop(f"metadata key of {n} bytes exceeds the {_MAX_KEY}-byte limit")
        if key in seen:
            add("duplicate_key", Severity.MEDIUM, f"metadata key {key!r} appears twice; loaders "
                "disagree on which copy wins", "Re-export the model.", key=key)
        seen.add(key)
        vtype = r.num("I", f"type of {key!r}")
        is_template = key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template.")
        keep = ctx.limits.max_header_bytes if is_template else 1024
        value = _value(r, vtype, key, keep, 0, add, ctx.limits.max_header_bytes)
        if is_template:
            if isinstance(value, str):
                _check_template(key, value, add)
            else:
                add("template_unreadable", Severity.MEDIUM,
                    f"chat template {key!r} is not a readable string under the size limit", _TEMPLATE_FIX)
        elif key in ("general.alignment", "general.architecture", "general.name"):
            meta[key] = value
    return meta


def _value(r: _Reader, vtype: int, key: str, keep: int, depth: int, add: Any, limit: int) -> Any:
    if vtype in _SCALARS:
        return r.num(_SCALARS[vtype], f"value of {key!r}")
    if vtype == _STRING:
        n, text = r.string(f"value of {key!r}", keep)
        if n > limit:
            add("string_too_long", Severity.MEDIUM, f"string in {key!r} is {n} bytes, over the "
                f"{limit}-byte limit; skipped", "Such a string exists to exhaust loader memory.", key=key)
        return text
    if vtype != _ARRAY:
        raise _Stop(f"unknown value type {vtype} for {key!r}")
    if depth >= _MAX_ARRAY_DEPTH:
        raise _Stop(f"arrays nested deeper than {_MAX_ARRAY_DEPTH} in {key!r}")
    etype = r.num("I", f"array type of {key!r}")
    count = r.num("Q", f"array length of {key!r}")
    if etype in _SCALARS:
        r.skip(count * struct.calcsize(_SCALARS[etype]), f"array {key!r}")
        return None
    if count * 8 > r.size - r.pos:
        raise _Stop(f"array {key!r} claims {count} elements, more than the file can hold")
    for _ in range(count):
        _value(r, etype, key, 0, depth + 1, add, limit)
    return None


def _check_template(key: str, source: str, add: Any) -> None:
    try:
        risks = template_risks(source)
    except ValueError as e:
        add("template_unparseable", Severity.MEDIUM, f"chat template {key!r} does not parse as Jinja2: {e}",
            "A template no parser accepts cannot be reviewed; replace it with a known-good one.", key=key)
        return
    if not risks:
        return
    worst = max((sev for sev, _ in risks), key=lambda s: s.rank)
    add("template_injection", worst,
        f"chat template {key!r} reaches outside the template: {risks[0][1]}", _TEMPLATE_FIX,
        key=key, indicators=[reason for _, reason in risks[:20]])


def _tensor_table(r: _Reader, meta: dict[str, Any], ctx: ScanContext, add: Any) -> None:
    alignment = meta.get("general.alignment", _DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        add("alignment_invalid", Severity.MEDIUM, f"general.alignment {alignment!r} is not a power of two",
            "Loaders divide by this value; re-export the model.")
        alignment = _DEFAULT_ALIGNMENT
    tensors: list[tuple[int, int, str]] = []
    names: set[str] = set()
    for _ in range(meta["n_tensors"]):
        if ctx.out_of_time():
            raise _Stop("time limit reached while reading the tensor table")
        _, name = r.string("tensor name", 1024)
        name = name if name is not None else "<overlong name>"
        if name in names:
            add("duplicate_tensor", Severity.MEDIUM, f"tensor {name!r} is listed twice", tensor=name)
        names.add(name)
        n_dims = r.num("I", f"dims of {name!r}")
        if n_dims > 64:
            raise _Stop(f"tensor {name!r} claims {n_dims} dimensions")
        dims = [r.num("Q", f"dims of {name!r}") for _ in range(n_dims)]
        ggml_type = r.num("I", f"type of {name!r}")
        offset = r.num("Q", f"offset of {name!r}")
        nbytes = _tensor_bytes(name, n_dims, dims, ggml_type, add)
        if offset % alignment:
            add("tensor_misaligned", Severity.MEDIUM,
                f"tensor {name!r} offset {offset} is not a multiple of the alignment {alignment}", tensor=name)
        if nbytes is not None:
            tensors.append((offset, offset + nbytes, name))
    data_start = -(-r.pos // alignment) * alignment
    data_size = max(r.size - data_start, 0)
    covered, last = 0, ""
    for begin, end, name in sorted(tensors):
        if end > data_size:
            add("tensor_out_of_range", Severity.HIGH,
                f"tensor {name!r} spans [{begin}, {end}) past the {data_size}-byte data section",
                "Loaders that trust these offsets read outside the file; do not load it.", tensor=name)
        if begin < covered and end > begin:
            add("tensor_overlap", Severity.HIGH, f"tensors {last!r} and {name!r} overlap",
                "Overlapping tensors alias memory; do not load the file.", tensors=[last, name])
        if end > covered:
            covered, last = end, name


def _tensor_bytes(name: str, n_dims: int, dims: list[int], ggml_type: int, add: Any) -> int | None:
    def bad(message: str) -> None:
        add("tensor_invalid", Severity.MEDIUM, f"tensor {name!r}: {message}",
            "llama.cpp rejects such tensors; a loader that does not may misread memory.", tensor=name)

    if n_dims > _MAX_DIMS:
        bad(f"{n_dims} dimensions, ggml supports {_MAX_DIMS}")
        return None
    if ggml_type not in _GGML_TYPES:
        bad(f"unknown ggml type {ggml_type}; its size cannot be checked")
        return None
    elements = 1
    for d in dims:
        elements *= d
    if elements >= 1 << 63:
        bad("element count overflows int64")
        return None
    block, type_size = _GGML_TYPES[ggml_type]
    if dims and dims[0] % block:
        bad(f"first dimension {dims[0]} is not a multiple of the block size {block}")
        return None
    return elements // block * type_size


# Attributes that lead from any object to the interpreter: the classic SSTI chain is
# ''.__class__.__mro__[1].__subclasses__() or cycler.__init__.__globals__.os.popen(...).
_ESCAPE_ATTRS = {"__class__", "__mro__", "__subclasses__", "__globals__", "__builtins__", "__init__",
                 "__import__", "__base__", "__bases__", "__dict__", "__getattribute__", "__code__",
                 "__func__", "__self__", "__reduce__", "__reduce_ex__", "__loader__", "__spec__"}
_RISKY_ATTRS = {"popen", "system", "os", "subprocess", "eval", "exec", "import_module", "spawn",
                "check_output", "getoutput", "builtins", "modules", "globals", "f_globals",
                "gi_frame", "tb_frame", "f_back", "co_code", "mro", "subclasses"}
# Globals that are the usual first step of an escape (Jinja2 built-ins whose __init__ carries
# __globals__, and Flask's context objects). namespace() is left out: real chat templates
# (Llama 3.1, Qwen) use it, and any dunder reached through it is caught anyway.
_RISKY_NAMES = {"cycler", "joiner", "lipsum", "self", "config", "request", "url_for",
                "get_flashed_messages", "session", "g", "os", "subprocess", "popen", "eval", "exec",
                "import", "__import__", "__builtins__", "builtins", "getattr", "globals", "locals",
                "open", "compile"}


class _GenerationTag(Extension):
    """Parses transformers' ``{% generation %}`` block, so real templates using it parse."""

    tags = {"generation"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def template_risks(source: str) -> list[tuple[Severity, str]]:
    """Indicators of template injection in a Jinja2 source, worst first.

    Only parses: Environment.parse builds an AST and compiles and runs nothing. Raises
    ValueError when the source does not parse.
    """
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _GenerationTag])
    try:
        tree = env.parse(source)
    except (jinja2.TemplateSyntaxError, RecursionError) as e:
        raise ValueError(str(e)[:200]) from None
    risks: list[tuple[Severity, str]] = []
    for node in tree.find_all(nodes.Node):
        risks.extend(_node_risks(node))
    unique = list(dict.fromkeys(risks))
    unique.sort(key=lambda r: -r[0].rank)
    return unique


def _node_risks(node: nodes.Node) -> list[tuple[Severity, str]]:
    if isinstance(node, nodes.Getattr):
        return _attr_risk(node.attr, f"attribute .{node.attr}")
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return _attr_risk(node.arg.value, f"item [{node.arg.value!r}]")
    if isinstance(node, nodes.Name) and node.name in _RISKY_NAMES:
        return [(Severity.HIGH, f"uses the global {node.name!r}, a common first step of template escapes")]
    if isinstance(node, (nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
        return [(Severity.HIGH, f"loads another template ({type(node).__name__.lower()})")]
    if isinstance(node, nodes.Filter) and node.name == "attr":
        if node.args and isinstance(node.args[0], nodes.Const) and isinstance(node.args[0].value, str):
            return _attr_risk(node.args[0].value, f"attr({node.args[0].value!r})")
        built = _fold(node.args[0]) if node.args else None
        if built is not None:
            return _attr_risk(built, f"attr() of the built string {built!r}") or [
                (Severity.HIGH, f"attr() of a built string {built!r}")]
        return [(Severity.HIGH, "attr() with a computed attribute name")]
    if isinstance(node, (nodes.Concat, nodes.Add, nodes.Mul, nodes.Filter)):
        built = _fold(node)
        if built is not None and not isinstance(node, nodes.Const) and "__" in built:
            return [(Severity.CRITICAL if _has_escape(built) else Severity.HIGH,
                     f"builds the string {built[:60]!r} at render time")]
    if isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value:
        return [(Severity.CRITICAL if _has_escape(node.value) else Severity.HIGH,
                 f"string constant {node.value[:60]!r} names a dunder")]
    return []


def _attr_risk(name: str, what: str) -> list[tuple[Severity, str]]:
    if name.startswith("__") and name.endswith("__"):
        return [(Severity.CRITICAL, f"{what}: dunder access, the core of Python sandbox escapes")]
    if name.startswith("_"):
        return [(Severity.HIGH, f"{what}: private attribute access")]
    if name in _RISKY_ATTRS:
        return [(Severity.HIGH, f"{what}: reaches an interpreter or OS facility")]
    return []


def _has_escape(text: str) -> bool:
    return any(attr in text for attr in _ESCAPE_ATTRS)


def _fold(node: nodes.Node | None, depth: int = 0) -> str | None:
    """The string a constant expression evaluates to ('_' ~ '_class__', '__'|reverse, …)."""
    if node is None or depth > 50:
        return None
    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, nodes.Concat):
        parts = [_fold(n, depth + 1) for n in node.nodes]
        return None if None in parts else "".join(p for p in parts if p is not None)
    if isinstance(node, nodes.Add):
        left, right = _fold(node.left, depth + 1), _fold(node.right, depth + 1)
        return left + right if left is not None and right is not None else None
    if isinstance(node, nodes.Mul) and isinstance(node.right, nodes.Const) and isinstance(node.right.value, int):
        left = _fold(node.left, depth + 1)
        return left * min(node.right.value, 16) if left is not None else None
    if isinstance(node, nodes.List):
        parts = [_fold(n, depth + 1) for n in node.items]
        return None if None in parts else "".join(p for p in parts if p is not None)
    if isinstance(node, nodes.Filter) and node.name in ("join", "reverse", "lower", "upper", "string", "trim"):
        inner = _fold(node.node, depth + 1)
        if inner is None:
            return None
        return inner[::-1] if node.name == "reverse" else inner if node.name in ("join", "string", "trim") \
            else (inner.lower() if node.name == "lower" else inner.upper())
    return None
