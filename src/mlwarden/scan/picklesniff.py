"""Is this a pickle? Decided by walking it as the unpickler would, not by its first byte.

``pickle.load``, ``joblib.load``, ``numpy.load`` (with ``allow_pickle``) and the legacy
``torch.load`` accept a pickle that opens with *any* opcode — no PROTO, a
SHORT_BINUNICODE, an INT — so a fixed list of first bytes lets payloads through. Instead
:func:`verdict` runs a bounded trial of the stream with the unpickler's own rules: known
opcodes, argument syntax as CPython parses it (``int(x, 0)`` and C ``strtol`` for INT,
quoted STRING, ASCII PERSID, UTF-8 GLOBAL), pops that never cross a MARK, memo reads
of keys that were written, lengths that fit in the file. It answers

* ``YES`` — a loader would get somewhere: a global is imported (or a persistent id or
  extension code resolved) on a valid prefix, or a call ran before the first error, or
  the trial budget ran out without an error, or valid pickles make up the whole stream;
* ``NO`` — the unpickler would fail before doing anything (text, CSV, JSON, images,
  columnar files all fail within a few bytes);
* ``MORE`` — the bytes given end before a decision (only with ``head_only``).

Nothing is unpickled: arguments are checked and dropped, large ones skipped with ``seek``.
"""

from __future__ import annotations

import io
import pickletools
import re
from typing import BinaryIO

YES, NO, MORE = "yes", "no", "more"

_MAX_OPS = 4096  # opcodes tried before a valid run counts as a pickle
_MAX_LINE = 1 << 20  # a text argument this long (an 80 KB dotted name is legal) is not judged further
_BLOCK = 1 << 16
_OPS = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}
_MARK = pickletools.markobject
_IMPORTS = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"})
_CALLS = frozenset({"REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_STRTOL0 = re.compile(rb"\s*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")  # C strtol, base 0
_LENGTH = {-2: (1, False), -3: (4, True), -4: (4, False), -5: (8, False)}  # arg.n -> (bytes, signed)


class _End(Exception):
    """The bytes ran out (``more``: only the given head ended, the stream goes on)."""

    def __init__(self, more: bool) -> None:
        self.more = more


class _Bad(Exception):
    """The unpickler would raise here."""


class _Reader:
    """Buffered forward reader over a seekable stream that skips long arguments by seeking."""

    def __init__(self, stream: BinaryIO, size: int, more_after: bool) -> None:
        self.s, self.size, self.more_after = stream, size, more_after
        self.start = stream.tell()
        self.buf, self.at, self.base = b"", 0, self.start  # buf[0] lies at file offset base
        self.line_bytes = 0

    def _end(self) -> _End:
        return _End(self.more_after)

    def _fill(self, need: int) -> bool:
        while len(self.buf) - self.at < need:
            self.s.seek(self.base + len(self.buf))
            block = self.s.read(max(_BLOCK, need))
            if not block:
                return False
            self.buf, self.base = self.buf[self.at:] + block, self.base + self.at
            self.at = 0
        return True

    def take(self, n: int) -> bytes:
        if not self._fill(n):
            raise self._end()
        out = self.buf[self.at : self.at + n]
        self.at += n
        return out

    def more(self) -> bool:
        """Whether bytes follow; raises ``_End(more=True)`` when only the head ran out."""
        if self._fill(1):
            return True
        if self.more_after:
            raise self._end()
        return False

    def skip(self, n: int) -> None:
        pos = self.base + self.at + n
        if pos > self.size:
            # the argument runs past the end: the unpickler fails on it
            raise self._end() if self.more_after else _Bad("argument longer than the file")
        if self.at + n <= len(self.buf):
            self.at += n
        else:
            self.buf, self.at, self.base = b"", 0, pos

    def line(self) -> bytes | None:
        """One newline-terminated argument without its newline; None when over the budget."""
        scanned = 0
        while True:
            nl = self.buf.find(b"\n", self.at + scanned)
            if nl >= 0:
                out = self.buf[self.at : nl]
                self.at = nl + 1
                self.line_bytes += len(out)
                return out
            scanned = len(self.buf) - self.at
            if scanned > _MAX_LINE:
                return None
            if not self._fill(scanned + 1):
                raise self._end()


def verdict(stream: BinaryIO, *, size: int | None = None, head_only: bool = False) -> str:
    """YES, NO or MORE (see the module docstring) for the pickle stream at ``stream``'s position.

    With ``head_only`` the stream holds only the first bytes of content whose full size is
    ``size``: running out of them before a decision answers MORE.
    """
    here = stream.tell()
    end = stream.seek(0, 2)
    stream.seek(here)
    more_after = head_only and size is not None and size > end
    return _Trial(_Reader(stream, end, more_after)).run()


def head_verdict(head: bytes, size: int | None) -> str:
    """:func:`verdict` of the first bytes of content of ``size`` bytes (None: head is all of it)."""
    return verdict(io.BytesIO(head), size=size, head_only=True)


class _Trial:
    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.ops = 0
        self.imported = self.called = False

    def run(self) -> str:
        complete_ops = 0  # opcodes in the pickles that reached STOP
        try:
            while True:
                complete_ops += self.one_pickle()
                if self.imported or self.ops >= _MAX_OPS:
                    return YES
                if not self.r.more():
                    return YES if complete_ops >= 3 else NO  # "N." opens many a text file
        except _End as e:
            if e.more:
                return MORE
            return YES if self.called else NO
        except _Bad:
            return YES if self.called else NO
        except _Budget:
            return YES

    def one_pickle(self) -> int:
        """Walk one pickle through STOP; returns its opcode count."""
        depth, start = 0, self.ops
        marks: list[int] = []
        memo: set[object] = set()
        while True:
            if self.ops >= _MAX_OPS or self.r.line_bytes > _MAX_LINE:
                raise _Budget
            code = self.r.take(1)[0]
            op = _OPS.get(code)
            if op is None:
                raise _Bad(f"unknown opcode {code:#x}")
            self.ops += 1
            arg = self.argument(op)
            name = op.name
            fence = marks[-1] if marks else 0
            before = op.stack_before
            if name in _PUTS:  # the unpickler memoizes the top of the stack: there must be one
                if depth <= fence:
                    raise _Bad("stack underflow")
                memo.add(len(memo) if name == "MEMOIZE" else arg)
                continue
            if name == "POP":
                if depth > fence:
                    depth -= 1
                elif marks:
                    depth = marks.pop()
                else:
                    raise _Bad("stack underflow")
                continue
            if _MARK in before:
                if not marks:
                    raise _Bad("no MARK")
                if name == "OBJ" and depth - fence < 1:
                    raise _Bad("stack underflow")
                depth = marks.pop()
                fence = marks[-1] if marks else 0
                need = before.index(_MARK)
            else:
                need = len(before)
            if depth - fence < need:
                raise _Bad("stack underflow")
            depth -= need
            if name in _GETS and arg not in memo:
                raise _Bad("memo key never written")
            self.imported |= name in _IMPORTS
            self.called |= self.imported and name in _CALLS
            if name == "STOP":
                return self.ops - start
            if op.stack_after[:1] == [_MARK]:
                marks.append(depth)
            else:
                depth += len(op.stack_after)

    def argument(self, op: pickletools.OpcodeInfo) -> object:
        a = op.arg
        if a is None:
            return None
        if a.n >= 0:
            raw = self.r.take(a.n)
            if op.name == "PROTO" and raw[0] > 5:
                raise _Bad("unsupported protocol")
            return int.from_bytes(raw, "little") if a.n <= 4 else None
        if a.n in _LENGTH:
            width, signed = _LENGTH[a.n]
            n = int.from_bytes(self.r.take(width), "little", signed=signed)
            if n < 0:
                raise _Bad("negative length")
            if op.name.endswith("UNICODE") and n <= _BLOCK:  # short text is checked, long skipped
                try:
                    self.r.take(n).decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    raise _Bad("string is not UTF-8") from None
                return None
            self.r.skip(n)
            return None
        return self.text(op.name)

    def text(self, name: str) -> object:
        line = self.r.line()
        if line is None:
            raise _Budget
        if name in ("GLOBAL", "INST"):
            second = self.r.line()
            if second is None:
                raise _Budget
            for part in (line, second):
                if not part or b"\0" in part:
                    raise _Bad("empty or NUL in a global name")
                try:
                    part.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Bad("global name is not UTF-8") from None
            return None
        if name == "INT":
            if line in (b"00", b"01") or _STRTOL0.fullmatch(line) or _int(line, 0) is not None:
                return None
            raise _Bad("bad INT")
        if name == "LONG":
            if _int(line[:-1] if line.endswith(b"L") else line, 0) is None:
                raise _Bad("bad LONG")
            return None
        if name in ("GET", "PUT"):
            value = _int(line, 10)
            if value is None:
                raise _Bad("bad memo key")
            return value
        if name == "FLOAT":
            try:
                float(line)
            except ValueError:
                raise _Bad("bad FLOAT") from None
            return None
        if name == "STRING":
            if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
                raise _Bad("STRING argument must be quoted")
            return None
        if name == "PERSID" and not line.isascii():
            raise _Bad("persistent id is not ASCII")
        return None  # UNICODE: raw-unicode-escape accepts nearly anything


class _Budget(Exception):
    """The trial ran long without an error: whatever this is, it walks like a pickle."""


def _int(raw: bytes, base: int) -> int | None:
    try:
        return int(raw.decode("ascii").strip(), base)
    except (UnicodeDecodeError, ValueError):
        return None
