"""joblib pickles: a second, exact reading of where joblib's array bytes lie.

joblib writes each ndarray as a ``NumpyArrayWrapper`` pickle object and, right after the
wrapper's BUILD, the array's raw bytes (or, for object arrays, a nested pickle) — *inside*
the opcode stream; its pure-Python unpickler reads them on BUILD and carries on. The pickle
scanner (``scan/pickle.py``) steps over those bytes itself, reading the stream linearly.

Two crafted layouts make a linear reading see different opcodes than joblib runs:

* a wrapper BUILD in the *middle* of a FRAME: joblib's unpickler has buffered the whole
  frame, so it reads the array from *after* the frame and keeps running the opcodes left
  in it — a linear reader skips those opcodes as array bytes;
* a wrapper inside an object array's nested pickle: joblib reads that pickle with a plain
  unpickler, which reads no array bytes, so what a linear reader skips there runs.

This module replays the stream the way ``pickle._Unpickler`` and joblib's
``NumpyUnpickler`` do — symbolically: values are literals, globals and opaque objects,
nothing is imported or called — and reports either layout as ``joblib.desync``. It also
finds where a pickle ends (``replay(..., joblib=False)``), which the legacy PyTorch
scanner uses to cut stacked pickles apart.
"""

from __future__ import annotations

import ast
import pickletools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..findings import Severity
from .base import ScanContext, ScanIssue, Where

WRAPPERS = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)
DTYPE_GLOBALS = frozenset({"numpy", "numpy.core.multiarray", "numpy._core.multiarray"})
MARKER = b"NumpyArrayWrapper"
_MAX_FRAME = 64 << 20  # the pure-Python unpickler holds a whole frame in memory too
_MAX_KEPT = 64  # container items kept per symbolic list/dict/tuple; the rest is opaque
_MAX_VALUE = 1 << 16  # longer strings and bytes are skipped, not kept
_DTYPE_ARG = re.compile(r"^[?bBiufcOMmVSUa]\d{0,4}$")
_OPS = {op.code.encode("latin-1"): op for op in pickletools.opcodes}


class ReplayError(Exception):
    """The replay stopped: the stream is not what joblib would read without error."""


class Opaque:
    """A value the replay does not model (a call result, a big string, an array)."""


@dataclass(frozen=True)
class Global:
    module: str
    name: str


@dataclass(eq=False)
class Obj:
    cls: Any
    args: Any = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    state: Any = None


@dataclass(frozen=True)
class Replay:
    """What the replay found: nested pickles as (start, end) offsets, and the wrappers seen."""

    nested: tuple[tuple[int, int], ...]
    arrays: int
    desync: tuple[str, ...] = ()


class _Reader:
    """Reads opcodes like ``pickle._Unframer``; raw reads bypass the current frame."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.frame = b""
        self.frame_pos = 0

    def read(self, n: int) -> bytes:
        if self.frame_pos < len(self.frame):
            data = self.frame[self.frame_pos : self.frame_pos + n]
            self.frame_pos += len(data)
            if len(data) < n:
                raise ReplayError("pickle exhausted before end of frame")
            return data
        data = self.raw.read(n)
        if len(data) < n:
            raise ReplayError("pickle data was truncated")
        return data

    def readline(self) -> bytes:
        if self.frame_pos < len(self.frame):
            end = self.frame.find(b"\n", self.frame_pos)
            end = len(self.frame) if end < 0 else end + 1
            line = self.frame[self.frame_pos : end]
            self.frame_pos = end
            return line
        line = self.raw.readline(1 << 16)
        if not line.endswith(b"\n"):
            raise ReplayError("pickle text line too long or truncated")
        return line

    def skip(self, n: int, out: BinaryIO | None) -> None:
        """Pass over ``n`` argument bytes, copying them to ``out``, without holding them."""
        while n > 0:
            piece = self.read(min(n, 1 << 20))
            if out is not None:
                out.write(piece)
            n -= len(piece)

    def load_frame(self, size: int) -> None:
        if self.frame_pos < len(self.frame):
            raise ReplayError("beginning of a new frame before end of current frame")
        if size > _MAX_FRAME:
            raise ReplayError(f"pickle frame of {size} bytes is larger than any pickler writes")
        self.frame, self.frame_pos = self.raw.read(size), 0


def replay(stream: BinaryIO, out: BinaryIO | None, *, max_ops: int, joblib: bool = True) -> Replay:
    """Replay one pickle from the stream's position to its STOP; see the module docstring.

    ``out`` receives the opcodes (not the array bytes); ``joblib=False`` replays a plain
    pickle, which only finds where it ends. Raises :class:`ReplayError`.
    """
    rd = _Reader(stream)
    stack: list[Any] = []
    metastack: list[list[Any]] = []
    memo: dict[int, Any] = {}
    nested: list[tuple[int, int]] = []
    desync: list[str] = []
    arrays = 0

    def pop_mark() -> list[Any]:
        nonlocal stack
        if not metastack:
            raise ReplayError("MARK not found")
        items, stack = stack, metastack.pop()
        return items

    def pop() -> Any:
        if not stack:
            raise ReplayError("stack underflow")
        return stack.pop()

    for _ in range(max_ops):
        code = rd.read(1)
        op = _OPS.get(code)
        if op is None:
            raise ReplayError(f"invalid opcode {code!r}")
        if op.name == "FRAME":
            rd.load_frame(struct.unpack("<Q", rd.read(8))[0])
            continue
        if out is not None:
            out.write(code)
        arg = _read_arg(rd, op, out)
        name = op.name
        if name == "STOP":
            return Replay(nested=tuple(nested), arrays=arrays, desync=tuple(desync))
        if name in ("PROTO", "READONLY_BUFFER", "READWRITE_BUFFER"):
            continue
        if name == "MARK":
            metastack.append(stack)
            stack = []
        elif name in _PUSH_ARG:
            stack.append(arg)
        elif name in _PUSH_CONST:
            stack.append(_PUSH_CONST[name]())
        elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
            items = pop_mark()
            stack.append(_container(name, items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise ReplayError("stack underflow")
            items, stack[-n:] = stack[-n:], []
            stack.append(tuple(items))
        elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"):
            items = [pop()] if name == "APPEND" else pop_mark() if name != "SETITEM" else []
            if name == "SETITEM":
                value, key = pop(), pop()
                items = [key, value]
            if not stack:
                raise ReplayError("stack underflow")
            _extend(stack[-1], items, pairs=name.startswith("SETITEM"))
        elif name == "POP":
            if stack:
                stack.pop()
            else:
                pop_mark()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1] if stack else _fail("stack underflow"))
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise ReplayError(f"memo key {arg!r} not found")
            stack.append(memo[arg])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if not stack:
                raise ReplayError("memo write from an empty stack")
            key = len(memo) if name == "MEMOIZE" else arg
            if not isinstance(key, int) or key < 0:
                raise ReplayError("negative memo key")
            memo[key] = stack[-1]
        elif name in ("GLOBAL", "INST"):
            module, _, attr = arg.partition(" ")
            if name == "GLOBAL":
                stack.append(Global(module, attr))
            else:
                stack.append(_construct(Global(module, attr), tuple(pop_mark())))
        elif name == "STACK_GLOBAL":
            attr, module = pop(), pop()
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise ReplayError("STACK_GLOBAL requires str")
            stack.append(Global(module, attr))
        elif name in ("EXT1", "EXT2", "EXT4", "PERSID"):
            stack.append(Opaque())
        elif name == "BINPERSID":
            pop()
            stack.append(Opaque())
        elif name == "REDUCE":
            args = pop()
            if not stack:
                raise ReplayError("stack underflow")
            stack[-1] = _construct(stack[-1], args)
        elif name == "NEWOBJ":
            pop()  # __new__ runs, __init__ does not: no attributes from the arguments
            stack.append(Obj(cls=pop()))
        elif name == "NEWOBJ_EX":
            pop(), pop()
            stack.append(Obj(cls=pop()))
        elif name == "OBJ":
            items = pop_mark()
            if not items:
                raise ReplayError("OBJ without a class")
            stack.append(_construct(items[0], tuple(items[1:])))
        elif name == "BUILD":
            state = pop()
            if not stack:
                raise ReplayError("stack underflow")
            inst = stack[-1]
            _build(inst, state)
            if isinstance(inst, Obj) and _is_wrapper(inst.cls):
                if not joblib:
                    desync.append("array wrapper inside a nested pickle, where joblib reads no array bytes")
                    continue
                arrays += 1
                if rd.frame_pos < len(rd.frame):
                    desync.append("array wrapper built mid-frame: joblib reads its bytes after the frame")
                span = _read_array(inst, stream, max_ops)
                if span is not None:
                    nested.append(span[:2])
                    desync.extend(span[2])
                stack[-1] = Opaque()
        else:  # an opcode pickletools knows and this replay does not: be honest
            raise ReplayError(f"opcode {name} is not modelled")
    raise ReplayError(f"more than {max_ops} opcodes")


def _fail(message: str) -> Any:
    raise ReplayError(message)


def _read_arg(rd: _Reader, op: pickletools.OpcodeInfo, out: BinaryIO | None) -> Any:
    if op.arg is None:
        return None
    kind = op.arg.name
    if kind in _FIXED:
        fmt = _FIXED[kind]
        data = rd.read(struct.calcsize(fmt))
        if out is not None:
            out.write(data)
        return struct.unpack(fmt, data)[0]
    if kind in _SIZED:
        size_fmt, decode = _SIZED[kind]
        head = rd.read(struct.calcsize(size_fmt))
        if out is not None:
            out.write(head)
        (n,) = struct.unpack(size_fmt, head)
        if n < 0:
            raise ReplayError("negative byte count")
        if n > _MAX_VALUE:
            rd.skip(n, out)
            return Opaque()
        data = rd.read(n)
        if out is not None:
            out.write(data)
        try:
            return decode(data)
        except UnicodeDecodeError as exc:
            raise ReplayError(f"bad string argument: {exc}") from None
    line = rd.readline()  # the text opcodes of protocol 0
    if kind == "stringnl_noescape_pair":
        line += rd.readline()
    if out is not None:
        out.write(line)
    return _decode_line(kind, line)


def _decode_line(kind: str, line: bytes) -> Any:
    text = line.decode("latin-1")
    try:
        if kind == "stringnl_noescape_pair":
            module, name = text.split("\n")[:2]
            return f"{module} {name}"
        if kind == "stringnl_noescape":
            return text.rstrip("\n")
        if kind == "decimalnl_short":
            stripped = text.strip()
            if stripped in ("00", "01"):  # protocol 0 spells booleans as INT 00 / 01
                return stripped == "01"
            return int(stripped)
        if kind == "decimalnl_long":
            return int(text.strip().rstrip("L"))
        if kind == "floatnl":
            return float(text)
        if kind == "stringnl":
            value = ast.literal_eval(text.strip())
            return value if isinstance(value, (str, bytes)) else Opaque()
        if kind == "unicodestringnl":
            return line[:-1].decode("raw-unicode-escape")
    except (ValueError, SyntaxError, UnicodeDecodeError) as exc:
        raise ReplayError(f"bad text argument: {exc}") from None
    return Opaque()


def _long(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True)


_FIXED = {"uint1": "<B", "uint2": "<H", "int4": "<i", "uint4": "<I", "uint8": "<Q", "float8": ">d"}
_SIZED = {
    "long1": ("<B", _long),
    "long4": ("<i", _long),
    "string1": ("<B", lambda d: d.decode("latin-1")),
    "string4": ("<i", lambda d: d.decode("latin-1")),
    "bytes1": ("<B", bytes),
    "bytes4": ("<I", bytes),
    "bytes8": ("<Q", bytes),
    "bytearray8": ("<Q", lambda d: Opaque()),
    "unicodestring1": ("<B", lambda d: d.decode("utf-8", "surrogatepass")),
    "unicodestring4": ("<I", lambda d: d.decode("utf-8", "surrogatepass")),
    "unicodestring8": ("<Q", lambda d: d.decode("utf-8", "surrogatepass")),
}
_PUSH_ARG = frozenset(
    "INT BININT BININT1 BININT2 LONG LONG1 LONG4 STRING BINSTRING SHORT_BINSTRING BINBYTES"
    " SHORT_BINBYTES BINBYTES8 BYTEARRAY8 UNICODE SHORT_BINUNICODE BINUNICODE BINUNICODE8"
    " FLOAT BINFLOAT".split()
)
_PUSH_CONST: dict[str, Callable[[], object]] = {
    "NONE": lambda: None,
    "NEWTRUE": lambda: True,
    "NEWFALSE": lambda: False,
    "EMPTY_TUPLE": tuple,
    "EMPTY_LIST": list,
    "EMPTY_DICT": dict,
    "EMPTY_SET": Opaque,
    "NEXT_BUFFER": Opaque,
}


def _container(kind: str, items: list[Any]) -> Any:
    if len(items) > _MAX_KEPT or kind == "FROZENSET":
        return Opaque()
    if kind == "TUPLE":
        return tuple(items)
    if kind == "LIST":
        return list(items)
    out: dict[Any, Any] = {}
    _extend(out, items, pairs=True)
    return out


def _extend(target: Any, items: list[Any], *, pairs: bool) -> None:
    if isinstance(target, list) and not pairs:
        target.extend(items[: max(0, _MAX_KEPT - len(target))])
    elif isinstance(target, dict) and pairs:
        for key, value in zip(items[::2], items[1::2]):
            if len(target) < _MAX_KEPT and isinstance(key, (str, int, bytes, float, bool, type(None))):
                target[key] = value


def _construct(cls: Any, args: Any) -> Obj:
    obj = Obj(cls=cls, args=args)
    if _is_wrapper(cls) and isinstance(args, tuple):  # the constructor's own arguments
        names = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
        obj.attrs.update({"allow_mmap": False, "numpy_array_alignment_bytes": 16})
        obj.attrs.update(dict(zip(names, args)))
    return obj


def _build(inst: Any, state: Any) -> None:
    if not isinstance(inst, Obj):
        return
    if inst.cls == Global("numpy", "dtype") or not isinstance(state, (dict, tuple)):
        inst.state = state
        return
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    for part in (state, slots):
        if isinstance(part, dict):
            inst.attrs.update({k: v for k, v in part.items() if isinstance(k, str)})
        elif part is not None:
            inst.state = part


def _is_wrapper(cls: Any) -> bool:
    return isinstance(cls, Global) and (cls.module, cls.name) in WRAPPERS


def _read_array(wrapper: Obj, stream: BinaryIO, max_ops: int) -> tuple[int, int, tuple[str, ...]] | None:
    """Skip what joblib's ``read_array`` would read; an object array's nested pickle is returned."""
    shape = wrapper.attrs.get("shape")
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ReplayError(f"array wrapper with a shape the scanner cannot resolve: {shape!r}")
    itemsize, hasobject = _dtype_info(wrapper.attrs.get("dtype"))
    if hasobject:
        start = stream.tell()
        inner = replay(stream, None, max_ops=max_ops, joblib=False)
        return start, stream.tell(), inner.desync
    if wrapper.attrs.get("numpy_array_alignment_bytes") is not None:
        pad = stream.read(1)
        if pad:
            stream.seek(pad[0], 1)
    count = 1
    for dim in shape:
        count *= dim
    end = stream.tell() + count * itemsize
    stream.seek(0, 2)
    if end > stream.tell():
        raise ReplayError(f"array data runs past the end of the file ({end} > {stream.tell()})")
    stream.seek(end)
    return None


def _dtype_info(dtype: Any) -> tuple[int, bool]:
    if not (
        isinstance(dtype, Obj)
        and isinstance(dtype.cls, Global)
        and dtype.cls.name == "dtype"
        and dtype.cls.module in DTYPE_GLOBALS
        and isinstance(dtype.args, tuple)
        and dtype.args
        and isinstance(dtype.args[0], str)
        and _DTYPE_ARG.match(dtype.args[0])
    ):
        raise ReplayError("array wrapper with a dtype the scanner cannot resolve")
    import numpy as np  # a dtype from a short type code: no user code can run

    base = np.dtype(dtype.args[0])
    itemsize, hasobject = base.itemsize, base.hasobject
    state = dtype.state
    if isinstance(state, tuple) and len(state) >= 8:
        elsize, flags = state[5], state[7]
        if base.kind in "VSU" and isinstance(elsize, int) and elsize >= 0:
            itemsize = elsize
        if isinstance(flags, int) and bool(flags & 1) != hasobject and base.kind != "V":
            raise ReplayError("array dtype whose object flag contradicts its type code")
        if isinstance(flags, int) and base.kind == "V":
            hasobject = bool(flags & 1)
    return itemsize, hasobject



def scan_maybe_joblib(stream: BinaryIO, ctx: ScanContext, where: Where, scan_pickle: Callable[..., None]) -> None:
    """Scan a pickle stream; when it carries joblib arrays, also check that readers agree.

    The replay runs only when the walker saw a joblib array wrapper imported (a wrapper it
    could not name is already a high ``pickle.global.unresolved``), so a plain pickle with
    a multi-GB blob costs one opcode walk, not a second read of every byte."""
    scan_pickle(stream, ctx, where)
    key = str(where)
    seen = {g for k, gs in ctx.globals.items() if k == key or k.startswith(key + "!/") for g in gs}
    if not any(g.endswith(("NumpyArrayWrapper", "NDArrayWrapper")) for g in seen):
        return
    ctx.formats[key] = "joblib"
    stream.seek(0)
    try:
        found = replay(stream, None, max_ops=ctx.limits.max_opcodes)
    except ReplayError:
        found = None  # the pickle scanner reports the malformed stream itself
    for why in dict.fromkeys(found.desync if found else ()):
        ctx.add(ScanIssue(kind="joblib.desync", severity=Severity.HIGH, where=where,
                          message=f"crafted joblib layout: {why}; joblib.load runs opcodes that a "
                          "linear scan steps over as array data",
                          remediation="Do not load this file; genuine joblib.dump output never has this layout."))
