"""What the pickle machine reports: every global through the policy, and every call it runs.

One :class:`Verdicts` per scanned stream, shared by every mode of the machine (plain,
joblib, nested object-array pickles, the plain re-read of a joblib file), so all of them
classify globals through the same policy and report each finding once.

* Importing a global is judged by :class:`~.policy.Policy` (dangerous → critical).
* Calling one (REDUCE, INST, OBJ) that is not known to be safe is high
  (``pickle.call.unvetted``), even where importing it alone is medium.
* A *trampoline* — an allowlisted callable that calls one of its arguments
  (``policy.trampolines``) — is admitted only with what it calls: that argument (or the
  named attribute of it) must itself be admitted; a computed object there is high.
* ``getattr`` and ``functools.partial`` are accepted only in their narrow safe uses.
"""

from __future__ import annotations

import _compat_pickle
from dataclasses import dataclass
from typing import Any

from ..findings import Severity
from . import policy as policy_module
from .base import ScanContext, ScanIssue, Where
from .pickle_values import Call, Global, kind

_DEFERRED = frozenset({"builtins.getattr", "functools.partial"})
_RUNS = frozenset({"REDUCE", "INST", "OBJ"})


@dataclass(frozen=True)
class _Ref:
    index: int
    attr: str | None = None


# Used only while policy.trampolines is not available (it is derived from the code).
_FALLBACK = {
    "copyreg._reconstructor": (_Ref(1),),
    "numpy.random._pickle.__generator_ctor": (_Ref(1),),
    "numpy.random._pickle.__randomstate_ctor": (_Ref(1),),
    "numpy.random._pickle.__bit_generator_ctor": (_Ref(0),),
    "pandas.core.indexes.interval._new_IntervalIndex": (_Ref(0, "from_arrays"),),
    "torch._tensor._rebuild_from_type_v2": (_Ref(0),),
}


def trampolines(full: str) -> tuple[Any, ...]:
    fn = getattr(policy_module, "trampolines", None)
    return tuple(fn(full)) if fn is not None else _FALLBACK.get(full, ())


class Verdicts:
    """Reports for one stream; ``note`` is appended to messages of a secondary reading."""

    def __init__(self, ctx: ScanContext, where: Where) -> None:
        self.ctx, self.where = ctx, where
        self.found = ctx.globals.setdefault(str(where), set())
        self.dangerous_seen = False
        self.pending: list[Global] = []
        self.note = ""
        self.quiet_errors = False
        self.halted = False
        self.seen: set[tuple[str, int | None, str | None]] = set()
        self.classify = ctx.policy.classify

    def issue(self, kind_: str, severity: Severity, message: str, offset: int | None,
              **detail: Any) -> None:
        if self.quiet_errors:
            # A secondary reading (pickle.load of a joblib file) stands for a loader that
            # raises at the first memo miss, non-str STACK_GLOBAL operand or call of plain
            # data — which is where ordinary array bytes read as opcodes end. Nothing after
            # that point runs, so nothing after it is reported.
            if self.halted:
                return
            if _loader_raises(kind_, detail):
                self.halted = True
                return
        key = (kind_, offset, detail.get("global"))
        if key in self.seen:
            return
        self.seen.add(key)
        self.ctx.add(ScanIssue(kind=kind_, severity=severity, message=message + self.note,
                               where=self.where, offset=offset, detail=detail))

    def parse_error(self, off: int, why: str, *, stopped: bool = True) -> None:
        if self.quiet_errors:
            return  # the loader this reading stands for stops here: nothing after it runs
        sev = Severity.HIGH if self.dangerous_seen else Severity.MEDIUM
        tail = " Everything before it was scanned; an unpickler runs what came before" \
               " the break." if stopped else ""
        self.issue("pickle.parse_error", sev, f"malformed pickle at byte {off}: {why}.{tail}",
                   off, error=why)

    def import_global(self, module: str, name: str, opcode: str, off: int) -> Global:
        written = f"{module}.{name}"
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        self.found.add(full)
        verdict = self.classify(module, name)
        if full in _DEFERRED and verdict.level == "dangerous":
            g = Global(module, name, pending=(opcode, off, verdict))
            self.pending.append(g)
            return g
        self.report_global(full, written, opcode, off, verdict)
        return Global(module, name)

    def unresolved(self, opcode: str, off: int, why: str, **detail: Any) -> Global:
        if opcode == "STACK_GLOBAL" and "(str, str)" not in why:
            detail["operands_not_str"] = True  # the unpickler raises "STACK_GLOBAL requires str"
        self.issue("pickle.global.unresolved", Severity.HIGH,
                   f"{opcode} {why}; a global that cannot be named is never treated as safe",
                   off, opcode=opcode, **{"global": None}, **detail)
        return Global(None, None)

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

    def call(self, func: Any, args: Any, opcode: str, off: int, kwargs: Any = None) -> Any:
        if isinstance(func, Global) and func.pending:
            return self.deferred_call(func, args, opcode)
        if not isinstance(func, Global):
            # Ordinary pickles only call globals; calling a computed object is how chains
            # like getattr(...)(...) run code, so say so even when each link was flagged.
            self.issue("pickle.call.indirect", Severity.MEDIUM,
                       f"{opcode} calls a computed object ({kind(func)}), not an imported"
                       " global", off, opcode=opcode, callee=kind(func))
        elif func.module is not None:
            self.check_called(func, args, opcode, off)
        return Call(func, args, opcode, kwargs)

    def deferred_call(self, func: Global, args: Any, opcode: str) -> Any:
        """The result of a call to getattr/partial, and whether that use was the safe one."""
        target = args[0] if isinstance(args, tuple) and args else None
        if not isinstance(target, Global) or target.module is None or target.pending:
            self.report_pending(func, f" and calls it on {kind(target)}")
            return Call(func, args, opcode)
        if func.name == "getattr":
            attr = args[1] if len(args) == 2 else None
            if not isinstance(attr, str):
                self.report_pending(func, " with an attribute the scanner cannot name")
                return Call(func, args, opcode)
            dotted = f"{target.name}.{attr}"
            if self.classify(target.module, dotted).level != "safe":
                self.report_pending(func, f" to reach {target.module}.{dotted}")
            else:
                func.safe_uses += 1
            self.found.add(f"{target.module}.{dotted}")
            return Global(target.module, dotted)
        if self.classify(target.module, target.name).level == "safe":
            func.safe_uses += 1
        else:
            self.report_pending(func, f" to wrap {target}")
        return Call(func, args, opcode)

    def check_partial_state(self, obj: Call) -> None:
        # partial's __setstate__ replaces the function: it must be the same kind of safe one.
        if isinstance(obj.func, Global) and obj.func.pending and obj.func.name == "partial":
            st = obj.state
            f = st[0] if isinstance(st, tuple) and st else None
            if not (isinstance(f, Global) and f.module is not None and not f.pending and
                    self.classify(f.module, f.name).level == "safe"):
                self.report_pending(obj.func, f" whose state swaps in {kind(f)}")

    def check_called(self, func: Global, args: Any, opcode: str, off: int) -> None:
        """An unvetted callable that unpickling *runs* is high, even where importing it is medium.

        Rebuilding an object of an unlisted class needs only its import (NEWOBJ, copyreg's
        helpers, BUILD); REDUCE, INST and OBJ run the callable with arguments from the
        file, and so does every trampoline with the argument it calls.
        """
        runs: list[tuple[Any, bool, str]] = \
            [(func, False, f"{opcode} calls {{}}")] if opcode in _RUNS else []
        for ref in trampolines(str(func)):
            found = _called(args, ref)
            if found is not None:
                runs.append((*found, f"{opcode} passes {{}} to {func}, which calls it"))
        for target, via_attr, how in runs:
            self._judge_run(target, via_attr, how, opcode, off)

    def _safe(self, full: str | None) -> bool:
        if not full or "." not in full:
            return False
        module, _, name = full.rpartition(".")
        return self.classify(module, name).level == "safe"

    def _judge_run(self, target: Any, via_attr: bool, how: str, opcode: str, off: int) -> None:
        if isinstance(target, Global) and target.pending:
            return  # settle_pending reports it unless it is used in its narrow safe way
        if isinstance(target, Global) and target.module is not None and target.name is not None:
            verdict = self.classify(target.module, target.name)
            if target.name.startswith("__pyx_unpickle_") or verdict.level == "safe":
                return  # Cython's rebuild helper, or an admitted callable (or its method)
            if verdict.level == "dangerous" or verdict.severity.rank >= Severity.HIGH.rank:
                return  # already reported at high or critical when it was imported
            what, hint = str(target), f"; if you trust it, allow it with --allow {target}"
        elif isinstance(target, Call):
            if via_attr and self._safe(target.cls()):
                return  # a method of an object of an admitted class
            what, hint = f"a computed object ({kind(target)})", ""
        elif isinstance(target, Global):
            what, hint = "an unresolved global", ""
        else:
            return  # plain data or a memo miss: a builtin method, or a call that fails
        self.issue("pickle.call.unvetted", Severity.HIGH,
                   f"{how.format(what)}: unpickling runs it with arguments from the file,"
                   f" and it is not known to be safe{hint}", off, opcode=opcode,
                   **{"global": what})


def _called(args: Any, ref: Any) -> tuple[Any, bool] | None:
    """What a trampoline calls for ``ref`` (``args[i]``, or an attribute of it), symbolically.

    Returns ``(target, via_attr)``: with ``via_attr`` the call is a method of ``target``
    (admitted when ``target``'s class is); None when nothing from the file is called.
    """
    if not isinstance(args, (tuple, list)) or len(args) <= ref.index:
        return None
    target = args[ref.index]
    attr = ref.attr
    if attr is None or attr == "*":
        return target, False
    if isinstance(target, Global):
        if attr == "__new__":
            return None  # constructing a class: its import verdict covers it
        return target, attr != "__init__"
    if isinstance(target, Call):  # a Bunch-like object: its attribute may come from its items
        for source in (target.items, target.state, target.kwargs):
            if isinstance(source, dict) and attr in source:
                return source[attr], False
            if isinstance(source, tuple) and source and isinstance(source[0], dict) \
                    and attr in source[0]:
                return source[0][attr], False
        return target, True
    return None  # a builtin container's own method


def _loader_raises(kind_: str, detail: dict[str, Any]) -> bool:
    """Whether the real unpickler raises where the machine reported ``kind_`` (it reads on)."""
    return (kind_ == "pickle.memo.invalid" or bool(detail.get("operands_not_str"))
            or (kind_ == "pickle.call.indirect" and detail.get("callee") in ("a memo miss", "a data value")))
