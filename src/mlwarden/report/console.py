"""The console summary (rich): counts, the worst findings, where the reports went."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..findings import Report, Severity

_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}
_STATUS = {"pass": "green", "fail": "red", "error": "bold magenta", "skipped": "dim"}


def print_summary(report: Report, console: Console, *, max_findings: int = 15) -> None:
    checks = Table(title=f"mlwarden audit of {report.target.name}", show_lines=False, expand=False)
    checks.add_column("check")
    checks.add_column("status")
    checks.add_column("findings", justify="right")
    checks.add_column("note", overflow="fold", max_width=60)
    for c in report.checks:
        checks.add_row(c.id, f"[{_STATUS[c.status]}]{c.status}[/]", str(len(c.findings)) if c.findings else "",
                       c.message if c.status in ("skipped", "error") else "")
    console.print(checks)
    found = report.findings
    if found:
        table = Table(title="Findings (worst first)")
        table.add_column("severity")
        table.add_column("check")
        table.add_column("finding", overflow="fold")
        for f in found[:max_findings]:
            table.add_row(f"[{_STYLE[f.severity.value]}]{f.severity.value}[/]", f.check, f.title)
        if len(found) > max_findings:
            table.add_row("", "", f"… and {len(found) - max_findings} more in the report")
        console.print(table)
    counts = report.counts()
    parts = [f"[{_STYLE[s.value]}]{counts[s.value]} {s.value}[/]" for s in Severity if counts[s.value]]
    errors = sum(1 for c in report.checks if c.status == "error")
    console.print(f"{len(found)} finding(s): " + (", ".join(parts) or "none")
                  + (f"; [bold magenta]{errors} check(s) errored[/]" if errors else ""))
