"""joblib files: the pickle machine in joblib mode, and what is joblib-specific around it.

joblib writes each ndarray as a ``NumpyArrayWrapper`` and, right after the wrapper's BUILD,
the array's raw bytes (or, for object arrays, a nested pickle) *inside* the opcode stream.
The one pickle machine (:mod:`.pickle_machine`) knows this as its joblib mode: it reads
those bytes exactly as joblib's ``NumpyUnpickler`` does (:mod:`.pickle_arrays`), from
the file position even when the wrapper was built mid-FRAME, and reports crafted layouts
(``joblib.desync``). This module only names the format and keeps :func:`replay`, the
machine's array bookkeeping for one pickle, for callers that need where a pickle ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from .base import Limits, ScanContext, Where
from .pickle_arrays import WRAPPER
from .pickle_machine import Machine, Stop
from .pickle_reader import ByteSource
from .pickle_verdicts import Verdicts


class ReplayError(Exception):
    """The pickle does not read to its STOP the way joblib (or pickle) reads it."""


@dataclass(frozen=True)
class Replay:
    """What one joblib-mode reading found: nested pickles as (start, end), arrays, desyncs."""

    nested: tuple[tuple[int, int], ...]
    arrays: int
    desync: tuple[str, ...] = ()


def replay(stream: BinaryIO, out: None = None, *, max_ops: int, joblib: bool = True) -> Replay:
    """Read one pickle from the stream's position to its STOP and leave the stream there.

    Raises :class:`ReplayError` when it does not parse; findings are not reported (use
    :func:`~.pickle.scan_pickle` for that)."""
    from .policy import Policy

    if out is not None:
        raise ValueError("replay no longer copies opcodes")
    ctx = ScanContext(policy=Policy(), limits=Limits(max_opcodes=max_ops))
    src = ByteSource(stream)
    machine = Machine(src, Verdicts(ctx, Where(path="<replay>")), joblib=joblib)
    try:
        machine.walk()
    except Stop:
        errors = [i.message for i in ctx.issues if i.kind in ("pickle.parse_error", "pickle.limit",
                                                               "pickle.joblib.unresolved")]
        raise ReplayError(errors[0] if errors else "the pickle does not read to its end") from None
    stream.seek(src.pos)
    return Replay(nested=tuple(machine.nested), arrays=machine.arrays, desync=tuple(machine.desync))


def scan_maybe_joblib(stream: BinaryIO, ctx: ScanContext, where: Where,
                      scan_pickle: Callable[..., None]) -> None:
    """Scan a pickle stream, and call it joblib when it carries joblib array wrappers."""
    scan_pickle(stream, ctx, where)
    key = str(where)
    if any(WRAPPER in gs for k, gs in ctx.globals.items() if k == key or k.startswith(key + "!/")):
        ctx.formats[key] = "joblib"
