"""The one pickle machine: a frame-aware opcode walk over a symbolic stack and memo.

Every pickle mlwarden scans goes through :class:`Machine` — plain pickles, joblib files,
object-array pickles nested in joblib files, legacy PyTorch stacks, numpy object arrays,
torch zip members (persistent ids are opaque values) and protocol-5 out-of-band buffers.
Modes change only what a loader reads between opcodes: in ``joblib`` mode the BUILD of a
``NumpyArrayWrapper`` is followed by the array bytes (:mod:`.pickle_arrays` says how
many), read from the *file* position as joblib's pure-Python unpickler does, even when the
wrapper was built inside a FRAME; in plain mode nothing is.

The loop is written for speed: it dispatches on the opcode byte, handles the frequent
data opcodes inline over a buffer window, and leaves everything else to :meth:`_op`,
which reads arguments with full bounds checks. Data values are one sentinel and the memo
keeps only what verdicts need (:mod:`.pickle_values`), so memory stays flat. ``setup.py``
compiles this very file with Cython (:mod:`.compiled`): the ``@cython.locals`` line gives
the loop's counters C types and is a no-op in Python, so there is one source either way.
"""

from __future__ import annotations

import copyreg
import pickletools
from typing import Any

from . import pickle_arrays as arrays
from .pickle_reader import (
    _I4,
    NAME_CAP,
    ByteSource,
    ParseError,
    Truncated,
    check_float_line,
    parse_int_line,
    parse_long_line,
    parse_name_line,
    parse_string_line,
    parse_unicode_line,
    u8,
)
from .pickle_values import DATA, MISS, Call, Global, Memo, build, extend, keep, kind
from .pickle_verdicts import Verdicts

try:  # Cython compiles this very file (see .compiled); its declarations are no-ops in Python
    import cython
except ImportError:
    from .compiled import cython_shim as cython  # type: ignore[no-redef]

_OPS = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}
_STR_CAP = 16 << 20  # binary strings longer than this are skipped (a name that long is high)
_LONG_STR = "<string longer than 16 MiB>"
_CONST = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


class Stop(Exception):
    """Ends the walk of this stream (the reason is already an issue)."""


class Machine:
    def __init__(self, src: ByteSource, verdicts: Verdicts, *, joblib: bool) -> None:
        self.src, self.v, self.joblib = src, verdicts, joblib
        self.ctx = verdicts.ctx
        self.opcodes = 0
        self.arrays = 0  # wrappers whose array bytes were read (joblib mode)
        self.nested: list[tuple[int, int]] = []  # object-array pickles: (start, end)
        self.desync: list[str] = []
        self.frame_end: int | None = None
        self.depth = 0  # > 0 while walking an object array's nested pickle
        self.op_off: int | None = None  # the opcode the careful path is reading
        self.broken: str | None = None

    def desynced(self, why: str, off: int) -> None:
        self.desync.append(why)
        self.v.issue("joblib.desync", _HIGH, f"crafted joblib layout: {why}; joblib.load runs"
                     " opcodes that a linear reading steps over as array data", off)

    def limit(self, off: int, memo: Memo, stack: list[Any]) -> None:
        lim = self.ctx.limits
        if self.opcodes > lim.max_opcodes or len(memo.vals) > lim.max_memo or \
                len(stack) > lim.max_stack or self.ctx.out_of_time():
            self.v.issue("pickle.limit", _HIGH,
                         "scan limit reached (opcodes, memo, stack or time); the rest of"
                         " the pickle was not scanned, so it cannot be called safe", off,
                         opcodes=self.opcodes, memo=len(memo), stack=len(stack))
            raise Stop

    @cython.locals(buf=bytes, i=cython.Py_ssize_t, n=cython.Py_ssize_t, j=cython.Py_ssize_t,
                   k=cython.Py_ssize_t, op=cython.int, ops=cython.Py_ssize_t, vals=dict, extra=set)
    def walk(self) -> None:
        """Walk one pickle, from its first opcode through STOP; raises Stop to end the stream."""
        src = self.src
        stack: list[Any] = []
        marks: list[list[Any]] = []
        memo = Memo()
        self.broken = None
        self.frame_end = None
        self.op_off = None
        buf, i = src.buf, src.i
        n = len(buf)
        vals = memo.vals
        extra = memo.extra  # the same set for the memo's lifetime (only ever mutated)
        ops = 0
        keep_ = keep
        try:
            while True:
                if n - i < 10:
                    src.i = i
                    src.fill(10, True)
                    buf, i = src.buf, src.i
                    n = len(buf)
                    self.opcodes += ops
                    ops = 0
                    self.limit(src.base + i, memo, stack)
                    if n - i < 10:  # near the end (or a frame's end): the careful path
                        if i >= n:
                            raise Truncated("stream ends before the pickle's STOP opcode")
                        src.i = i + 1
                        ops += 1
                        stack = self._op(buf[i], src.base + i, stack, marks, memo)
                        if stack is None:
                            return
                        buf, i = src.buf, src.i
                        n = len(buf)
                        continue
                op = buf[i]
                ops += 1
                if op == 0x94:  # MEMOIZE
                    if not stack or extra:
                        src.i = i + 1
                        stack = self._op(op, src.base + i, stack, marks, memo)
                        buf, i = src.buf, src.i
                        n = len(buf)
                        continue
                    top = stack[-1]
                    if top is not DATA and keep_(top):
                        vals[memo.dense] = top
                    memo.dense += 1
                    i += 1
                elif op == 0x8C:  # SHORT_BINUNICODE
                    j = i + 2 + buf[i + 1]
                    if j > n:
                        src.i = i + 1
                        stack = self._op(op, src.base + i, stack, marks, memo)
                        buf, i = src.buf, src.i
                        n = len(buf)
                        continue
                    if j > i + 2 and 0x30 <= buf[i + 2] <= 0x39:
                        stack.append(DATA)  # starts with a digit: never a module or attribute name
                    else:
                        stack.append(buf[i + 2:j].decode("utf-8", "surrogatepass"))
                    i = j
                elif op == 0x47:  # BINFLOAT
                    stack.append(DATA)
                    i += 9
                elif op == 0x4A:  # BININT
                    stack.append(_I4(buf, i + 1)[0])
                    i += 5
                elif op == 0x87 or op == 0x86 or op == 0x85:  # TUPLE3/2/1
                    k = op - 0x84
                    if len(stack) < k:
                        src.i = i + 1
                        stack = self._op(op, src.base + i, stack, marks, memo)
                        buf, i = src.buf, src.i
                        n = len(buf)
                        continue
                    if k == 3:  # pops and an in-place store: no slice or list allocations
                        c = stack.pop()
                        b = stack.pop()
                        stack[-1] = (stack[-1], b, c)
                    elif k == 2:
                        b = stack.pop()
                        stack[-1] = (stack[-1], b)
                    else:
                        stack[-1] = (stack[-1],)
                    i += 1
                elif op == 0x4D:  # BININT2
                    stack.append(buf[i + 1] | buf[i + 2] << 8)
                    i += 3
                elif op == 0x4B:  # BININT1
                    stack.append(buf[i + 1])
                    i += 2
                elif op == 0x71:  # BINPUT
                    if not stack:
                        src.i = i + 1
                        stack = self._op(op, src.base + i, stack, marks, memo)
                        buf, i = src.buf, src.i
                        n = len(buf)
                        continue
                    memo.put(buf[i + 1], stack[-1])
                    i += 2
                elif op == 0x68:  # BINGET
                    got = memo.get(buf[i + 1])
                    if got is MISS:
                        src.i = i + 1
                        stack = self._op(op, src.base + i, stack, marks, memo)
                        buf, i = src.buf, src.i
                        n = len(buf)
                        continue
                    stack.append(got.copy_ref() if type(got) is Global else got)
                    i += 2
                elif op == 0x28:  # MARK
                    marks.append(stack)
                    stack = []
                    i += 1
                elif op == 0x65 and marks and marks[-1]:  # APPENDS
                    items = stack
                    stack = marks.pop()
                    if type(stack[-1]) is not type(DATA):
                        extend(stack[-1], items, False)
                    i += 1
                elif op == 0x75 and marks and marks[-1]:  # SETITEMS
                    items = stack
                    stack = marks.pop()
                    if type(stack[-1]) is not type(DATA):
                        extend(stack[-1], items, True)
                    i += 1
                elif op == 0x4E:  # NONE
                    stack.append(None)
                    i += 1
                elif op == 0x88 or op == 0x89:  # NEWTRUE / NEWFALSE
                    stack.append(op == 0x88)
                    i += 1
                elif op == 0x29:  # EMPTY_TUPLE
                    stack.append(())
                    i += 1
                elif op == 0x5D:  # EMPTY_LIST
                    stack.append([])
                    i += 1
                elif op == 0x7D:  # EMPTY_DICT
                    stack.append({})
                    i += 1
                elif op == 0x95:  # FRAME
                    self.frame_end = src.base + i + 9 + u8(buf, i + 1)
                    i += 9
                elif op == 0x43:  # SHORT_BINBYTES
                    j = i + 2 + buf[i + 1]
                    if j > n:
                        src.i = i + 1
                        stack = self._op(op, src.base + i, stack, marks, memo)
                        buf, i = src.buf, src.i
                        n = len(buf)
                        continue
                    stack.append(DATA)
                    i = j
                else:
                    src.i = i + 1
                    stack = self._op(op, src.base + i, stack, marks, memo)
                    if stack is None:
                        return
                    buf, i = src.buf, src.i
                    n = len(buf)
        except (Truncated, ParseError, UnicodeDecodeError) as e:
            at = self.op_off if self.op_off is not None else src.base + i
            self.v.parse_error(at, str(e))
            raise Stop from None
        finally:
            self.opcodes += ops

    def _op(self, code: int, off: int, stack: list[Any], marks: list[list[Any]],
            memo: Memo) -> list[Any] | None:
        """One opcode, fully checked; returns the stack (None after STOP)."""
        v, src = self.v, self.src
        self.op_off = off
        op = _OPS.get(code)
        if op is None:
            raise ParseError(f"unknown opcode 0x{code:02x}")
        name = op.name
        arg = self._arg(op)

        def pop() -> Any:
            if stack:
                return stack.pop()
            if self.broken is None:
                self.broken = "stack underflow"
            return DATA

        def pop_mark() -> list[Any]:
            nonlocal stack
            if not marks:
                if self.broken is None:
                    self.broken = "MARK expected but missing"
                items, stack[:] = list(stack), []
                return items
            items, stack = stack, marks.pop()
            return items

        push = stack.append
        if name == "STOP":
            v.settle_pending()
            if self.broken:
                v.parse_error(off, self.broken, stopped=False)
            return None
        if name == "PROTO":
            if arg > 5:
                raise ParseError(f"unsupported pickle protocol {arg}")
        elif name == "FRAME":
            self.frame_end = src.pos + arg
        elif name in ("READONLY_BUFFER", "READWRITE_BUFFER"):
            pass
        elif name == "MARK":
            marks.append(stack)
            stack = []
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE"):
            push({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_TUPLE": ()}[name])
        elif name in _CONST:
            push(_CONST[name])
        elif name in ("EMPTY_SET", "NEXT_BUFFER", "PERSID"):
            push(DATA)
        elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"):
            items = [pop()] if name == "APPEND" else \
                [pop(), pop()][::-1] if name == "SETITEM" else pop_mark()
            target = stack[-1] if stack else pop()
            extend(target, items, name.startswith("SETITEM"))
        elif name in ("LIST", "TUPLE", "DICT", "FROZENSET"):
            items = pop_mark()
            stack.append(build(name, items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            k = int(name[-1])
            stack.append(tuple(reversed([pop() for _ in range(k)])))
        elif name == "POP":
            if stack:
                stack.pop()
            else:
                pop_mark()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            top = stack[-1] if stack else pop()
            push(top.copy_ref() if type(top) is Global else top)
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            got = memo.get(arg) if type(arg) is int else MISS
            if got is MISS:
                v.issue("pickle.memo.invalid", _MEDIUM,
                        f"{name} of memo key {arg!r}, which was never stored: the pickle is"
                        " malformed or confuses scanners on purpose", off, opcode=name,
                        key=repr(arg))
            push(got.copy_ref() if type(got) is Global else got)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            key = len(memo) if name == "MEMOIZE" else arg
            if type(key) is not int or key < 0:
                v.issue("pickle.memo.invalid", _MEDIUM, f"{name} with invalid memo key {key!r}",
                        off, opcode=name, key=repr(key))
            else:
                memo.put(key, stack[-1] if stack else pop())
        elif name == "GLOBAL":
            push(self._line_global(arg, name, off))
        elif name == "INST":
            g = self._line_global(arg, name, off)
            items = pop_mark()
            self._called(v.call(g, tuple(items), name, off), stack)
        elif name == "STACK_GLOBAL":
            gname, gmod = pop(), pop()
            if type(gmod) is str and type(gname) is str and _LONG_STR not in (gmod, gname):
                push(v.import_global(gmod, gname, name, off))
            else:
                push(v.unresolved(name, off, f"with operands the scanner cannot name"
                                  f" ({kind(gmod)}, {kind(gname)})"))
        elif name in ("EXT1", "EXT2", "EXT4"):
            key = copyreg._inverted_registry.get(arg)  # type: ignore[attr-defined]
            if key is None:
                push(v.unresolved(name, off, f"extension code {arg} is not registered here;"
                                  " the loading process may map it to any global", ext_code=arg))
            else:
                push(v.import_global(key[0], key[1], name, off))
        elif name in ("REDUCE", "NEWOBJ"):
            args = pop()
            self._called(v.call(pop(), args, name, off), stack)
        elif name == "NEWOBJ_EX":
            kwargs, args = pop(), pop()
            self._called(v.call(pop(), args, name, off, kwargs), stack)
        elif name == "OBJ":
            items = pop_mark()
            self._called(v.call(items[0] if items else DATA, tuple(items[1:]), name, off), stack)
        elif name == "BUILD":
            state = pop()
            target = stack[-1] if stack else pop()
            if isinstance(target, Call):
                self._build(target, state, off, stack)
        elif name == "BINPERSID":
            pop()
            push(DATA)
        else:  # the remaining opcodes push their argument
            push(arg)
        self.op_off = None
        return stack

    def _called(self, result: Any, stack: list[Any]) -> None:
        if isinstance(result, Call):
            arrays.on_call(result)
        stack.append(result)

    def _build(self, target: Call, state: Any, off: int, stack: list[Any]) -> None:
        if target.attrs is None:
            target.state = state
            self.v.check_partial_state(target)
            return
        arrays.on_build(target, state)
        if self.depth and self.joblib:
            self.desynced("an array wrapper inside an object array's nested pickle, where"
                          " joblib reads no array bytes", off)
        if self.joblib and not self.depth:
            self._read_array(target, off)
            stack[-1] = DATA

    def _read_array(self, wrapper: Call, off: int) -> None:
        """Step over what joblib's ``read_array`` reads after this wrapper's BUILD."""
        src = self.src
        try:
            nbytes, hasobject, pad = arrays.layout(wrapper)
        except arrays.Unresolved as e:
            self.v.issue("pickle.joblib.unresolved", _HIGH,
                         f"a joblib NumpyArrayWrapper whose array size the scanner cannot work"
                         f" out ({e}); the bytes joblib reads after it cannot be located, so the"
                         " rest of the file was not scanned", off)
            raise Stop from None
        self.arrays += 1
        resume = src.pos
        mid_frame = self.frame_end is not None and resume < self.frame_end
        if mid_frame:
            self.desynced("an array wrapper built mid-frame: joblib reads its bytes after the"
                          " frame", off)
            raw_at = src.cut[1] if src.cut else self.frame_end
            src.cut = None
            src.seek(raw_at)
        try:
            if hasobject:
                start, outer_frame, broken = src.pos, self.frame_end, self.broken
                self.depth += 1
                try:
                    self.walk()
                finally:
                    self.depth -= 1
                    self.broken = broken
                if self.frame_end is not None and src.pos < self.frame_end:
                    self.desynced("an object array's nested pickle that stops inside its own"
                                  " frame; joblib resumes after the frame", src.pos)
                    src.seek(self.frame_end)
                self.nested.append((start, src.pos))
                self.frame_end = outer_frame
            else:
                if pad:
                    src.skip(src.read(1, "joblib alignment byte")[0], "joblib alignment padding")
                src.skip(nbytes, "joblib array data")
        except Truncated as e:
            self.v.parse_error(src.pos, f"joblib array data: {e}")
            raise Stop from None
        if mid_frame:
            raw = src.pos
            src.seek(resume)
            src.cut = (self.frame_end, raw)

    def _line_global(self, arg: tuple[bytes | None, bytes | None], opcode: str, off: int) -> Global:
        mod, name = arg
        if mod is None or name is None:
            return self.v.unresolved(opcode, off, f"names a global longer than {NAME_CAP} bytes")
        return self.v.import_global(parse_name_line(mod, f"{opcode} module"),
                                    parse_name_line(name, f"{opcode} name"), opcode, off)

    def _arg(self, op: pickletools.OpcodeInfo) -> Any:
        a = op.arg
        if a is None:
            return None
        src = self.src
        if a.n > 0:
            raw = src.read(a.n, f"{op.name} argument")
            if a.name == "float8":
                return DATA
            return int.from_bytes(raw, "little", signed=a.name == "int4")
        if a.n == -1:
            return self._line_arg(op.name, a.name)
        size = {-2: 1, -3: 4, -4: 4, -5: 8}[a.n]
        ln = int.from_bytes(src.read(size, f"{op.name} length"), "little",
                            signed=a.n == -3)
        if ln < 0:
            raise ParseError(f"{op.name} with negative length {ln}")
        text = a.name.startswith(("unicodestring", "string"))
        if not text or a.name.startswith("long"):
            if a.name.startswith("long"):
                raw = src.read(ln, f"{op.name} payload") if ln <= 4096 else None
                if raw is None:
                    src.skip(ln, f"{op.name} payload")
                    return DATA
                return int.from_bytes(raw, "little", signed=True)
            src.skip(ln, f"{op.name} payload")
            return DATA
        if ln > _STR_CAP:
            src.skip(ln, f"{op.name} payload")
            return _LONG_STR
        raw = src.read(ln, f"{op.name} payload")
        if a.name.startswith("unicodestring"):
            return raw.decode("utf-8", "surrogatepass")
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return DATA  # a py2 str only loaders with encoding='latin1'/'bytes' accept

    def _line_arg(self, opname: str, kind_: str) -> Any:
        src = self.src
        if kind_ == "stringnl_noescape_pair":
            return src.readline(NAME_CAP), src.readline(NAME_CAP)
        line = src.readline(_STR_CAP)
        if line is None:
            return DATA if kind_ in ("stringnl", "unicodestringnl", "floatnl") else _LONG_STR
        if kind_ == "decimalnl_short":
            return parse_int_line(line)
        if kind_ == "decimalnl_long":
            return parse_long_line(line)
        if kind_ == "floatnl":
            check_float_line(line)
            return DATA
        if kind_ == "stringnl":
            return parse_string_line(line)
        if kind_ == "unicodestringnl":
            return parse_unicode_line(line)
        try:  # PERSID: the persistent id is ASCII text
            line.decode("ascii")
        except UnicodeDecodeError:
            raise ParseError("PERSID argument is not ASCII") from None
        return DATA


from ..findings import Severity

_HIGH, _MEDIUM = Severity.HIGH, Severity.MEDIUM
