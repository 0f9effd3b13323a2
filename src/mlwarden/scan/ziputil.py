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


def _find_eocd(stream: BinaryIO, size: int) -> tuple[int, bytes] | None:
    start = max(0, size - _EOCD.size - _MAX_COMMENT)
    stream.seek(start)
    tail = stream.read(size - start)
    pos = tail.rfind(b"PK\x05\x06")
    first = None
    while pos >= 0:
        record = tail[pos : pos + _EOCD.size]
        if len(record) == _EOCD.size:
            first = first if first is not None else (start + pos, record)
            if pos + _EOCD.size + _EOCD.unpack(record)[7] == len(tail):  # comment fills the rest exactly
                return start + pos, record
        pos = tail.rfind(b"PK\x05\x06", 0, pos)
    return first


def read_central(stream: BinaryIO, size: int, max_members: int) -> tuple[list[ZipEntry], int, list[Problem]]:
    """Central-directory entries, the offset of data prepended to the archive, and problems."""
    problems: list[Problem] = []
    found = _find_eocd(stream, size)
    if found is None:
        problems.append(("zip.no_central_directory", Severity.MEDIUM,
                         "no end-of-central-directory record: the archive is truncated or built to evade zip "
                         "readers; only its local headers are scanned"))
        return [], 0, problems
    eocd_pos, record = found
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack(record)
    base = eocd_pos
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
        problems.append(("zip.bad_central_directory", Severity.MEDIUM,
                         f"central directory offset {cd_offset} + size {cd_size} points past its end record"))
        adjust = 0
    elif adjust:
        problems.append(("zip.prepended_data", Severity.MEDIUM,
                         f"{adjust} bytes precede the archive: a polyglot or self-extracting file"))
    entries: list[ZipEntry] = []
    pos, end = cd_offset + adjust, min(size, cd_offset + adjust + cd_size)
    if pos >= size:
        problems.append(("zip.bad_central_directory", Severity.MEDIUM,
                         f"central directory offset {cd_offset} lies past the end of the file"))
        return [], adjust, problems
    stream.seek(pos)
    blob = stream.read(max(0, end - pos)) if cd_size <= 1 << 30 else b""
    at = 0
    while at + _CENTRAL.size <= len(blob):
        fields = _CENTRAL.unpack_from(blob, at)
        if fields[0] != b"PK\x01\x02":
            problems.append(("zip.bad_central_directory", Severity.MEDIUM,
                             f"central directory entry {len(entries)} has a bad signature; later entries are not read"))
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
            problems.append(("archive.member_limit", Severity.MEDIUM,
                             f"more than {max_members} members; the rest are not scanned"))
            break
    if len(entries) != count and len(entries) < max_members:
        problems.append(("zip.bad_central_directory", Severity.MEDIUM,
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
            problems.append(("zip.local_unresolved", Severity.MEDIUM,
                             f"local header at {pos} has no central entry and no sizes; headers after it are not walked"))
            continue
        nxt = data + length
        if flags & 0x8:  # data descriptor: optional signature, crc, then 4- or 8-byte sizes
            stream.seek(nxt)
            sig = stream.read(4)
            nxt += 16 if sig == b"PK\x07\x08" else 12
        if nxt not in done and nxt <= size:
            todo.append(nxt)
    return out, problems
