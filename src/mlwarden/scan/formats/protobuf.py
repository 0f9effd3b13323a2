"""A minimal protobuf wire-format reader for the ONNX and SavedModel scanners.

It reads fields straight from a seekable stream so that a multi-gigabyte message (an ONNX
initializer's ``raw_data``, a frozen graph's constants) is skipped by seeking, never read
into memory. It knows nothing about schemas: callers name the field numbers they care
about and ignore the rest, the way protobuf itself treats unknown fields.

Malformed input raises :class:`ParseError`, which the format scanners turn into a
``<format>.parse_error`` issue; this module never reports by itself.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5

MAX_DEPTH = 64  # protobuf's own default recursion limit is 100; real models nest < 20
MAX_FIELD_NUMBER = (1 << 29) - 1
INLINE_BYTES = 1 << 20  # sub-messages up to this size are read into memory in one read


class ParseError(Exception):
    """The bytes are not a well-formed protobuf message (internal to the formats package)."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field: its number and wire type; ``value`` for scalars, ``offset``/``length`` for LEN."""

    number: int
    wire_type: int
    value: int = 0
    offset: int = 0  # absolute stream offset of a LEN payload
    length: int = 0


class Message:
    """A message occupying ``[start, end)`` of a seekable stream, or of an in-memory buffer.

    Iterating :meth:`fields` keeps its own position, so a caller may read or descend into a
    field's payload between steps without confusing the iterator. Sub-messages up to
    ``INLINE_BYTES`` are read into memory once; larger ones stay on the stream.
    """

    def __init__(self, stream: BinaryIO | None, start: int, end: int, depth: int = 0,
                 buf: bytes | None = None) -> None:
        if depth > MAX_DEPTH:
            raise ParseError(f"messages nested deeper than {MAX_DEPTH} levels")
        self.stream, self.buf = stream, buf
        self.start, self.end, self.depth = start, end, depth

    @classmethod
    def from_bytes(cls, data: bytes) -> Message:
        return cls(None, 0, len(data), buf=data)

    def fields(self) -> Iterator[Field]:
        pos = self.start
        while pos < self.end:
            key, pos = self._varint(pos)
            number, wire = key >> 3, key & 7
            if number == 0 or number > MAX_FIELD_NUMBER:
                raise ParseError(f"invalid field number {number} at offset {pos}")
            if wire == VARINT:
                value, pos = self._varint(pos)
                yield Field(number, wire, value)
            elif wire in (I64, I32):
                size = 8 if wire == I64 else 4
                if pos + size > self.end:
                    raise ParseError(f"fixed-size field runs past the end of its message at offset {pos}")
                yield Field(number, wire, int.from_bytes(self._bytes(pos, size), "little"))
                pos += size
            elif wire == LEN:
                length, pos = self._varint(pos)
                if length > self.end - pos:
                    raise ParseError(
                        f"field {number} claims {length} bytes at offset {pos}, "
                        f"only {self.end - pos} remain in its message"
                    )
                yield Field(number, wire, offset=pos, length=length)
                pos += length
            else:
                # Groups (3/4) are deprecated and unused by ONNX and TensorFlow; 6 and 7 are
                # not wire types at all.
                raise ParseError(f"unsupported wire type {wire} for field {number}")

    def sub(self, field: Field) -> Message:
        """The embedded message carried by a LEN field."""
        if field.wire_type != LEN:
            raise ParseError(f"field {field.number} should be a message, has wire type {field.wire_type}")
        if self.buf is None and field.length <= INLINE_BYTES:
            data = self._bytes(field.offset, field.length)
            return Message(None, 0, len(data), self.depth + 1, buf=data)
        return Message(self.stream, field.offset, field.offset + field.length, self.depth + 1, self.buf)

    def read(self, field: Field, limit: int) -> bytes:
        """Up to ``limit`` bytes of a LEN field's payload (a prefix when it is longer)."""
        if field.wire_type != LEN:
            raise ParseError(f"field {field.number} should be bytes, has wire type {field.wire_type}")
        return self._bytes(field.offset, min(field.length, limit))

    def text(self, field: Field, limit: int = 4096) -> str:
        """A string field, decoded leniently (names in reports, never trusted as paths)."""
        return self.read(field, limit).decode("utf-8", errors="replace")

    def _bytes(self, pos: int, n: int) -> bytes:
        if self.buf is not None:
            return self.buf[pos : pos + n]
        assert self.stream is not None
        self.stream.seek(pos)
        data = self.stream.read(n)
        if len(data) != n:
            raise ParseError(f"stream ended at offset {pos + len(data)}, {n} bytes were expected")
        return data

    def _varint(self, pos: int) -> tuple[int, int]:
        if self.buf is not None and pos < self.end and self.buf[pos] < 0x80:
            return self.buf[pos], pos + 1  # tags and short lengths: the common case
        chunk = self._bytes(pos, min(10, self.end - pos))
        result = shift = 0
        for i, b in enumerate(chunk):
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result & 0xFFFFFFFFFFFFFFFF, pos + i + 1
            shift += 7
        if len(chunk) == 10:
            raise ParseError(f"varint longer than 10 bytes at offset {pos}")
        raise ParseError(f"varint runs past the end of its message at offset {pos}")


def signed64(value: int) -> int:
    """A varint read as protobuf ``int64`` (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def stream_size(stream: BinaryIO) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size
