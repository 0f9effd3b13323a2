"""The pickle scanner's entry points: every global a pickle imports, without unpickling it.

:func:`scan_pickle` runs the one pickle machine (:mod:`.pickle_machine`) over a stream
of one or more concatenated pickles and reports to the :class:`ScanContext`. It reads the
way joblib does — array bytes after a ``NumpyArrayWrapper`` are stepped over — and when a
file holds such wrappers it reads it a second time the way ``pickle.load``, ``torch.load``
and ``numpy.load`` do, where those bytes are opcodes, so a payload hidden in either
reading is found. A pickle that breaks off is reported with everything found before the
break, because the unpickler runs a payload before it reaches a corrupt tail.
"""

from __future__ import annotations

import io
import pickletools
from typing import BinaryIO

from ..findings import Severity
from .base import ScanContext, Where
from .pickle_arrays import WRAPPER
from .pickle_machine import Machine, Stop
from .pickle_reader import ByteSource
from .pickle_verdicts import Verdicts

_P0_STARTS = frozenset(b"(]})cISVNLFKJMXUTGP")
_CALL_OPS = frozenset({"REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})
_PLAIN_NOTE = (" (seen when the file is read by pickle.load, torch.load or numpy.load, which"
               " read joblib's array bytes as opcodes)")


def scan_pickle(stream: BinaryIO, ctx: ScanContext, where: Where, *,
                expect_trailing_data: bool = False) -> None:
    """Report every non-safe global in the pickle(s) of ``stream`` to ``ctx``; never raises."""
    ctx.formats.setdefault(str(where), "pickle")
    src = ByteSource(stream)
    verdicts = Verdicts(ctx, where)
    machine = Machine(src, verdicts, joblib=True)
    _run(machine, lambda: _walk_stream(machine, expect_trailing_data))
    ctx.bytes_inspected += max(0, src.pos - src.start)
    if WRAPPER in verdicts.found and src.seekable:
        stream.seek(src.start)
        plain = Machine(ByteSource(stream), verdicts, joblib=False)
        verdicts.note, verdicts.quiet_errors, verdicts.halted = _PLAIN_NOTE, True, False
        _run(plain, lambda: _walk_stream(plain, True))
        verdicts.note, verdicts.quiet_errors, verdicts.halted = "", False, False


def scan_one_pickle(stream: BinaryIO, ctx: ScanContext, where: Where) -> int | None:
    """Scan exactly one pickle (a plain ``pickle.load``); its end offset, None if it broke off."""
    ctx.formats.setdefault(str(where), "pickle")
    src = ByteSource(stream)
    machine = Machine(src, Verdicts(ctx, where), joblib=False)
    done = _run(machine, machine.walk)
    ctx.bytes_inspected += max(0, src.pos - src.start)
    return src.pos if done else None


def _run(machine: Machine, walk: object) -> bool:
    v = machine.v
    try:
        walk()  # type: ignore[operator]
        return True
    except Stop:
        v.settle_pending()
    except Exception as e:  # noqa: BLE001 — a scanner bug must read as "not vetted", never as clean
        v.settle_pending()
        v.issue("pickle.parse_error", Severity.HIGH,
                f"the pickle scanner failed at byte {machine.src.pos}"
                f" ({type(e).__name__}: {e}); the file was not fully vetted",
                machine.src.pos, error=repr(e))
    return False


def _walk_stream(machine: Machine, expect_trailing_data: bool) -> None:
    src, first = machine.src, True
    while True:
        src.fill(64, True)
        head = src.buf[src.i:src.i + 64]
        if not head:
            if first:
                machine.v.parse_error(0, "empty stream where a pickle was expected")
            return
        if not first and not looks_like_pickle(head, any_start=True):
            if not expect_trailing_data:
                machine.v.issue("pickle.trailing_data", Severity.LOW,
                                f"{len(head)}+ bytes after the last pickle are not a pickle",
                                src.pos)
            return
        first = False
        machine.walk()


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
