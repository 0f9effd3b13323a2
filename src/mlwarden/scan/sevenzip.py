"""7z archives, decompressed member by member with py7zr and scanned like any other member.

Nothing is written to disk but the spool of one member at a time: py7zr streams each
member into a writer from :class:`_Factory`, which counts bytes against the size, bomb,
total and time limits (stopping the extraction when one is hit, reported HIGH as not
fully scanned) and, when the member is complete, hands it to the dispatcher. Names that
climb out of the extraction folder and links are reported as in zip and tar. An archive
py7zr cannot read (encrypted, corrupt, an unsupported method) is reported HIGH.
"""

from __future__ import annotations

import tempfile
from typing import Any, BinaryIO

from ..findings import Severity
from .base import ScanContext, ScanIssue, Where
from .compressed import BOMB_REMEDIATION
from .ziputil import member_name_problem


class _Stop(Exception):
    """A limit was hit inside py7zr's extraction loop; the reason is already an issue."""


def scan_7z(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
    """Scan every member of the 7z archive in ``stream``; see the module docstring."""
    try:
        import py7zr
        from py7zr.exceptions import (
            ArchiveError,
            PasswordRequired,
            UnsupportedCompressionMethodError,
        )
    except ImportError:
        from . import unavailable

        unavailable(ctx, where, "7z (install py7zr)")
        return
    ctx.formats[str(where)] = "7z"
    size = stream.seek(0, 2)
    stream.seek(0)
    errors = (ArchiveError, PasswordRequired, UnsupportedCompressionMethodError, EOFError, OSError,
              ValueError, KeyError, IndexError, TypeError, RuntimeError)
    try:
        with py7zr.SevenZipFile(stream, mode="r") as archive:
            infos = archive.list()
            if len(infos) > ctx.limits.max_members:
                ctx.incomplete("archive.member_limit", where,
                               f"{len(infos)} members, more than {ctx.limits.max_members}; none is scanned")
                return
            for info in infos:
                _check_member(ctx, where.child(info.filename), info)
            if archive.needs_password():
                ctx.incomplete("archive.encrypted", where, "the archive is encrypted and cannot be inspected",
                               remediation="Ask for an unencrypted copy; encrypted model archives cannot be vetted.")
                return
            archive.extractall(factory=_Factory(ctx, where, size))
    except _Stop:
        return
    except errors as exc:  # py7zr raises many types on hostile input; each means "not read"
        ctx.incomplete("archive.decompress_error", where, f"cannot read the 7z archive ({type(exc).__name__}: {exc})",
                       remediation="Re-create the archive from a trusted source; a corrupt archive can hide content.")


def _check_member(ctx: ScanContext, where: Where, info: Any) -> None:
    problem = member_name_problem(info.filename)
    if problem:
        ctx.add(ScanIssue(kind="archive.path_traversal", severity=Severity.HIGH, where=where,
                          message=f"member name {info.filename!r} {problem}; extracting it writes outside the target folder",
                          remediation="Never extract this archive; rebuild it with relative member names."))
    if getattr(info, "is_symlink", False):
        ctx.add(ScanIssue(kind="archive.symlink", severity=Severity.HIGH, where=where,
                          message=f"member {info.filename!r} is a symbolic link; extracting it can redirect later writes or reads",
                          remediation="Remove links from model archives."))


class _Factory:
    """py7zr's WriterFactory: one bounded spool per member, scanned when py7zr closes it."""

    def __init__(self, ctx: ScanContext, where: Where, archive_size: int) -> None:
        self.ctx, self.where, self.archive_size, self.written = ctx, where, archive_size, 0

    def create(self, filename: str) -> _Member:
        return _Member(self, filename)


class _Member:
    """A write-only spool (py7zr's Py7zIO) that checks the limits on every write."""

    def __init__(self, factory: _Factory, filename: str) -> None:
        self.f, self.name = factory, filename
        self.where = factory.where.child(filename)
        # closed in close(), which py7zr calls when the member is complete
        self.buf = tempfile.SpooledTemporaryFile(max_size=factory.ctx.limits.spool_bytes)  # noqa: SIM115
        self.size_ = 0
        self.done = False

    def write(self, data: bytes | bytearray) -> int:
        ctx, lim = self.f.ctx, self.f.ctx.limits
        self.size_ += len(data)
        self.f.written += len(data)
        ctx.bytes_inspected += len(data)
        if self.size_ > lim.max_member_bytes:
            self._stop("archive.member_too_large", f"member is larger than {lim.max_member_bytes} bytes uncompressed")
        if self.f.written > lim.bomb_min_bytes and self.f.written > lim.max_ratio * max(self.f.archive_size, 1):
            ctx.add(ScanIssue(kind="archive.bomb", severity=Severity.HIGH, where=self.where,
                              message=f"decompression bomb: {self.f.written} bytes out of a {self.f.archive_size}-byte "
                              f"archive (ratio above {lim.max_ratio:g}); extraction stopped",
                              remediation=BOMB_REMEDIATION))
            raise _Stop
        if ctx.bytes_inspected > lim.max_total_bytes:
            self._stop("archive.total_limit", f"more than {lim.max_total_bytes} bytes decompressed in this file")
        if ctx.out_of_time():
            self._stop("scan.time_limit", f"scan time limit of {lim.max_seconds:g}s reached while decompressing")
        return self.buf.write(data)

    def _stop(self, kind: str, why: str) -> None:
        self.f.ctx.incomplete(kind, self.where, f"{why}; it and the members after it are not scanned",
                              remediation="Raise the scan limits if the file is trusted to be this large.")
        raise _Stop

    def read(self, size: int | None = None) -> bytes:
        return self.buf.read(size if size is not None else -1)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buf.seek(offset, whence)

    def flush(self) -> None:
        self.buf.flush()

    def size(self) -> int:
        return self.size_

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        from . import dispatch

        with self.buf:
            self.buf.seek(0)
            dispatch(self.buf, self.f.ctx, self.where, self.name)  # type: ignore[arg-type]
