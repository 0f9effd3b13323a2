"""The pickle walker's byte reader: opcodes and their arguments, payloads skipped.

Split from :mod:`.pickle` so the walker (stack, memo, policy) reads in one screen. The
reader never holds a payload past :data:`_VALUE_CAP`: longer strings and bytes are
skipped with ``seek`` (or read and discarded in chunks when the stream cannot seek).
"""

from __future__ import annotations

import io
import os
import pickletools
import struct
import warnings
from typing import Any, BinaryIO


class Opaque:
    """A value the walker does not track: a skipped payload, a set, a persistent id, …"""

    __slots__ = ()


class Truncated(Exception):
    """The stream ended inside an opcode or payload."""


_VALUE_CAP = 64 << 10  # strings and bytes longer than this are skipped, never held
_CHUNK = 64 << 10
_LEN_PREFIX = {-2: (1, False), -3: (4, True), -4: (4, False), -5: (8, False)}


class PickleReader:
    """Buffered, bounded reads over a binary stream that may or may not be seekable."""

    def __init__(self, stream: BinaryIO) -> None:
        self.s = stream
        self.buf = b""
        self.i = 0
        try:
            self.start = stream.tell()
        except (OSError, AttributeError, ValueError):
            self.start = 0
        self.pos = self.start
        try:
            self.seekable = bool(stream.seekable())
        except (OSError, AttributeError, ValueError):
            self.seekable = False

    def _fill(self, n: int) -> None:
        have = len(self.buf) - self.i
        if have >= n:
            return
        parts = [self.buf[self.i:]]
        while have < n:
            chunk = self.s.read(max(_CHUNK, n - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self.buf, self.i = b"".join(parts), 0

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self.buf[self.i:self.i + n]

    def read_exact(self, n: int, what: str = "opcode") -> bytes:
        self._fill(n)
        out = self.buf[self.i:self.i + n]
        self.i += len(out)
        self.pos += len(out)
        if len(out) < n:
            raise Truncated(f"stream ends after {len(out)} of {n} bytes of {what}")
        return out

    def skip(self, n: int, what: str = "payload") -> None:
        """Step over ``n`` bytes without holding them: seek, or read and discard in chunks."""
        take = min(n, len(self.buf) - self.i)
        self.i += take
        self.pos += take
        left = n - take
        if left <= 0:
            return
        if self.seekable:
            self.s.seek(left - 1, os.SEEK_CUR)
            got = len(self.s.read(1))  # a seek past the end succeeds; a read there does not
            self.pos += left - 1 + got
            if not got:
                raise Truncated(f"stream ends inside a {n}-byte {what}")
            return
        while left:
            chunk = self.s.read(min(left, 1 << 20))
            if not chunk:
                raise Truncated(f"stream ends inside a {n}-byte {what}")
            left -= len(chunk)
            self.pos += len(chunk)

    def readline(self) -> bytes | None:
        """One line without its newline; None when longer than the cap (the rest is skipped)."""
        kept = b""
        while True:
            self._fill(1)
            if self.i >= len(self.buf):
                raise Truncated("stream ends inside a line argument")
            j = self.buf.find(b"\n", self.i)
            end = len(self.buf) if j < 0 else j
            if len(kept) <= _VALUE_CAP:
                kept += self.buf[self.i:end]
            self.pos += end - self.i + (j >= 0)
            self.i = end + (j >= 0)
            if j >= 0:
                return kept if len(kept) <= _VALUE_CAP else None

    def read_arg(self, op: pickletools.OpcodeInfo) -> Any:
        a = op.arg
        if a is None:
            return None
        if a.n > 0:
            raw = self.read_exact(a.n, f"{op.name} argument")
            return struct.unpack("<d", raw)[0] if a.name == "float8" else \
                int.from_bytes(raw, "little", signed=a.name == "int4")
        if a.n == -1:
            return self._line_arg(op.name, a.name)
        size, signed = _LEN_PREFIX[a.n]
        n = int.from_bytes(self.read_exact(size, f"{op.name} length"), "little", signed=signed)
        if n < 0:
            raise ValueError(f"{op.name} with negative length {n}")
        if n > _VALUE_CAP:
            self.skip(n, f"{op.name} payload")
            return Opaque()
        raw = self.read_exact(n, f"{op.name} payload")
        if a.name.startswith("unicodestring"):
            return raw.decode("utf-8", "surrogatepass")
        if a.name.startswith("string"):
            return raw.decode("latin-1")
        if a.name.startswith("long"):
            return int.from_bytes(raw, "little", signed=True)
        return raw

    def _line_arg(self, opname: str, kind: str) -> Any:
        line = self.readline()
        if kind == "stringnl_noescape_pair":
            second = self.readline()
            if line is None or second is None:
                raise ValueError(f"{opname} module or name is too long")
            return line.decode("utf-8"), second.decode("utf-8")
        if line is None:
            return Opaque()
        if kind == "decimalnl_short":
            text = line.decode("ascii").strip()
            return {"00": False, "01": True}.get(text) if text in ("00", "01") else int(text)
        if kind == "decimalnl_long":
            return int(line.decode("ascii").strip().rstrip("L"))
        if kind == "floatnl":
            return float(line.decode("ascii"))
        if kind == "stringnl":
            with warnings.catch_warnings():  # hostile escapes are data here, not a warning
                warnings.simplefilter("ignore")
                return pickletools.read_stringnl(io.BytesIO(line + b"\n"))
        if kind == "unicodestringnl":
            return line.decode("raw-unicode-escape")
        return Opaque()  # PERSID's id
