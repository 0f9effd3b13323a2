"""The artifact scanner: sniff each file's format by content and walk it without loading it.

``scan_paths`` takes files and folders and returns one :class:`FileScan` per file, in a
stable order. Inside a file, :func:`scan_stream` is the dispatcher every container calls
for its members, so a pickle in a zip in a tar.gz is found wherever it hides, up to the
nesting limit. Nothing scanned is ever imported, unpickled or executed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from . import compiled

compiled.install()  # before anything imports the pickle machine: compiled, or pure Python

from ..findings import Severity
from .base import Limits, ScanContext, ScanIssue, Where
from .detect import (
    HEAD_BYTES,
    ZIP_EOCD,
    is_model_name,
    looks_like_text,
    sniff,
    strip_compression_suffix,
)
from .picklesniff import NO, YES, head_verdict, verdict
from .ziputil import ends_in_archive

__all__ = ["FileScan", "dispatch", "scan_path", "scan_paths", "scan_stream"]


@dataclass(frozen=True)
class FileScan:
    """The result of scanning one file: its format, what was found, what it imports."""

    path: str
    format: str
    issues: tuple[ScanIssue, ...]
    globals: dict[str, tuple[str, ...]]
    bytes_inspected: int
    size: int


def scan_paths(paths: Iterable[str | Path], *, policy: Any, limits: Limits | None = None) -> list[FileScan]:
    """Scan files and folders (recursively); symlinks inside a folder are reported, not followed."""
    out: list[FileScan] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            out.extend(_scan_dir(p, policy=policy, limits=limits))
        else:
            out.append(scan_path(p, policy=policy, limits=limits))
    return out


def _scan_dir(root: Path, *, policy: Any, limits: Limits | None) -> list[FileScan]:
    out: list[FileScan] = []
    real_root = root.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if (Path(folder) / d).is_symlink()]):
            path = Path(folder) / name
            if path.is_symlink():
                out.append(_symlink_scan(path, real_root, policy=policy, limits=limits))
            else:
                out.append(scan_path(path, policy=policy, limits=limits))
    return out


def _symlink_scan(path: Path, root: Path, *, policy: Any, limits: Limits | None) -> FileScan:
    target = path.resolve()
    inside = target == root or root in target.parents
    where = Where(path=str(path))
    issue = ScanIssue(
        kind="path.symlink" if inside else "path.symlink_outside",
        severity=Severity.INFO if inside else Severity.MEDIUM, where=where,
        message=f"symbolic link to {os.readlink(path)!r}"
        + ("; its target is scanned where it lies" if inside else "; it points outside the scanned folder and is not followed"),
        detail={"target": str(target)},
        remediation="" if inside else "Copy the linked file into the folder if it belongs to the model, then rescan.",
    )
    return FileScan(path=str(path), format="symlink", issues=(issue,), globals={}, bytes_inspected=0, size=0)


def scan_path(path: str | Path, *, policy: Any, limits: Limits | None = None) -> FileScan:
    """Scan one file. Never raises for what the file holds: problems are issues."""
    ctx = ScanContext(policy=policy, limits=limits)
    where = Where(path=str(path))
    size = 0
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as fh:
            dispatch(fh, ctx, where, str(path))
    except OSError as exc:
        ctx.add(ScanIssue(kind="file.unreadable", severity=Severity.MEDIUM, where=where,
                          message=f"cannot read the file: {exc.strerror or exc}",
                          remediation="Check that the path exists and is readable, then rescan."))
    return FileScan(
        path=str(path),
        format=ctx.formats.get(str(where), "unreadable"),
        issues=tuple(ctx.issues),
        globals={k: tuple(sorted(v)) for k, v in sorted(ctx.globals.items())},
        bytes_inspected=ctx.bytes_inspected,
        size=size,
    )


def scan_stream(stream: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Sniff a seekable stream's format and scan it; the name in ``where`` only breaks ties."""
    dispatch(stream, ctx, where, where.members[-1] if where.members else where.path)


def dispatch(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
    """:func:`scan_stream` with the name used for tie-breaking given explicitly."""
    key = str(where)
    if where.depth > ctx.limits.max_depth:
        ctx.formats[key] = "not-scanned"
        ctx.incomplete("archive.depth_limit", where,
                       f"containers nested deeper than {ctx.limits.max_depth} levels, so this member is not scanned",
                       remediation="Nesting this deep is unusual for a model; unpack it and scan the parts.")
        return
    if ctx.out_of_time():
        ctx.formats[key] = "not-scanned"
        ctx.incomplete("scan.time_limit", where, f"scan time limit of {ctx.limits.max_seconds:g}s reached "
                       "before this content")
        return
    size = stream.seek(0, 2)
    if size == 0:  # an archive of many empty members must stay cheap to scan whole
        ctx.formats[key] = "empty"
        return
    stream.seek(0)
    head = stream.read(HEAD_BYTES)
    fmt = sniff(head, name, size)
    if fmt is None and size >= 22 and not looks_like_text(head):
        stream.seek(max(0, size - 22 - 0xFFFF))
        if ZIP_EOCD in stream.read():
            fmt = "zip"  # data prepended to a zip (a self-extractor or polyglot); zipscan says so
    also_pickle = _also_a_pickle(stream, head, size, fmt)
    if fmt is None and also_pickle:
        fmt, also_pickle = "pickle", False
    also_zip = fmt not in (None, "zip") and ends_in_archive(stream, size)
    ctx.formats[key] = fmt or ("empty" if not head else "text" if looks_like_text(head) else "unknown")
    if fmt is None:
        if is_model_name(name):
            ctx.add(ScanIssue(kind="format.unknown", severity=Severity.MEDIUM, where=where,
                              message="named like a model file but its content matches no known model format",
                              detail={"head": head[:16].hex()},
                              remediation="Find out what produced this file; an unrecognised model cannot be vetted."))
        return
    if also_pickle:
        ctx.add(ScanIssue(kind="format.polyglot", severity=Severity.HIGH, where=where,
                          message=f"the content is both a {fmt} file and a pickle: a loader that unpickles it "
                          f"(pickle, joblib, numpy, legacy torch) runs code a {fmt} reader never sees; scanned as both",
                          detail={"formats": [fmt, "pickle"]},
                          remediation="Do not load this file; re-create it from a trusted source."))
    if also_zip:
        ctx.add(ScanIssue(kind="format.polyglot", severity=Severity.HIGH, where=where,
                          message=f"a zip archive is appended to this {fmt} content: numpy and torch load the "
                          f"{fmt}, Python's zipfile and unzip tools read the archive; scanned as both",
                          detail={"formats": [fmt, "zip"]},
                          remediation="Do not load this file; re-create it from a trusted source."))
    _run(fmt, stream, ctx, where, name)
    if also_pickle:
        _run("pickle", stream, ctx, where, name)
    if also_zip:
        _run("zip", stream, ctx, where, name)


def _also_a_pickle(stream: BinaryIO, head: bytes, size: int, fmt: str | None) -> bool:
    """Whether the whole stream walks as a pickle, where the sniffed format did not say so already."""
    if fmt in ("pickle", "pytorch-legacy") or not head or head_verdict(head, size) == NO:
        return False
    stream.seek(0)
    return verdict(stream) == YES


def _run(fmt: str, stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
    scanner = _SCANNERS.get(fmt)
    try:
        if scanner is None:
            ctx.incomplete("archive.unsupported", where, f"{fmt} archives are not inspected",
                           remediation="Extract the archive and scan its contents.")
        else:
            stream.seek(0)
            scanner(stream, ctx, where, name)
    except Exception as exc:  # noqa: BLE001 — a scanner bug must read as an issue, never as clean
        ctx.add(ScanIssue(kind="scan.internal_error", severity=Severity.HIGH, where=where,
                          message=f"the {fmt} scanner failed ({type(exc).__name__}: {exc}); the content is not vetted",
                          remediation="Treat the file as unvetted; report the failure to the mlwarden maintainers."))


def unavailable(ctx: ScanContext, where: Where, fmt: str) -> None:
    ctx.incomplete("scan.unavailable", where, f"the scanner for {fmt} is unavailable in this installation",
                   remediation="Reinstall mlwarden with all its dependencies, then rescan.")


def _pickle(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
    from .joblibscan import scan_maybe_joblib

    try:
        from .pickle import scan_pickle
    except ImportError:
        unavailable(ctx, where, "pickle")
        return
    scan_maybe_joblib(stream, ctx, where, scan_pickle)


def _formats(module: str, func: str) -> Callable[[BinaryIO, ScanContext, Where, str], None]:
    def run(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
        try:
            mod = __import__(f"mlwarden.scan.formats.{module}", fromlist=[func])
            fn = getattr(mod, func)
        except (ImportError, AttributeError):
            unavailable(ctx, where, module)
            return
        fn(stream, ctx, where)

    return run


def _compressed(kind: str) -> Callable[[BinaryIO, ScanContext, Where, str], None]:
    def run(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
        from .compressed import scan_compressed

        scan_compressed(stream, ctx, where, kind, strip_compression_suffix(name))

    return run


def _lazy(module: str, func: str) -> Callable[[BinaryIO, ScanContext, Where, str], None]:
    def run(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
        mod = __import__(f"mlwarden.scan.{module}", fromlist=[func])
        getattr(mod, func)(stream, ctx, where, name)

    return run


_SCANNERS: dict[str, Callable[[BinaryIO, ScanContext, Where, str], None]] = {
    "pickle": _pickle,
    "pytorch-legacy": _lazy("torchscan", "scan_torch_legacy"),
    "zip": _lazy("zipscan", "scan_zip"),
    "7z": _lazy("sevenzip", "scan_7z"),
    "tar": _lazy("tarscan", "scan_tar"),
    "npy": _lazy("numpyscan", "scan_npy"),
    "safetensors": _formats("safetensors", "scan_safetensors"),
    "gguf": _formats("gguf", "scan_gguf"),
    "hdf5": _formats("keras", "scan_keras_h5"),
    "onnx": _formats("onnx", "scan_onnx"),
    "savedmodel": _formats("savedmodel", "scan_savedmodel_pb"),
    **{k: _compressed(k) for k in ("gzip", "bz2", "xz", "lzma", "zlib", "joblib-zfile")},
}
