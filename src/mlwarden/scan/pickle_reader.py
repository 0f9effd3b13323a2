"""The pickle machine's byte source and its text-argument parsers.

:class:`ByteSource` hands the machine a window of bytes (``buf`` from index ``i``) and
refills it in chunks, so a file of any size costs one chunk of memory; payloads are
stepped over with ``seek`` (or read and dropped when the stream cannot seek). It can also
*jump*: joblib's pure-Python unpickler holds a whole FRAME in memory while raw array reads
go to the file after it, so when an array is read mid-frame the source is cut at the
frame's end and continues wherever the raw reads left the file.

The text opcodes of protocol 0 are parsed the way CPython parses them (``_pickle.c``
``load_int``/``load_long``/``load_float``/``load_string``; ``pickle.py`` for the pure
unpickler joblib uses): where the two disagree the machine accepts what either accepts.
"""

from __future__ import annotations

import codecs
import os
import struct
from typing import BinaryIO


class Truncated(Exception):
    """The stream ended inside an opcode or payload (or a frame ended inside one)."""


class ParseError(ValueError):
    """An argument no unpickler accepts; the message says which and why."""


_CHUNK = 256 << 10
NAME_CAP = 64 << 20  # a GLOBAL/INST line longer than this is reported, never held whole
_I4 = struct.Struct("<i").unpack_from
_U4 = struct.Struct("<I").unpack_from
_U8 = struct.Struct("<Q").unpack_from


class ByteSource:
    """Buffered reads over a binary stream; see the module docstring."""

    __slots__ = ("base", "buf", "cut", "eof", "i", "s", "seekable", "start")

    def __init__(self, stream: BinaryIO) -> None:
        self.s = stream
        self.buf, self.i, self.eof = b"", 0, False
        try:
            self.start = stream.tell()
        except (OSError, AttributeError, ValueError):
            self.start = 0
        self.base = self.start
        try:
            self.seekable = bool(stream.seekable())
        except (OSError, AttributeError, ValueError):
            self.seekable = False
        self.cut: tuple[int, int] | None = None  # (frame end, where the file really is)

    @property
    def pos(self) -> int:
        return self.base + self.i

    def fill(self, need: int, boundary: bool = False) -> None:
        """Make ``need`` bytes available from ``i`` if the stream has them.

        At a cut (a frame whose end is not where the file is) the buffer never grows past
        the frame's end; at an opcode ``boundary`` exactly there, reading moves on to the
        file position, as joblib's unpickler does.
        """
        have = len(self.buf) - self.i
        if have >= need:
            return
        if self.cut is not None:
            at, to = self.cut
            end = self.base + len(self.buf)
            if end >= at:
                if not (boundary and have == 0):
                    return
                self.cut = None
                self.s.seek(to)
                self.buf, self.i, self.base, self.eof = b"", 0, to, False
                have = 0
        if self.eof:
            return
        parts = [self.buf[self.i:]]
        self.base += self.i
        self.i = 0
        while have < need:
            want = max(_CHUNK, need - have)
            if self.cut is not None:
                want = min(want, self.cut[0] - (self.base + have))
                if want <= 0:
                    break
            chunk = self.s.read(want)
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self.buf = b"".join(parts)

    def read(self, n: int, what: str) -> bytes:
        self.fill(n)
        out = self.buf[self.i:self.i + n]
        self.i += len(out)
        if len(out) < n:
            raise Truncated(f"stream ends after {len(out)} of {n} bytes of {what}")
        return out

    def skip(self, n: int, what: str) -> None:
        """Step over ``n`` bytes without holding them: seek, or read and drop in chunks."""
        take = min(n, len(self.buf) - self.i)
        self.i += take
        left = n - take
        if left <= 0:
            return
        target = self.pos + left
        if self.cut is not None and target > self.cut[0]:
            raise Truncated(f"a {n}-byte {what} runs past the end of its frame")
        self.buf, self.i, self.base = b"", 0, self.pos
        if self.seekable:
            self.s.seek(left - 1, os.SEEK_CUR)
            got = len(self.s.read(1))  # a seek past the end succeeds; a read there does not
            self.base += left - 1 + got
            if not got:
                self.eof = True
                raise Truncated(f"stream ends inside a {n}-byte {what}")
            return
        while left:
            chunk = self.s.read(min(left, _CHUNK))
            if not chunk:
                self.eof = True
                raise Truncated(f"stream ends inside a {n}-byte {what}")
            left -= len(chunk)
            self.base += len(chunk)

    def seek(self, pos: int) -> None:
        self.s.seek(pos)
        self.buf, self.i, self.base, self.eof = b"", 0, pos, False

    def readline(self, cap: int) -> bytes | None:
        """One line without its newline; None when longer than ``cap`` (the rest is skipped)."""
        kept: list[bytes] = []
        size = 0
        while True:
            self.fill(1)
            if self.i >= len(self.buf):
                raise Truncated("stream ends inside a line argument")
            j = self.buf.find(b"\n", self.i)
            end = len(self.buf) if j < 0 else j
            if size <= cap:
                kept.append(self.buf[self.i:end])
            size += end - self.i
            self.i = end + (j >= 0)
            if j >= 0:
                return b"".join(kept) if size <= cap else None


def u4(buf: bytes, i: int) -> int:
    return _U4(buf, i)[0]


def u8(buf: bytes, i: int) -> int:
    return _U8(buf, i)[0]


def i4(buf: bytes, i: int) -> int:
    return _I4(buf, i)[0]


def _strtol0(s: bytes) -> int | None:
    """C ``strtol(s, &end, 0)`` as ``_pickle.c`` uses it: None unless it ends at the newline."""
    t = s.lstrip(b" \t\n\v\f\r")
    sign = -1 if t[:1] == b"-" else 1
    if t[:1] in (b"+", b"-"):
        t = t[1:]
    if t[:2].lower() == b"0x" and t[2:3] and t[2:3] in b"0123456789abcdefABCDEF":
        base, t = 16, t[2:]
    elif t[:1] == b"0":
        base = 8
    else:
        base = 10
    digits = b"0123456789abcdefABCDEF"[: base if base <= 10 else 22]
    k = 0
    while k < len(t) and t[k:k + 1] in digits:
        k += 1
    if k == 0 or t[k:] not in (b"", b"\n"):
        return None
    value = sign * int(t[:k], base)
    return value if -(1 << 63) <= value < (1 << 63) else None


def parse_int_line(line: bytes) -> int | bool:
    """The INT opcode: C strtol base 0 (with its bool rule), else Python's ``int(x, 0)``."""
    full = line + b"\n"
    if full in (b"00\n", b"01\n"):
        return full == b"01\n"
    value = _strtol0(line)
    if value is not None:
        return bool(value) if len(full) == 3 and value in (0, 1) else value
    try:
        return int(line, 0)
    except ValueError:
        raise ParseError(f"INT argument {line[:40]!r} is not an integer") from None


def parse_long_line(line: bytes) -> int:
    if line[-1:] == b"L":
        line = line[:-1]
    try:
        return int(line, 0)
    except ValueError:
        raise ParseError(f"LONG argument {line[:40]!r} is not an integer") from None


def check_float_line(line: bytes) -> None:
    try:
        float(line)  # Python's float() accepts everything C's PyOS_string_to_double does
    except ValueError:
        raise ParseError(f"FLOAT argument {line[:40]!r} is not a number") from None


def parse_string_line(line: bytes) -> str | bytes:
    """STRING: quoted, backslash-escaped bytes, decoded as ASCII (the loaders' default)."""
    if not (len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"')):
        raise ParseError("the STRING opcode argument must be quoted")
    try:
        raw = codecs.escape_decode(line[1:-1])[0]
    except ValueError as e:
        raise ParseError(f"STRING argument has a bad escape ({e})") from None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw  # loaders with encoding='bytes'/'latin1' accept it; the value is data


def parse_unicode_line(line: bytes) -> str:
    try:
        return line.decode("raw-unicode-escape")
    except UnicodeDecodeError as e:
        raise ParseError(f"UNICODE argument does not decode ({e.reason})") from None


def parse_name_line(line: bytes, what: str) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"{what} is not valid UTF-8 ({e.reason})") from None
