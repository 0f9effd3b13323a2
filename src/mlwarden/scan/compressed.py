"""Compressed streams: gzip, bz2, xz/lzma, zlib (joblib's compressors), decompressed bounded.

Also home to the stream plumbing the container scanners share: :class:`Window` (a
seekable view of part of a file, so a member is scanned where it lies) and
:func:`spool` (decompressed bytes into a temp file that spills to disk, stopping at the
bomb and size limits). Nothing is ever decompressed whole into memory: every decompressor
call is capped in output size.
"""

from __future__ import annotations

import bz2
import io
import lzma
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, cast

from ..findings import Severity
from .base import ScanContext, ScanIssue, Where

CHUNK = 1 << 20
_DEFLATE64_IN = 16 << 10  # deflate64 output per call is unbounded: feed it little (≤ ~16 MB out)
_ZLIB_DECOMPRESS = type(zlib.decompressobj())
BOMB_REMEDIATION = "Do not open this archive with tools that extract it whole; ask its source for a plain copy."


class Window(io.RawIOBase):
    """Bytes ``start``..``end`` of a seekable stream, as a seekable stream of their own."""

    def __init__(self, base: BinaryIO, start: int, end: int) -> None:
        super().__init__()
        self.base, self.start, self.end, self.pos = base, start, max(start, end), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        origin = {0: 0, 1: self.pos, 2: self.end - self.start}[whence]
        self.pos = max(0, origin + offset)
        return self.pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.end - self.start - self.pos)
        if n <= 0:
            return 0
        self.base.seek(self.start + self.pos)
        data = self.base.read(n)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def window(base: BinaryIO, start: int, end: int) -> BinaryIO:
    """A :class:`Window` typed as the binary stream every scanner takes."""
    return cast(BinaryIO, Window(base, start, end))


DECODE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, lzma.LZMAError, EOFError, OSError, ValueError)
"""What a decompressor raises on corrupt input (bz2 raises OSError, inflate64 ValueError)."""


class Decoder:
    """Decompressed chunks of one compressed stream; ``consumed`` counts compressed bytes read."""

    def __init__(self, read: Callable[[int], bytes], kind: str, props: bytes = b"") -> None:
        self.read, self.kind, self.props, self.consumed = read, kind, props, 0

    def _new(self) -> object:
        kind = self.kind
        if kind in ("gzip", "zlib", "deflate"):
            return zlib.decompressobj({"gzip": 31, "zlib": 15, "deflate": -15}[kind])
        if kind == "bz2":
            return bz2.BZ2Decompressor()
        if kind == "zip-lzma":  # zip's LZMA: raw LZMA1 with the properties in the member header
            filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, self.props)  # type: ignore[attr-defined]
            return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
        return lzma.LZMADecompressor(lzma.FORMAT_AUTO)

    def chunks(self) -> Iterator[bytes]:
        if self.kind == "deflate64":
            yield from self._deflate64()
            return
        if self.kind == "stored":
            while data := self.read(CHUNK):
                self.consumed += len(data)
                yield data
            return
        dec: object = self._new()
        pending = b""
        while True:
            if not pending:
                pending = self.read(CHUNK)
                self.consumed += len(pending)
                if not pending:
                    if not getattr(dec, "eof", True):
                        raise EOFError(f"{self.kind} stream ended before its end marker")
                    return
            if isinstance(dec, _ZLIB_DECOMPRESS):
                out = dec.decompress(pending, CHUNK)
                pending = dec.unconsumed_tail
            else:
                out = dec.decompress(pending, CHUNK)  # type: ignore[attr-defined]
                pending = b""
                while not dec.eof and not dec.needs_input:  # type: ignore[attr-defined]
                    if out:
                        yield out
                    out = dec.decompress(b"", CHUNK)  # type: ignore[attr-defined]
            if out:
                yield out
            if dec.eof:  # type: ignore[attr-defined]
                rest = dec.unused_data + pending  # type: ignore[attr-defined]
                # gzip, bz2 and xz files may hold several streams back to back
                if self.kind in ("gzip", "bz2", "xz") and rest.strip(b"\0"):
                    dec, pending = self._new(), rest
                    continue
                return


    def _deflate64(self) -> Iterator[bytes]:
        """Zip method 9 (Deflate64), as 7-Zip and Windows write for members over 2 GiB."""
        import inflate64

        inflater = inflate64.Inflater()
        while not inflater.eof:
            piece = self.read(_DEFLATE64_IN)
            self.consumed += len(piece)
            if not piece:
                raise EOFError("deflate64 stream ended before its end marker")
            out = inflater.inflate(piece)
            if out:
                yield out


def spool(
    chunks: Iterator[bytes],
    ctx: ScanContext,
    where: Where,
    *,
    consumed: Callable[[], int],
    declared: int | None = None,
) -> tuple[BinaryIO, bool]:
    """Write decompressed chunks into a temp file; stop at the limits. Returns (file, complete)."""
    lim = ctx.limits
    out = tempfile.SpooledTemporaryFile(max_size=lim.spool_bytes)
    written = 0
    complete = True
    try:
        for chunk in chunks:
            written += len(chunk)
            ctx.bytes_inspected += len(chunk)
            out.write(chunk)
            if written > lim.max_member_bytes:
                _limit(ctx, where, "archive.member_too_large", f"member is larger than {lim.max_member_bytes} bytes uncompressed; the rest is not scanned", written)
                complete = False
                break
            if written > lim.bomb_min_bytes and written > lim.max_ratio * max(consumed(), 1):
                ctx.add(ScanIssue(kind="archive.bomb", severity=Severity.HIGH, where=where,
                                  message=f"decompression bomb: {written} bytes out of {consumed()} compressed "
                                  f"(ratio above {lim.max_ratio:g}); decompression stopped",
                                  detail={"uncompressed_so_far": written, "compressed": consumed()},
                                  remediation=BOMB_REMEDIATION))
                complete = False
                break
            if ctx.bytes_inspected > lim.max_total_bytes:
                _limit(ctx, where, "archive.total_limit", f"more than {lim.max_total_bytes} bytes decompressed in this file; the rest is not scanned", written)
                complete = False
                break
            if ctx.out_of_time():
                _limit(ctx, where, "scan.time_limit", "scan time limit reached while decompressing", written)
                complete = False
                break
    except DECODE_ERRORS as exc:
        ctx.incomplete("archive.decompress_error", where,
                       f"cannot decompress ({exc}); only the {written} bytes before the error are scanned",
                       remediation="Re-create the file from a trusted source; a corrupt stream can hide content.")
        complete = False
    if declared is not None and complete and written != declared:
        ctx.add(ScanIssue(kind="archive.size_mismatch", severity=Severity.MEDIUM, where=where,
                          message=f"declared uncompressed size {declared} but {written} bytes decompressed",
                          detail={"declared": declared, "actual": written}))
    out.seek(0)
    return out, complete  # type: ignore[return-value]


def _limit(ctx: ScanContext, where: Where, kind: str, message: str, written: int) -> None:
    ctx.incomplete(kind, where, message, bytes=written,
                   remediation="Raise the scan limits if the file is trusted to be this large.")


def scan_compressed(stream: BinaryIO, ctx: ScanContext, where: Where, kind: str, inner_name: str) -> None:
    """Decompress a gzip/bz2/xz/lzma/zlib stream (or joblib's old "ZF" file) and scan its content."""
    from . import dispatch  # the package's dispatcher; imported here to avoid a cycle

    stream.seek(21 if kind == "joblib-zfile" else 0)
    decoder = Decoder(stream.read, "zlib" if kind == "joblib-zfile" else kind)
    child = where.child(f"<{kind}>")
    content, _ = spool(decoder.chunks(), ctx, child, consumed=lambda: decoder.consumed)
    with content:
        dispatch(content, ctx, child, inner_name)
