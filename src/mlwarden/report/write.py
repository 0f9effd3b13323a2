"""Writing a report set to a folder so that readers never see a mixed or partial set.

Every format is rendered first (a formatter that fails writes nothing), each file goes to a
temporary name in the target folder and is flushed, and then — holding an exclusive lock on
the folder, so that two audits writing into one ``--out`` take turns — every file is renamed
into place. A reader sees the old set or the new one; two writers leave one writer's set.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..findings import Report
from . import Format

LOCK_NAME = ".mlwarden-report.lock"


def write_reports(report: Report, out: Path, formats: Sequence[Format]) -> list[Path]:
    """Render ``formats`` of ``report`` into ``out``; the paths written. OSError on I/O failure."""
    rendered = [(f.filename, f.render(report)) for f in (fmt.formatter() for fmt in formats)]
    out.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in rendered:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
            staged.append((tmp, out / name))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        with _locked(out):
            for tmp, final in staged:
                os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [final for _, final in staged]


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
