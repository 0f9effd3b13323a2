"""Where an image's blobs live: an uncompressed tarball read in place, or an OCI layout folder.

A ``docker save`` tarball (legacy or Docker ≥ 25) and an OCI layout packed as a tar are
indexed by member headers alone (``tarfile`` seeks over the data), and a blob is then a
read-only window on the tarball: nothing is extracted, nothing large is held in memory.
An OCI layout unpacked as a folder is read file by file, never following a link out.
Problems with the outer archive itself (names climbing out, links) are reported here.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Self

from ..findings import Severity
from ..scan.ziputil import member_name_problem
from .base import InfraIssue

Report = Callable[[InfraIssue], None]


class _Window:
    """A read-only, seekable view of ``[start, end)`` of an open file."""

    def __init__(self, fh: BinaryIO, start: int, end: int) -> None:
        self._fh, self._start, self._end, self._pos = fh, start, end, 0

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._start - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(n)
        self._pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._end - self._start}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        """The window shares the store's file handle, which the store closes."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobStore:
    """Named blobs (``manifest.json``, ``blobs/sha256/…``): their size and a stream on each."""

    label: str

    def names(self) -> set[str]:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying file."""


def normalize(name: str) -> str:
    """A member name as the archive's readers resolve it: no ``./``, no leading or trailing slash."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


class TarStore(BlobStore):
    """An uncompressed tarball, indexed by its headers and read in place."""

    def __init__(self, path: Path, report: Report, *, max_members: int) -> None:
        self.label = str(path)
        self._fh = open(path, "rb")  # noqa: SIM115 — held until close(); windows read through it
        self._index: dict[str, tuple[int, int]] = {}
        try:
            tar = tarfile.open(fileobj=self._fh, mode="r:")  # noqa: SIM115 (closing it would not close _fh)
            count = 0
            while (info := tar.next()) is not None:
                count += 1
                tar.members = []  # type: ignore[attr-defined]  # the index below is all we keep; a million TarInfos would not be small
                self._check(info, report)
                if info.isfile():
                    self._index[normalize(info.name)] = (info.offset_data, info.size)
                if count >= max_members:
                    report(incomplete(self.label, f"the image archive has more than {max_members} members; "
                                       "the rest are not read"))
                    break
        except (tarfile.TarError, OSError, ValueError) as exc:
            report(incomplete(self.label, f"the image archive is corrupt after {len(self._index)} files ({exc})"))
        self._end = os.fstat(self._fh.fileno()).st_size

    def _check(self, info: tarfile.TarInfo, report: Report) -> None:
        problem = member_name_problem(info.name)
        if problem:
            report(InfraIssue(rule="infra.image.archive.path_traversal", severity=Severity.HIGH,
                              path=f"{self.label}!/{info.name}",
                              message=f"image archive member {info.name!r} {problem}; unpacking it writes outside "
                              "the target folder", evidence={"member": info.name},
                              remediation="Do not unpack this archive; rebuild the image from a trusted source."))
        if info.issym() or info.islnk():
            report(InfraIssue(rule="infra.image.archive.link", severity=Severity.MEDIUM,
                              path=f"{self.label}!/{info.name}",
                              message=f"image archive member {info.name!r} is a link to {info.linkname!r}; "
                              "image archives hold plain files", evidence={"target": info.linkname},
                              remediation="Rebuild the image archive with `docker save` or an OCI tool."))

    def names(self) -> set[str]:
        return set(self._index)

    def size(self, name: str) -> int:
        return self._index[name][1]

    def open(self, name: str) -> BinaryIO:
        start, size = self._index[name]
        return _Window(self._fh, start, min(start + size, self._end))  # type: ignore[return-value]

    def close(self) -> None:
        self._fh.close()


class DirStore(BlobStore):
    """An OCI image layout unpacked as a folder (``oci-layout``, ``index.json``, ``blobs/``)."""

    def __init__(self, root: Path, report: Report) -> None:
        self.label = str(root)
        self._root = root.resolve()
        self._names: set[str] = set()
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
                path = Path(folder) / name
                rel = path.relative_to(root).as_posix()
                if path.is_symlink():
                    report(InfraIssue(rule="infra.image.archive.link", severity=Severity.MEDIUM,
                                      path=f"{self.label}/{rel}", evidence={"target": os.readlink(path)},
                                      message=f"{rel} in the image layout is a symbolic link; it is not followed",
                                      remediation="Copy the blob into the layout instead of linking it."))
                elif path.is_file():
                    self._names.add(rel)

    def names(self) -> set[str]:
        return set(self._names)

    def size(self, name: str) -> int:
        return (self._root / name).stat().st_size

    def open(self, name: str) -> BinaryIO:
        return open(self._root / name, "rb")


def open_store(path: Path, report: Report, *, max_members: int) -> BlobStore:
    return DirStore(path, report) if path.is_dir() else TarStore(path, report, max_members=max_members)


def incomplete(path: str, why: str) -> InfraIssue:
    return InfraIssue(rule="infra.image.incomplete", severity=Severity.HIGH, path=path,
                      message=f"{why}; image not fully scanned", evidence={},
                      remediation="Treat the image as unvetted; re-export it with `docker save` and rescan.")

