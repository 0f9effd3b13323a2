"""Zip archives (and so PyTorch checkpoints, TorchScript, .npz, .keras), parsed by hand.

Archives are located as the loaders locate them (the *last* end record, see
``ziputil.find_end_records``); every other directory a reader may take is scanned too and
reported. Python's zipfile refuses members that PyTorch still loads (flag bits 0x1/0x20/0x40, bad
CRCs), so this module reads the end-of-central-directory record and the central directory
itself, *and* walks the local file headers: a member seen by only one of them, or
described differently by each, is an issue and is still scanned. Members are scanned by
content, whatever their names; stored members are scanned in place through a
:class:`Window`, compressed ones are decompressed only as far as needed to sniff them,
and spooled to a temp file only when they need inspecting.
"""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..findings import Severity
from .base import ScanContext, ScanIssue, Where
from .compressed import DECODE_ERRORS, Decoder, spool, window
from .detect import HEAD_BYTES, sniff
from .picklesniff import NO, head_verdict
from .ziputil import (
    ZipEntry,
    find_end_records,
    member_name_problem,
    read_central,
    walk_local,
)

_METHODS = {0: "stored", 8: "deflate", 9: "deflate64", 12: "bz2", 14: "zip-lzma"}
_ODD_FLAGS = 0x1 | 0x20 | 0x40


@dataclass(frozen=True)
class _Member:
    entry: ZipEntry
    data_offset: int


def scan_zip(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
    """Scan every member of the zip archive in ``stream``; see the module docstring."""
    from . import torchscan

    size = stream.seek(0, 2)
    central, adjust = _read_directories(stream, ctx, where, size)
    local, local_problems = walk_local(stream, size, {e.header_offset: e for e in central}, adjust, ctx.limits.max_members)
    for kind, severity, message in local_problems:
        ctx.add(ScanIssue(kind=kind, severity=severity, message=message, where=where))
    by_offset = {e.header_offset: e for e in local}
    members: list[_Member] = []
    for entry in central:
        loc = by_offset.get(entry.header_offset)
        if loc is None:
            ctx.add(ScanIssue(kind="zip.bad_local_header", severity=Severity.HIGH, where=where.child(entry.name),
                              message=f"central directory points at offset {entry.header_offset} where there is no "
                              "valid local file header; the member cannot be read",
                              detail={"offset": entry.header_offset}))
            continue
        _compare(ctx, where.child(entry.name), entry, loc)
        members.append(_Member(entry, loc.data_offset))
    known = {e.header_offset for e in central}
    for loc in local:
        if loc.header_offset not in known:
            ctx.add(ScanIssue(kind="zip.local_only", severity=Severity.HIGH, where=where.child(loc.name),
                              message="member has a local file header but no central directory entry: "
                              "streaming readers see it, zipfile does not",
                              detail={"offset": loc.header_offset},
                              remediation="Rebuild the archive with a standard tool from trusted contents."))
            members.append(_Member(loc, loc.data_offset))
    names = [m.entry.name for m in members]
    fmt = torchscan.classify_zip(names)
    ctx.formats[str(where)] = fmt
    torchscan.report_zip_layout(ctx, where, fmt, names)
    _check_names(ctx, where, members)
    for member in members:
        if ctx.out_of_time():
            ctx.incomplete("scan.time_limit", where, f"scan time limit of {ctx.limits.max_seconds:g}s reached "
                           f"before member {member.entry.name!r}; it and the members after it are not scanned")
            return
        _scan_member(stream, ctx, where.child(member.entry.name), member, fmt)


def _read_directories(stream: BinaryIO, ctx: ScanContext, where: Where, size: int) -> tuple[list[ZipEntry], int]:
    """Every central directory a reader may take, the loaders' first; entries deduplicated."""
    ends = find_end_records(stream, size)
    records = [p for p in dict.fromkeys((ends.python, ends.miniz, *ends.others)) if p is not None]
    if not records:
        ctx.add(ScanIssue(kind="zip.no_central_directory", severity=Severity.HIGH, where=where,
                          message="no end-of-central-directory record: the archive is truncated or built to evade "
                          "zip readers; only its local headers are scanned, as streaming readers see them",
                          remediation="Re-create the archive from a trusted source."))
        return [], 0
    if ends.python != ends.miniz:
        ctx.add(ScanIssue(kind="zip.end_record_disagreement", severity=Severity.HIGH, where=where,
                          message="Python's zipfile and PyTorch's reader find different end-of-central-directory "
                          f"records (at {ends.python} and {ends.miniz}): each loader sees another archive; both are scanned",
                          detail={"zipfile": ends.python, "torch": ends.miniz},
                          remediation="Rebuild the archive with a standard tool from trusted contents."))
    if ends.others:
        ctx.add(ScanIssue(kind="zip.multiple_end_records", severity=Severity.HIGH, where=where,
                          message=f"{len(ends.others)} more end-of-central-directory record(s) before the last one "
                          "describe another archive (one hidden in a comment, or appended): readers that take "
                          "another record see other members; every such archive is scanned",
                          detail={"records": [*records]},
                          remediation="Rebuild the archive with a standard tool from trusted contents."))
    entries: dict[int, ZipEntry] = {}
    adjust = None
    for pos in records:
        central, shift, problems = read_central(stream, size, pos, ctx.limits.max_members)
        adjust = shift if adjust is None else adjust
        for kind, severity, message in problems:
            ctx.add(ScanIssue(kind=kind, severity=severity, message=message, where=where))
        for e in central:
            entries.setdefault(e.header_offset, e)  # the loaders' directory comes first and wins
    return list(entries.values()), adjust or 0


def _compare(ctx: ScanContext, where: Where, central: ZipEntry, local: ZipEntry) -> None:
    diffs: dict[str, object] = {}
    if central.name != local.name:
        diffs["name"] = (local.name, central.name)
    if central.method != local.method:
        diffs["method"] = (local.method, central.method)
    if (central.flags ^ local.flags) & _ODD_FLAGS:
        diffs["flags"] = (hex(local.flags), hex(central.flags))
    if not local.flags & 0x8:  # with a data descriptor the local sizes are legitimately zero
        if (local.csize, local.usize) != (central.csize, central.usize):
            diffs["sizes"] = ((local.csize, local.usize), (central.csize, central.usize))
    if diffs:
        ctx.add(ScanIssue(kind="zip.header_mismatch", severity=Severity.HIGH, where=where,
                          message="local file header and central directory disagree about "
                          + ", ".join(diffs) + "; different readers will see different contents",
                          detail={k: {"local": v[0], "central": v[1]} for k, v in diffs.items()},  # type: ignore[index]
                          remediation="Rebuild the archive with a standard tool from trusted contents."))


def _check_names(ctx: ScanContext, where: Where, members: list[_Member]) -> None:
    seen: set[str] = set()
    for m in members:
        e, child = m.entry, where.child(m.entry.name)
        problem = member_name_problem(e.name)
        if problem:
            ctx.add(ScanIssue(kind="archive.path_traversal", severity=Severity.HIGH, where=child,
                              message=f"member name {e.name!r} {problem}; extracting it writes outside the target folder",
                              remediation="Never extract this archive; rebuild it with relative member names."))
        if e.is_symlink:
            ctx.add(ScanIssue(kind="archive.symlink", severity=Severity.HIGH, where=child,
                              message=f"member {e.name!r} is a symbolic link; extracting it can redirect later writes or reads",
                              remediation="Remove links from model archives."))
        if e.name in seen and e.source == "central":
            ctx.add(ScanIssue(kind="zip.duplicate_name", severity=Severity.HIGH, where=child,
                              message=f"member name {e.name!r} appears more than once; readers disagree on which one wins",
                              remediation="Rebuild the archive with unique member names."))
        seen.add(e.name)
        if e.flags & _ODD_FLAGS:
            ctx.add(ScanIssue(kind="zip.flag_bits", severity=Severity.MEDIUM, where=child,
                              message=f"member sets general-purpose flag bits {e.flags & _ODD_FLAGS:#x} (encryption/patch): "
                              "Python's zipfile refuses it but PyTorch still loads it; scanned as plain data",
                              detail={"flags": e.flags}))


def _scan_member(stream: BinaryIO, ctx: ScanContext, where: Where, member: _Member, fmt: str) -> None:
    e = member.entry
    raw = window(stream, member.data_offset, member.data_offset + e.csize)
    kind = _METHODS.get(e.method)
    if kind is None:
        ctx.incomplete("zip.unsupported_method", where,
                       f"compression method {e.method} is not supported, so the member is not inspected",
                       method=e.method)
        return
    if kind == "stored":
        if e.usize != e.csize and not e.flags & 0x8:
            ctx.add(ScanIssue(kind="zip.size_mismatch", severity=Severity.MEDIUM, where=where,
                              message=f"stored member declares {e.usize} bytes but holds {e.csize}"))
        _dispatch_checked(raw, ctx, where, e, fmt)
        return
    if e.usize > ctx.limits.bomb_min_bytes and e.usize > ctx.limits.max_ratio * max(e.csize, 1):
        ctx.add(ScanIssue(kind="archive.bomb", severity=Severity.HIGH, where=where,
                          message=f"declared compression ratio {e.usize / max(e.csize, 1):.0f}:1 "
                          f"({e.usize} bytes from {e.csize}) is above {ctx.limits.max_ratio:g}",
                          detail={"compressed": e.csize, "uncompressed": e.usize}))
    props = b""
    if kind == "zip-lzma":  # 2 bytes version, 2 bytes properties size, then the properties
        lzma_head = raw.read(4)
        plen = struct.unpack("<H", lzma_head[2:4])[0] if len(lzma_head) == 4 else 0
        props = raw.read(plen)
    decoder = Decoder(raw.read, kind, props)
    chunks = decoder.chunks()
    head_chunks, head = _take_head(chunks, ctx, where)
    if head is None:
        return
    # a full head means more may follow, whatever size the header declares
    real = len(head) if len(head) < HEAD_BYTES else max(e.usize, len(head) + 1)
    if sniff(head, e.name, real) is None and head_verdict(head, real) == NO:
        # nothing to inspect past the head (tensor data, text): record the format, stop there
        _dispatch_checked(io.BytesIO(head), ctx, where, e, fmt)
        return
    crc = [0]
    content, complete = spool(_crc(itertools.chain(head_chunks, chunks), crc), ctx, where,
                              consumed=lambda: decoder.consumed, declared=e.usize)
    with content:
        if complete and crc[0] != e.crc and not e.flags & 0x1:
            ctx.add(ScanIssue(kind="zip.bad_crc", severity=Severity.MEDIUM, where=where,
                              message=f"CRC-32 {crc[0]:#010x} does not match the declared {e.crc:#010x}: "
                              "the member was altered after the archive was written",
                              detail={"declared": e.crc, "actual": crc[0]}))
        _dispatch_checked(content, ctx, where, e, fmt)


def _dispatch_checked(content: BinaryIO, ctx: ScanContext, where: Where, e: ZipEntry, fmt: str) -> None:
    from . import dispatch, torchscan

    if fmt == "keras" and e.name == "config.json":
        torchscan.scan_keras_config_member(content, ctx, where)
    if e.flags & 0x1:
        content.seek(0)
        if sniff(content.read(HEAD_BYTES), e.name) is None:
            ctx.add(ScanIssue(kind="zip.encrypted_member", severity=Severity.HIGH, where=where,
                              message="member is encrypted and cannot be inspected",
                              remediation="Ask for an unencrypted copy; encrypted model members cannot be vetted."))
            ctx.formats[str(where)] = "encrypted"
            return
    dispatch(content, ctx, where, e.name)


def _take_head(chunks: Iterator[bytes], ctx: ScanContext, where: Where) -> tuple[list[bytes], bytes | None]:
    taken: list[bytes] = []
    try:
        for chunk in chunks:
            taken.append(chunk)
            if sum(map(len, taken)) >= HEAD_BYTES:
                break
    except DECODE_ERRORS as exc:
        ctx.incomplete("archive.decompress_error", where, f"cannot decompress the member ({exc})"
                       + ("" if not taken else "; only the bytes before the error are scanned"),
                       remediation="Re-create the archive from a trusted source; a corrupt member can hide content.")
        if not taken:
            return taken, None
    return taken, b"".join(taken)[:HEAD_BYTES]


def _crc(chunks: Iterator[bytes], box: list[int]) -> Iterator[bytes]:
    for chunk in chunks:
        box[0] = zlib.crc32(chunk, box[0])
        yield chunk
