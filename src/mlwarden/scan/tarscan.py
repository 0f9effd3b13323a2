"""Tar archives, read in place: headers by ``tarfile``, member bytes through a :class:`Window`.

Nothing is extracted. Links, devices and names that climb out of the extraction folder
are issues; regular members are scanned by content and nested archives recurse through
the dispatcher. Compressed tars (.tar.gz/.bz2/.xz) arrive here already decompressed by
``compressed``, which applies the bomb limits.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

from ..findings import Severity
from .base import ScanContext, ScanIssue, Where
from .compressed import window
from .torchscan import LEGACY_TAR_MEMBERS, scan_first_pickle
from .ziputil import member_name_problem


def scan_tar(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
    """Scan every member of the (uncompressed) tar archive in ``stream``."""
    from . import dispatch

    stream.seek(0)
    try:
        tar = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[arg-type]
    except (tarfile.TarError, OSError, ValueError) as exc:
        ctx.incomplete("tar.parse_error", where, f"cannot read the tar archive ({exc})",
                       remediation="Re-create the archive from a trusted source.")
        return
    members: list[tarfile.TarInfo] = []
    try:
        while (info := tar.next()) is not None:
            members.append(info)
            if len(members) >= ctx.limits.max_members:
                ctx.incomplete("archive.member_limit", where,
                               f"more than {ctx.limits.max_members} members; the rest are not scanned")
                break
    except (tarfile.TarError, OSError, ValueError) as exc:
        ctx.incomplete("tar.parse_error", where, f"tar archive is corrupt after {len(members)} members ({exc})",
                       remediation="Re-create the archive from a trusted source.")
    names = {m.name.rstrip("/").rsplit("/", 1)[-1] for m in members if m.isfile()}
    legacy = {"pickle", "storages"} <= names <= LEGACY_TAR_MEMBERS
    ctx.formats[str(where)] = "pytorch-legacy-tar" if legacy else "tar"
    size = stream.seek(0, 2)
    for info in members:
        if ctx.out_of_time():
            ctx.incomplete("scan.time_limit", where, f"scan time limit of {ctx.limits.max_seconds:g}s reached "
                           f"before member {info.name!r}; it and the members after it are not scanned")
            return
        child = where.child(info.name)
        _check_member(ctx, child, info)
        if not info.isfile():
            continue
        end = info.offset_data + info.size
        if end > size:
            ctx.incomplete("tar.truncated", child, f"member claims {info.size} bytes but the archive ends first")
        member = window(stream, info.offset_data, min(end, size))
        base = info.name.rsplit("/", 1)[-1]
        if legacy and base in ("storages", "tensors"):
            ctx.formats[str(child)] = "pytorch-legacy-records"
            scan_first_pickle(member, ctx, child)
        else:
            dispatch(member, ctx, child, info.name)


def _check_member(ctx: ScanContext, where: Where, info: tarfile.TarInfo) -> None:
    problem = member_name_problem(info.name)
    if problem:
        ctx.add(ScanIssue(kind="archive.path_traversal", severity=Severity.HIGH, where=where,
                          message=f"member name {info.name!r} {problem}; extracting it writes outside the target folder",
                          remediation="Never extract this archive; rebuild it with relative member names."))
    if info.issym() or info.islnk():
        kind = "archive.symlink" if info.issym() else "archive.hardlink"
        target = info.linkname
        escapes = member_name_problem(target) is not None
        ctx.add(ScanIssue(kind=kind, severity=Severity.HIGH, where=where,
                          message=f"member is a {'symbolic' if info.issym() else 'hard'} link to {target!r}"
                          + (" outside the archive" if escapes else "")
                          + "; extracting it can redirect reads or later writes",
                          detail={"target": target}, remediation="Remove links from model archives."))
    elif info.ischr() or info.isblk() or info.isfifo():
        ctx.add(ScanIssue(kind="archive.device_member", severity=Severity.MEDIUM, where=where,
                          message="member is a device or FIFO node; model archives never need one",
                          remediation="Rebuild the archive with regular files only."))
