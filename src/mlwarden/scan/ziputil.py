"""Zip structures read with ``struct``: end of central directory, central directory, local headers.

Kept apart from the member scanning in ``zipscan`` so each stays readable. Nothing here
trusts a size it has not bounded by the file's own size: hostile archives lie.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

from ..findings import Severity
from .base import NOT_FULLY_SCANNED

Problem = tuple[str, Severity, str]

_EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_LOCATOR64 = struct.Struct("<4sIQI")  # 20 bytes
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_MAX_COMMENT = 0xFFFF
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ZipEntry:
    name: str
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    header_offset: int  # absolute offset of the local header in the file
    source: str  # "central" or "local"
    data_offset: int = 0  # local entries only
    is_symlink: bool = False


def member_name_problem(name: str) -> str | None:
    """Why a member name would escape the extraction folder, or None."""
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if "\\" in name:
        return "contains a backslash (a path separator on Windows)"
    if ".." in name.split("/"):
        return "climbs out of the folder with '..'"
    if "\0" in name:
        return "contains a NUL byte"
    return None


def _decode(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8", "replace") if flags & 0x800 else raw.decode("cp437")


def _zip64(extra: bytes, want: list[str], values: dict[str, int]) -> None:
    """Replace 0xFFFFFFFF placeholders with the zip64 extra field's values, in spec order."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if tag != 1:
            continue
        at = 0
        for key in want:
            if at + 8 <= len(body):
                values[key] = struct.unpack_from("<Q", body, at)[0]
                at += 8
        return


@dataclass(frozen=True)
class EndRecords:
    """Where the readers that matter find the end of central directory record.

    ``python`` is Python's zipfile (numpy's ``.npz``, Keras): the last 22 bytes when they
    are a record without comment, else the *last* signature in the final 64 KiB, and no
    archive at all when fewer than 22 bytes follow it. ``miniz`` is PyTorch's reader: the
    last signature with at least 22 bytes after it. ``others`` are earlier records whose
    comment ends exactly at the end of the file and that point at a central directory:
    readers that check the comment length (libzip, the old mlwarden) take those. Records
    of zips stored *inside* a member end before the file does, and are not among them.
    """

    python: int | None
    miniz: int | None
    others: tuple[int, ...]


def find_end_records(stream: BinaryIO, size: int) -> EndRecords:
    start = max(0, size - _EOCD.size - _MAX_COMMENT)
    stream.seek(start)
    tail = stream.read(size - start)
    sigs: list[int] = []
    pos = tail.rfind(b"PK\x05\x06")
    while pos >= 0:
        sigs.append(start + pos)
        pos = tail.rfind(b"PK\x05\x06", 0, pos)
    whole = [p for p in sigs if p + _EOCD.size <= size]
    if size >= _EOCD.size and tail[-_EOCD.size:][:4] == b"PK\x05\x06" and tail[-2:] == b"\0\0":
        python: int | None = size - _EOCD.size
    else:
        python = sigs[0] if sigs and sigs[0] + _EOCD.size <= size else None
    miniz = whole[0] if whole else None
    chosen = {python, miniz}
    others = tuple(p for p in whole if p not in chosen and _points_at_directory(stream, size, p))
    return EndRecords(python=python, miniz=miniz, others=others)


def ends_in_archive(stream: BinaryIO, size: int) -> bool:
    """Whether a zip reader would find an archive that ends this content (a zip appended to it)."""
    stream.seek(max(0, size - _EOCD.size - _MAX_COMMENT))
    if b"PK\x05\x06" not in stream.read():
        return False
    ends = find_end_records(stream, size)
    return any(p is not None and _points_at_directory(stream, size, p) for p in (ends.python, ends.miniz))


def _points_at_directory(stream: BinaryIO, size: int, pos: int) -> bool:
    """Whether the record at ``pos`` is a real one (an empty archive, or a directory where it says)."""
    stream.seek(pos)
    fields = _EOCD.unpack(stream.read(_EOCD.size))
    count, cd_size, cd_offset, comment_len = fields[4], fields[5], fields[6], fields[7]
    if pos + _EOCD.size + comment_len != size:
        return False
    if count == 0 and cd_size == 0:
        return True
    for at in {cd_offset, pos - cd_size}:  # absolute, or relative to data prepended to it
        if 0 <= at < pos:
            stream.seek(at)
            if stream.read(4) == b"PK\x01\x02":
                return True
    return False


def read_central(stream: BinaryIO, size: int, eocd_pos: int, max_members: int
                 ) -> tuple[list[ZipEntry], int, list[Problem]]:
    """Central-directory entries of the record at ``eocd_pos``, the offset of data
    prepended to the archive (as Python's zipfile computes it), and problems."""
    problems: list[Problem] = []
    stream.seek(eocd_pos)
    record = stream.read(_EOCD.size)
    _, _, _, _, count, cd_size, cd_offset, comment_len = _EOCD.unpack(record)
    base = eocd_pos
    if eocd_pos + _EOCD.size + comment_len < size:
        problems.append(("zip.trailing_data", Severity.HIGH,
                         (f"{size - eocd_pos - _EOCD.size - comment_len} bytes follow the archive's end record "
                          "and comment: zip readers ignore them, other readers may not")))
    # a zip64 end record sits just before a locator that precedes the classic one; writers
    # such as PyTorch's add it even when no field overflows, and then it ends the directory
    stream.seek(max(0, eocd_pos - _LOCATOR64.size))
    loc = stream.read(_LOCATOR64.size)
    if eocd_pos >= _LOCATOR64.size + _EOCD64.size and loc[:4] == b"PK\x06\x07":
        stream.seek(eocd_pos - _LOCATOR64.size - _EOCD64.size)
        rec64 = stream.read(_EOCD64.size)
        if len(rec64) == _EOCD64.size and rec64[:4] == b"PK\x06\x06":
            fields = _EOCD64.unpack(rec64)
            count, cd_size, cd_offset = fields[7], fields[8], fields[9]
            base = eocd_pos - _LOCATOR64.size - _EOCD64.size
    adjust = base - cd_size - cd_offset  # bytes prepended to the archive (self-extractors)
    if adjust < 0:
        problems.append(("zip.bad_central_directory", Severity.HIGH,
                         f"central directory offset {cd_offset} + size {cd_size} points past its end record"))
        adjust = 0
    elif adjust:
        # Python's zipfile shifts every offset by this much; PyTorch's reader and numpy's
        # sniffing do not (to them the file is not a zip but, say, a pickle)
        problems.append(("zip.prepended_data", Severity.HIGH,
                         (f"{adjust} bytes precede the archive: a polyglot or self-extracting file that "
                          "zipfile, PyTorch and numpy each read differently")))
    entries: list[ZipEntry] = []
    pos, end = cd_offset + adjust, min(size, cd_offset + adjust + cd_size)
    if pos >= size:
        problems.append(("zip.bad_central_directory", Severity.HIGH,
                         f"central directory offset {cd_offset} lies past the end of the file"))
        return [], adjust, problems
    stream.seek(pos)
    blob = stream.read(max(0, end - pos)) if cd_size <= 1 << 30 else b""
    at = 0
    while at + _CENTRAL.size <= len(blob):
        fields = _CENTRAL.unpack_from(blob, at)
        if fields[0] != b"PK\x01\x02":
            problems.append(("zip.bad_central_directory", Severity.HIGH,
                             (f"central directory entry {len(entries)} has a bad signature; later entries are not "
                              f"read; {NOT_FULLY_SCANNED}")))
            break
        made_by, flags, method, crc, csize, usize = fields[1], fields[3], fields[4], fields[7], fields[8], fields[9]
        nlen, xlen, clen, ext_attr, offset = fields[10], fields[11], fields[12], fields[15], fields[16]
        name_raw = blob[at + 46 : at + 46 + nlen]
        extra = blob[at + 46 + nlen : at + 46 + nlen + xlen]
        values = {"usize": usize, "csize": csize, "offset": offset}
        _zip64(extra, [k for k in ("usize", "csize", "offset") if values[k] == 0xFFFFFFFF], values)
        mode = ext_attr >> 16
        entries.append(ZipEntry(
            name=_decode(name_raw, flags), flags=flags, method=method, crc=crc,
            csize=values["csize"], usize=values["usize"], header_offset=values["offset"] + adjust,
            source="central", is_symlink=(made_by >> 8) == 3 and mode & 0o170000 == 0o120000,
        ))
        at += 46 + nlen + xlen + clen
        if len(entries) >= max_members:
            problems.append(("archive.member_limit", Severity.HIGH,
                             f"more than {max_members} members; the rest are not scanned; {NOT_FULLY_SCANNED}"))
            break
    if len(entries) != count and len(entries) < max_members:
        problems.append(("zip.bad_central_directory", Severity.HIGH,
                         f"end record announces {count} members but the central directory holds {len(entries)}"))
    return entries, adjust, problems


def walk_local(
    stream: BinaryIO, size: int, central: dict[int, ZipEntry], adjust: int, max_members: int
) -> tuple[list[ZipEntry], list[Problem]]:
    """Every local file header, found by walking from the first one to the central directory."""
    out: list[ZipEntry] = []
    problems: list[Problem] = []
    offsets = sorted({0, adjust, *central})
    todo, done = list(reversed(offsets)), set()
    while todo and len(out) < max_members:
        pos = todo.pop()
        if pos in done or pos + _LOCAL.size > size:
            continue
        done.add(pos)
        stream.seek(pos)
        head = stream.read(_LOCAL.size)
        if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
            continue
        _, _, flags, method, _, _, crc, csize, usize, nlen, xlen = _LOCAL.unpack(head)
        name_raw, extra = stream.read(nlen), stream.read(xlen)
        values = {"usize": usize, "csize": csize}
        _zip64(extra, [k for k in ("usize", "csize") if values[k] == 0xFFFFFFFF], values)
        data = pos + _LOCAL.size + nlen + xlen
        out.append(ZipEntry(name=_decode(name_raw, flags), flags=flags, method=method, crc=crc,
                            csize=values["csize"], usize=values["usize"], header_offset=pos,
                            source="local", data_offset=data))
        known = central.get(pos)
        if known is not None:
            length = known.csize
        elif not flags & 0x8:
            length = values["csize"]
        else:
            problems.append(("zip.local_unresolved", Severity.HIGH,
                             (f"local header at {pos} has no central entry and no sizes; headers after it are not "
                              f"walked; {NOT_FULLY_SCANNED}")))
            continue
        nxt = data + length
        if flags & 0x8:  # data descriptor: optional signature, crc, then 4- or 8-byte sizes
            stream.seek(nxt)
            sig = stream.read(4)
            nxt += 16 if sig == b"PK\x07\x08" else 12
        if nxt not in done and nxt <= size:
            todo.append(nxt)
    return out, problems
