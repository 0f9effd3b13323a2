"""A streaming pickle opcode walker: every global a pickle imports, without unpickling it.

The walker keeps a symbolic stack and memo so that globals assembled indirectly
(STACK_GLOBAL operands fetched from the memo, INST, OBJ, EXT codes, NEWOBJ_EX, BUILD) are
still named, then asks the policy about each. It never calls ``pickle.load`` and never
holds a large payload: byte strings beyond a small cap are skipped with ``seek`` (or read
and discarded in chunks), so a multi-GB tensor blob costs no memory.

It also knows the two places where real model files put raw bytes between opcodes:
joblib writes array data right after the BUILD of a ``NumpyArrayWrapper`` (and a nested
pickle for object arrays), and legacy PyTorch files stack several pickles and then raw
storage bytes. A pickle that breaks off is reported with everything found before the
break, because the unpickler runs a payload before it reaches a corrupt tail.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import io
import pickletools
from typing import Any, BinaryIO

from ..findings import Severity
from .base import ScanContext, ScanIssue, Where
from .pickle_reader import Opaque, PickleReader, Truncated

_OPS = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}
_MAX_ITEMS = 256  # symbolic containers keep this many items; the rest is never needed
_P0_STARTS = frozenset(b"(]})cISVNLFKJMXUTGP")
_JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_DEFERRED = frozenset({"builtins.getattr", "functools.partial"})
_CALL_OPS = frozenset({"REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})
# Allowlisted helpers that call one of their arguments: helper -> index of that argument.
# Genuine pickles pass a builtin base, or numpy's own constructor, there.
_CALLS_ITS_ARG = {
    "copyreg._reconstructor": 1,  # base.__init__(obj, state) unless base is object
    "numpy.random._pickle.__generator_ctor": 1,  # bit_generator_ctor(bit_generator_name)
    "numpy.random._pickle.__randomstate_ctor": 1,
}


class Global:
    """A global the pickle imported: ``module.name``, or unresolved (``module`` is None).

    ``pending`` is set for resolvers that are harmless in one narrow use (``getattr`` of a
    listed class attribute, ``functools.partial`` of a safe function, both seen in
    ordinary pandas and scikit-learn pickles): every copy of such a global put on the
    stack must be consumed by a call of that shape, or it is reported after all.
    """

    __slots__ = ("module", "name", "pending", "pushes", "safe_uses", "reported")

    def __init__(self, module: str | None, name: str | None, pending: Any = None) -> None:
        self.module, self.name, self.pending = module, name, pending
        self.pushes, self.safe_uses, self.reported = 1, 0, False

    def __str__(self) -> str:
        return f"{self.module}.{self.name}" if self.module is not None else "<unresolved>"


class Call:
    """The result of calling ``func(*args)`` (REDUCE, NEWOBJ, OBJ, INST); BUILD adds state."""

    __slots__ = ("func", "args", "state")

    def __init__(self, func: Any, args: Any) -> None:
        self.func, self.args, self.state = func, args, None

    def cls(self) -> str | None:
        """The class this call constructs, seen through copyreg's reconstruction helpers."""
        func, args = self.func, self.args
        if isinstance(func, Global) and str(func) in ("copyreg._reconstructor",
                                                      "copyreg.__newobj__"):
            func = args[0] if isinstance(args, tuple) and args else None
        return str(func) if isinstance(func, Global) and func.module is not None else None


class _Stop(Exception):
    """Ends the walk of this stream (the reason is already an issue)."""


class _Walker:
    def __init__(self, reader: PickleReader, ctx: ScanContext, where: Where) -> None:
        self.r, self.ctx, self.where = reader, ctx, where
        self.found = ctx.globals.setdefault(str(where), set())
        self.dangerous_seen = False
        self.opcodes = 0
        self.pending: list[Global] = []

    def issue(self, kind: str, severity: Severity, message: str, offset: int | None,
              **detail: Any) -> None:
        self.ctx.add(ScanIssue(kind=kind, severity=severity, message=message,
                               where=self.where, offset=offset, detail=detail))

    def walk_stream(self, expect_trailing_data: bool) -> None:
        first = True
        while True:
            head = self.r.peek(64)
            if not head:
                if first:
                    self.issue("pickle.parse_error", Severity.MEDIUM,
                               "empty stream where a pickle was expected", 0)
                return
            if not first and not looks_like_pickle(head, any_start=True):
                if not expect_trailing_data:
                    self.issue("pickle.trailing_data", Severity.LOW,
                               f"{len(head)}+ bytes after the last pickle are not a pickle",
                               self.r.pos)
                return
            first = False
            self.walk_pickle()

    def walk_pickle(self) -> None:
        """Walk one pickle, from its first opcode through STOP; raises _Stop to end the stream."""
        stack: list[Any] = []
        marks: list[list[Any]] = []
        memo: dict[int, Any] = {}
        broken: list[str] = []  # the first structural error, reported once
        lim = self.ctx.limits

        def pop() -> Any:
            if stack:
                return stack.pop()
            if not broken:
                broken.append("stack underflow")
            return Opaque()

        def pop_mark() -> list[Any]:
            nonlocal stack
            if not marks:
                if not broken:
                    broken.append("MARK expected but missing")
                items, stack[:] = list(stack), []
                return items
            items, restored = stack, marks.pop()
            stack = restored
            return items

        while True:
            off = self.r.pos
            self.opcodes += 1
            if self.opcodes > lim.max_opcodes or len(memo) > lim.max_memo or \
                    len(stack) + len(marks) > lim.max_stack or \
                    (self.opcodes & 0xFFF == 0 and self.ctx.out_of_time()):
                self.issue("pickle.limit", Severity.HIGH,
                           "scan limit reached (opcodes, memo, stack or time); the rest of"
                           " the pickle was not scanned, so it cannot be called safe", off,
                           opcodes=self.opcodes, memo=len(memo), stack=len(stack))
                raise _Stop
            try:
                code = self.r.read_exact(1)[0]
                op = _OPS.get(code)
                if op is None:
                    raise ValueError(f"unknown opcode 0x{code:02x}")
                arg = self.r.read_arg(op)
            except (Truncated, ValueError, UnicodeDecodeError, OSError) as e:
                self.parse_error(off, f"{type(e).__name__ if isinstance(e, OSError) else ''}"
                                      f"{e}".strip())
                raise _Stop from None
            name = op.name
            if name == "STOP":
                self.settle_pending()
                if broken:
                    self.parse_error(off, broken[0], stopped=False)
                return
            if name == "PROTO":
                if arg > 5:
                    self.parse_error(off, f"unsupported pickle protocol {arg}")
                    raise _Stop
            elif name == "FRAME" or name == "READONLY_BUFFER":
                pass
            elif name == "MARK":
                marks.append(stack)
                stack = []
            elif name in ("EMPTY_LIST",):
                stack.append([])
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("EMPTY_SET", "NEXT_BUFFER", "PERSID"):
                stack.append(Opaque())
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"):
                items = [pop()] if name == "APPEND" else \
                    [pop(), pop()][::-1] if name == "SETITEM" else pop_mark()
                target = stack[-1] if stack else pop()
                _extend(target, items)
            elif name in ("LIST", "TUPLE", "DICT", "FROZENSET"):
                items = pop_mark()
                stack.append(_build(name, items))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                stack.append(tuple(reversed([pop() for _ in range(n)])))
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(_copy(stack[-1] if stack else pop()))
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if isinstance(arg, int) and arg in memo:
                    stack.append(_copy(memo[arg]))
                else:
                    self.issue("pickle.memo.invalid", Severity.MEDIUM,
                               f"{name} of memo key {arg!r}, which was never stored: the"
                               " pickle is malformed or confuses scanners on purpose", off,
                               opcode=name, key=repr(arg))
                    stack.append(Opaque())
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                key = len(memo) if name == "MEMOIZE" else arg
                if not isinstance(key, int) or key < 0:
                    self.issue("pickle.memo.invalid", Severity.MEDIUM,
                               f"{name} with invalid memo key {key!r}", off, opcode=name,
                               key=repr(key))
                else:
                    memo[key] = stack[-1] if stack else pop()
            elif name in ("GLOBAL", "INST"):
                g = self.import_global(arg[0], arg[1], name, off)
                if name == "INST":
                    stack.append(self.call(g, tuple(pop_mark()), name, off))
                else:
                    stack.append(g)
            elif name == "STACK_GLOBAL":
                gname, gmod = pop(), pop()
                if isinstance(gmod, str) and isinstance(gname, str):
                    stack.append(self.import_global(gmod, gname, name, off))
                else:
                    self.issue("pickle.global.unresolved", Severity.HIGH,
                               f"STACK_GLOBAL with operands the scanner cannot name"
                               f" ({_kind(gmod)}, {_kind(gname)}); a global that cannot be"
                               " named is never treated as safe", off, opcode=name,
                               **{"global": None})
                    stack.append(Global(None, None))
            elif name in ("EXT1", "EXT2", "EXT4"):
                key = copyreg._inverted_registry.get(arg)  # type: ignore[attr-defined]
                if key is None:
                    self.issue("pickle.global.unresolved", Severity.HIGH,
                               f"{name} extension code {arg} is not registered here; the"
                               " loading process may map it to any global", off,
                               opcode=name, ext_code=arg, **{"global": None})
                    stack.append(Global(None, None))
                else:
                    stack.append(self.import_global(key[0], key[1], name, off))
            elif name == "REDUCE":
                args = pop()
                stack.append(self.call(pop(), args, name, off))
            elif name == "NEWOBJ":
                args = pop()
                stack.append(self.call(pop(), args, name, off))
            elif name == "NEWOBJ_EX":
                pop()  # kwargs
                args = pop()
                stack.append(self.call(pop(), args, name, off))
            elif name == "OBJ":
                items = pop_mark()
                func = items[0] if items else Opaque()
                stack.append(self.call(func, tuple(items[1:]), name, off))
            elif name == "BUILD":
                state = pop()
                target = stack[-1] if stack else pop()
                if isinstance(target, Call):
                    target.state = state
                    self.check_partial_state(target, off)
                    if target.cls() == _JOBLIB_WRAPPER:
                        self.skip_joblib_array(target, off)
            elif name == "BINPERSID":
                pop()
                stack.append(Opaque())
            else:  # every remaining opcode pushes its argument
                stack.append(arg)

    def import_global(self, module: str, name: str, opcode: str, off: int) -> Global:
        written = f"{module}.{name}"
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        self.found.add(full)
        verdict = self.ctx.policy.classify(module, name)
        if full in _DEFERRED and verdict.level == "dangerous":
            g = Global(module, name, pending=(opcode, off, verdict))
            self.pending.append(g)
            return g
        self.report_global(full, written, opcode, off, verdict)
        return Global(module, name)

    def report_global(self, full: str, written: str, opcode: str, off: int,
                      verdict: Any, why: str = "") -> None:
        if verdict.level != "safe":
            self.dangerous_seen |= verdict.level == "dangerous"
            alias = f" (written as {written})" if written != full else ""
            self.issue(f"pickle.global.{verdict.level}", verdict.severity,
                       f"{opcode} imports {full}{alias}{why}: {verdict.reason}", off,
                       opcode=opcode, reason=verdict.reason, **{"global": full})

    def report_pending(self, g: Global, why: str) -> None:
        if not g.reported:
            g.reported = True
            opcode, off, verdict = g.pending
            self.report_global(str(g), str(g), opcode, off, verdict, why)

    def settle_pending(self) -> None:
        """At the end of a pickle: a deferred global with a copy not safely used is reported."""
        for g in self.pending:
            if g.safe_uses < g.pushes:
                self.report_pending(g, " (not only in the narrow use mlwarden accepts)")
        self.pending.clear()

    def deferred_call(self, func: Global, args: Any, off: int) -> Any:
        """The result of a call to getattr/partial, and whether that use was the safe one."""
        target = args[0] if isinstance(args, tuple) and args else None
        if not isinstance(target, Global) or target.module is None or target.pending:
            self.report_pending(func, f" and calls it on {_kind(target)}")
            return Call(func, args)
        if func.name == "getattr":
            attr = args[1] if len(args) == 2 else None
            if not isinstance(attr, str):
                self.report_pending(func, " with an attribute the scanner cannot name")
                return Call(func, args)
            dotted = f"{target.name}.{attr}"
            verdict = self.ctx.policy.classify(target.module, dotted)
            if verdict.level != "safe":
                self.report_pending(func, f" to reach {target.module}.{dotted}")
            else:
                func.safe_uses += 1
            self.found.add(f"{target.module}.{dotted}")
            return Global(target.module, dotted)
        if self.ctx.policy.classify(target.module, target.name).level == "safe":
            func.safe_uses += 1
        else:
            self.report_pending(func, f" to wrap {target}")
        return Call(func, args)

    def check_partial_state(self, obj: Call, off: int) -> None:
        # partial's __setstate__ replaces the function: it must be the same kind of safe one.
        if isinstance(obj.func, Global) and obj.func.pending and obj.func.name == "partial":
            st = obj.state
            f = st[0] if isinstance(st, tuple) and st else None
            if not (isinstance(f, Global) and f.module is not None and not f.pending and
                    self.ctx.policy.classify(f.module, f.name).level == "safe"):
                self.report_pending(obj.func, f" whose state swaps in {_kind(f)}")

    def call(self, func: Any, args: Any, opcode: str, off: int) -> Any:
        if isinstance(func, Global) and func.pending:
            return self.deferred_call(func, args, off)
        if not isinstance(func, Global):
            # Ordinary pickles only call globals; calling a computed object is how chains
            # like getattr(...)(...) run code, so say so even when each link was flagged.
            self.issue("pickle.call.indirect", Severity.MEDIUM,
                       f"{opcode} calls a computed object ({_kind(func)}), not an imported"
                       " global", off, opcode=opcode)
        elif func.module is not None:
            self.check_called(func, args, opcode, off)
        return Call(func, args)

    def check_called(self, func: Global, args: Any, opcode: str, off: int) -> None:
        """An unvetted callable that unpickling *runs* is high, even where importing it is medium.

        Rebuilding an object of an unlisted class needs only its import (NEWOBJ, copyreg's
        helpers, BUILD); REDUCE, INST and OBJ run the callable with arguments from the
        file, and that is how third-party resolvers and eval-like helpers are abused.
        """
        runs = [(func, f"{opcode} calls {{}}")] if opcode in ("REDUCE", "INST", "OBJ") else []
        idx = _CALLS_ITS_ARG.get(str(func))
        if idx is not None and isinstance(args, tuple) and len(args) > idx:
            runs.append((args[idx], f"{opcode} passes {{}} to {func}, which calls it"))
        for target, how in runs:
            if isinstance(target, Global) and target.pending:
                continue  # settle_pending reports it unless it is used in its narrow safe way
            if isinstance(target, Global) and target.module is not None and target.name is not None:
                if target.name.startswith("__pyx_unpickle_"):
                    continue  # Cython's rebuild helper: Class.__new__(type) and set state, no more
                verdict = self.ctx.policy.classify(target.module, target.name)
                if verdict.level != "unknown" or verdict.severity.rank >= Severity.HIGH.rank:
                    continue  # safe, or already reported at high or critical
                what, hint = str(target), f"; if you trust it, allow it with --allow {target}"
            else:
                what, hint = f"a computed object ({_kind(target)})", ""
            self.issue("pickle.call.unvetted", Severity.HIGH,
                       f"{how.format(what)}: unpickling runs it with arguments from the file,"
                       f" and it is not known to be safe{hint}", off, opcode=opcode,
                       **{"global": what})

    def parse_error(self, off: int, why: str, *, stopped: bool = True) -> None:
        sev = Severity.HIGH if self.dangerous_seen else Severity.MEDIUM
        tail = " Everything before it was scanned; an unpickler runs what came before" \
               " the break." if stopped else ""
        self.issue("pickle.parse_error", sev, f"malformed pickle at byte {off}: {why}.{tail}",
                   off, error=why)

    def skip_joblib_array(self, wrapper: Call, off: int) -> None:
        """Step over the raw array bytes (or nested pickle) joblib writes after the wrapper."""
        layout = _joblib_layout(wrapper.state)
        if layout is None:
            self.issue("pickle.joblib.unresolved", Severity.HIGH,
                       "a joblib NumpyArrayWrapper whose shape or dtype the scanner cannot"
                       " work out; the array bytes that follow cannot be skipped, so the rest"
                       " of the file was not scanned", off)
            raise _Stop
        nbytes, has_object, aligned = layout
        try:
            if has_object:
                self.walk_pickle()
                return
            if aligned:
                self.r.skip(self.r.read_exact(1)[0])
            self.r.skip(nbytes)
        except Truncated as e:
            self.parse_error(self.r.pos, f"joblib array data: {e}")
            raise _Stop from None


def _copy(v: Any) -> Any:
    """Note another stack copy of a deferred global (see :class:`Global`)."""
    if isinstance(v, Global) and v.pending:
        v.pushes += 1
    return v


def _kind(v: Any) -> str:
    return "a memo miss" if isinstance(v, Opaque) else type(v).__name__


def _extend(target: Any, items: list[Any]) -> None:
    if isinstance(target, list):
        target.extend(items[: max(0, _MAX_ITEMS - len(target))])
    elif isinstance(target, dict):
        for k, v in zip(items[::2], items[1::2]):
            if len(target) < _MAX_ITEMS and isinstance(k, (str, int, bytes)):
                target[k] = v


def _build(name: str, items: list[Any]) -> Any:
    if name == "LIST":
        return items[:_MAX_ITEMS]
    if name == "TUPLE":
        return tuple(items) if len(items) <= _MAX_ITEMS else Opaque()
    if name == "DICT":
        d: dict[Any, Any] = {}
        _extend(d, items)
        return d
    return Opaque()


def _joblib_layout(state: Any) -> tuple[int, bool, bool] | None:
    """(array bytes, holds Python objects, has alignment padding) from a wrapper's state."""
    if not isinstance(state, dict):
        return None
    shape, dtype = state.get("shape"), state.get("dtype")
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        return None
    if not isinstance(dtype, Call) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    aligned = state.get("numpy_array_alignment_bytes") is not None
    if dtype.cls() == "numpy._core._internal._convert_to_stringdtype_kwargs":
        return 0, True, aligned  # StringDType arrays are written as a nested pickle
    code, dstate = dtype.args[0], dtype.state
    if dtype.cls() != "numpy.dtype" or not isinstance(code, str) or not code:
        return None
    flags = dstate[7] if isinstance(dstate, tuple) and len(dstate) > 7 else 0
    if code.startswith("O") or (isinstance(flags, int) and flags & 1):
        return 0, True, aligned
    elsize = dstate[5] if isinstance(dstate, tuple) and len(dstate) > 5 else -1
    digits = code.lstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ?")
    if not (isinstance(elsize, int) and elsize > 0):
        if not digits.isdigit():
            return None
        elsize = int(digits)
    count = 1
    for n in shape:
        count *= n
    return count * elsize, False, aligned


def looks_like_pickle(head: bytes, *, any_start: bool = False) -> bool:
    """Whether ``head`` (the first bytes of some content) plausibly starts a pickle.

    Every PROTO-headed start (0x80 + protocol 0–5) counts. Protocol 0/1 starts must begin
    with a typical first opcode (any opcode with ``any_start``: after a pickle's STOP the
    next one may open with FRAME or anything else) and then decode as a stack-consistent
    run of opcodes to the end of ``head`` (or to STOP), which keeps text files from passing
    as pickles. A run that breaks off after it imported a global and made a call still
    counts: the unpickler makes the call before it reaches the corrupt tail.
    """
    if not head:
        return False
    if head[0] == 0x80:
        return len(head) < 2 or head[1] <= 5
    if not any_start and head[0] not in _P0_STARTS:
        return False
    f = io.BytesIO(head)
    marks: list[int] = []
    depth, n, imported, called = 0, 0, False, False
    try:
        for op, _arg, _pos in pickletools.genops(f):
            n += 1
            before, after = op.stack_before, op.stack_after
            if pickletools.markobject in before:
                if not marks:
                    return called
                depth = marks.pop() - before.index(pickletools.markobject)
            else:
                depth -= len(before)
            if depth < 0:
                return called
            if after[:1] == [pickletools.markobject]:
                marks.append(depth)
            else:
                depth += len(after)
            imported |= op.name in ("GLOBAL", "STACK_GLOBAL", "INST")
            called |= imported and op.name in _CALL_OPS
            if op.name == "STOP":
                return n >= 2
    except ValueError:
        # The head ends mid-opcode: fine if what came before was plausible; an error well
        # before the end is not a pickle unless a call already ran.
        return (f.tell() >= len(head) - 1 and n >= 2) or called
    return n >= 2


def scan_pickle(stream: BinaryIO, ctx: ScanContext, where: Where, *,
                expect_trailing_data: bool = False) -> None:
    """Report every non-safe global in the pickle(s) of ``stream`` to ``ctx``; never raises."""
    walker = _Walker(PickleReader(stream), ctx, where)
    ctx.formats.setdefault(str(where), "pickle")
    try:
        walker.walk_stream(expect_trailing_data)
    except _Stop:
        walker.settle_pending()
    except Exception as e:  # a scanner bug must read as "not vetted", never as clean
        walker.settle_pending()
        walker.issue("pickle.parse_error", Severity.HIGH,
                     f"the pickle scanner failed at byte {walker.r.pos}"
                     f" ({type(e).__name__}: {e}); the file was not fully vetted",
                     walker.r.pos, error=repr(e))
    finally:
        ctx.bytes_inspected += walker.r.pos - walker.r.start
