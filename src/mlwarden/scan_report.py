"""The scan loop behind ``mlwarden scan``: paths → scanner → artifact findings → a report.

Kept apart from the command line (which only parses and maps errors to exit codes) and
light on purpose: pre-commit hooks run ``mlwarden scan`` on every commit, so this path
imports the scanner, the artifact checks and the formatter it writes — no data checks,
no pandas, scipy or pyarrow (tests/test_startup.py holds it to that).
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .errors import MlwardenError
from .findings import CheckResult, Report, Target
from .report import Formatter, parse_formats
from .scan import FileScan, ScanIssue

TEXT = "text"


def scan_formatter(fmt: str) -> Formatter | None:
    """The formatter for ``--format`` (None for the console text); ValueError names the choices."""
    name = fmt.strip().lower()
    if name == TEXT:
        return None
    formats = parse_formats(name)
    if len(formats) != 1:
        raise ValueError(f"give one format, not {fmt!r}")
    return formats[0].formatter()


def run_scan(paths: Sequence[Path], *, allow: Sequence[str] = ()) -> tuple[list[FileScan], Report]:
    """Scan files and folders and report them as the audit's artifact.* checks would."""
    from .checks.artifact.families import FAMILIES, group
    from .registry import all_checks
    from .scan import scan_paths
    from .scan.policy import Policy

    for p in paths:
        if not p.exists() and not p.is_symlink():
            raise MlwardenError(f"{p}: no such file or folder")
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    scans = scan_paths(paths, policy=Policy(allow=allow))
    infra = None
    if _has_infra(paths):  # Dockerfiles, manifests, platform configs, image tarballs: the infra.* rules
        from .infra.scan import scan_infra_full

        infra = scan_infra_full(paths)
        scans = _without_image_layers(scans, [p for p, kind in infra.files.items() if kind == "image"])
    grouped = group(scans, str)
    results = [
        CheckResult(id=f.id, title=f.title, status="fail" if any(x.severity.rank for x in grouped[f.id][0]) else "pass",
                    metrics=grouped[f.id][1], findings=tuple(grouped[f.id][0]))
        for f in FAMILIES
    ]
    checks = list(all_checks(["artifact.*"]).values())
    stages = {"artifact": [f.id for f in FAMILIES]}
    if infra is not None:
        for cls in all_checks(["infra.*"]).values():
            out = cls.outcome(cls(None, None), infra, str)  # type: ignore[attr-defined,arg-type]
            results.append(CheckResult(id=cls.id, title=cls.title, metrics=out.metrics, findings=tuple(out.findings),
                                       status="fail" if any(f.severity.rank for f in out.findings) else "pass"))
            checks.append(cls)
        stages["serving"] = [c.id for c in checks if c.id.startswith("infra.")]
    report = Report(tool_version=__version__, target=Target(name=" ".join(map(str, paths))),
                    started_at=started.isoformat(timespec="seconds"), duration_s=time.perf_counter() - t0,
                    checks=tuple(results), stages=stages,
                    docs={c.id: c.doc() for c in checks},
                    references={c.id: tuple(c.references) for c in checks})
    return scans, report


def _without_image_layers(scans: list[FileScan], images: list[str]) -> list[FileScan]:
    """The scans less what they found inside the layers of container images, which
    ``infra.images`` reports: it reads the layers as a container sees them (a model a later
    layer deletes is buried, not present) and names each model file's layer. Both reported the
    same model files, once as archive members at critical and once as image files. What the
    archive scan found on the image file itself, or in a member that is no layer (a stray file
    in a ``docker save`` tarball, a blob of an OCI folder that is not an archive), stays."""
    if not images:
        return scans
    tarballs = {os.path.abspath(p) for p in images if not os.path.isdir(p)}
    folders = tuple(os.path.abspath(p) + os.sep for p in images if os.path.isdir(p))

    def in_layer(issue: ScanIssue) -> bool:
        path, members = os.path.abspath(issue.where.path), issue.where.members
        return (path in tarballs and len(members) >= 2) or (path.startswith(folders) and len(members) >= 1)

    out = []
    for fs in scans:
        kept = tuple(i for i in fs.issues if not in_layer(i))
        out.append(fs if len(kept) == len(fs.issues) else dataclasses.replace(fs, issues=kept))
    return out


def _has_infra(paths: Sequence[Path]) -> bool:
    """Whether any file under ``paths`` is an infra file (by name and content; cheap: no parser loads)."""
    from .infra.detect import HEAD_BYTES, looks_like_infra

    def files() -> Iterator[Path]:
        for p in paths:
            if p.is_dir():
                for folder, dirs, names in os.walk(p):
                    if "oci-layout" in names and "index.json" in names:
                        yield Path(folder)  # an OCI image layout: a folder, not a file, is the image
                        dirs[:] = []
                        continue
                    dirs.sort()
                    yield from (Path(folder) / n for n in sorted(names))
            else:
                yield p

    for f in files():
        if f.is_dir():
            if looks_like_infra(f, b""):
                return True
            continue
        try:
            with open(f, "rb") as fh:
                head = fh.read(HEAD_BYTES)
        except OSError:
            continue
        if looks_like_infra(f, head):
            return True
    return False


def write_scan(scans: Sequence[FileScan], report: Report, formatter: Formatter | None, out: Path | None) -> None:
    """Write the report to ``out`` (or stdout); a path that cannot be written is bad input."""
    if formatter is None:
        from rich.console import Console

        from .report.console import print_scan

        if out is None:
            print_scan(scans, report, Console(highlight=False, soft_wrap=True))
            return
        buffer = io.StringIO()
        print_scan(scans, report, Console(file=buffer, highlight=False, soft_wrap=True))
        text = buffer.getvalue()
    else:
        text = formatter.render(report)
        if out is None:
            sys.stdout.write(text)
            return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise MlwardenError(f"{out}: cannot write the report: {e.strerror or e}") from e
