"""The console summary (rich): counts, the worst findings, where the reports went.

Everything shown here may come from a scanned file (a global's name, a member's path, an
error message quoting the file), so no string is ever parsed as rich markup or emoji
codes: cells are :class:`rich.text.Text` built by :func:`plain`, which also turns control
characters (C0, DEL, C1, ESC, bidirectional overrides) into visible ``\\xNN`` forms, so
a file cannot restyle the terminal, move the cursor or overwrite a line. Callers that
must pass a markup string use :func:`safe`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..findings import Report, Severity

if TYPE_CHECKING:
    from ..scan import FileScan

_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}
_STATUS = {"pass": "green", "fail": "red", "error": "bold magenta", "skipped": "dim"}

# C0 (newline and tab too: a name with a newline could fake a line of output), DEL, C1 and
# the bidirectional controls that reorder what is displayed ("Trojan Source")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control character replaced by its visible escape."""
    return _CONTROL.sub(_visible, str(text))


def plain(text: object, style: str = "") -> Text:
    """A cell that shows ``text`` exactly (no markup, no emoji codes, no control characters)."""
    return Text(printable(text), style=style)


def safe(text: object) -> str:
    """``text`` for a markup string: control characters made visible, then markup escaped."""
    return escape(printable(text))


def print_summary(report: Report, console: Console, *, max_findings: int = 15) -> None:
    checks = Table(title=plain(f"mlwarden audit of {report.target.name}"), show_lines=False, expand=False)
    checks.add_column("check")
    checks.add_column("status")
    checks.add_column("findings", justify="right")
    checks.add_column("note", overflow="fold", max_width=60)
    for c in report.checks:
        checks.add_row(plain(c.id), plain(c.status, _STATUS[c.status]),
                       plain(len(c.findings) if c.findings else ""),
                       plain(c.message if c.status in ("skipped", "error") else ""))
    console.print(checks)
    found = report.findings
    if found:
        table = Table(title="Findings (worst first)")
        table.add_column("severity")
        table.add_column("check")
        table.add_column("finding", overflow="fold")
        for f in found[:max_findings]:
            table.add_row(plain(f.severity.value, _STYLE[f.severity.value]), plain(f.check), plain(f.title))
        if len(found) > max_findings:
            table.add_row("", "", plain(f"… and {len(found) - max_findings} more in the report"))
        console.print(table)
    counts = report.counts()
    parts: list[Text | str] = []
    for s in Severity:
        if counts[s.value]:
            parts += [", " if parts else "", Text(f"{counts[s.value]} {s.value}", style=_STYLE[s.value])]
    errors = sum(1 for c in report.checks if c.status == "error")
    console.print(Text.assemble(f"{len(found)} finding(s): ", *(parts or ["none"]),
                                *([("; ", ""), (f"{errors} check(s) errored", "bold magenta")] if errors else [])))


def print_scan(scans: Sequence[FileScan], report: Report, console: Console) -> None:
    """``mlwarden scan``'s text output: one line per file, then the summary."""
    for s in scans:
        worst = max((i.severity.rank for i in s.issues), default=-1)
        mark = "ok" if worst <= 0 else "FLAGGED"
        console.print(plain(f"{mark:8} {s.path} ({s.format}, {len(s.issues)} issue(s))"))
    print_summary(report, console)
