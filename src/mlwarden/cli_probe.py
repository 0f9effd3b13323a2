"""``mlwarden probe URL``: pen-test a live OIP v2 endpoint and report it as the ``endpoint.*`` checks.

Kept apart from cli.py, which registers the command with a thin Typer wrapper around
:func:`probe_command`. The report is the audit's (``mlwarden.report/1`` JSON, SARIF, or text);
every check's metrics carry the requests it sent, the budget and its time, and the text
output starts with the whole probe's figures.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .errors import MlwardenError
from .findings import CheckResult, CheckStatus, Report, Severity, Target
from .probe.base import ProbeOptions
from .probe.runner import ProbeRun, run_probe

KEY_ENV = "MLWARDEN_ENDPOINT_KEY"
FORMATS = ("text", "json", "sarif")


def probe_report(run: ProbeRun) -> Report:
    """The probe's findings as the report of the ``endpoint.*`` checks."""
    from .checks.endpoint.probes import CHECKS

    results = []
    for cls in CHECKS:
        fam = run.families.get(cls.id.split(".", 1)[1])
        if fam is None:
            continue
        out = cls.outcome(cls(None, None), fam, run.target.display)  # type: ignore[arg-type]  # no spec: a probe
        bad = any(f.severity.rank for f in out.findings)
        status: CheckStatus = "fail" if bad else ("skipped" if fam.skipped and not out.findings else "pass")
        results.append(CheckResult(id=cls.id, title=cls.title, status=status, duration_s=fam.metrics.get("seconds", 0.0),
                                   metrics=out.metrics, message=fam.skipped, findings=tuple(out.findings)))
    return Report(tool_version=__version__, target=Target(name=run.target.display), started_at=run.started_at,
                  duration_s=run.seconds, checks=tuple(results), stages={"serving": [c.id for c in results]},
                  docs={c.id: c.doc() for c in CHECKS}, references={c.id: tuple(c.references) for c in CHECKS})


def options(*, key: str | None, max_requests: int, rate: float, timeout_s: float = 10.0, time_limit_s: float = 180.0,
            ca: Path | None = None, example: Path | None = None) -> ProbeOptions:
    """ProbeOptions from the flags; MlwardenError (one line) for a bad value or file."""
    body: dict[str, Any] | None = None
    if example is not None:
        try:
            body = json.loads(example.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise MlwardenError(f"{example}: cannot read the example request ({e})") from None
        from .probe.payloads import from_body

        try:
            from_body(body)  # type: ignore[arg-type]
        except ValueError as e:
            raise MlwardenError(f"{example}: {e}") from None
    if ca is not None and not ca.is_file():
        raise MlwardenError(f"{ca}: no such CA file")
    try:
        return ProbeOptions(key=key or os.environ.get(KEY_ENV) or None, max_requests=max_requests, rate=rate,
                            timeout_s=timeout_s, time_limit_s=time_limit_s, ca_file=str(ca) if ca else None,
                            example=body)
    except ValueError as e:
        raise MlwardenError(str(e)) from None


def probe_command(url: str, *, key: str | None = None, max_requests: int = 200, rate: float = 20.0,
                  format: str = "text", out: Path | None = None, fail_on: str = "high", ca: Path | None = None,
                  example: Path | None = None, timeout_s: float = 10.0, time_limit_s: float = 180.0) -> int:
    """Run the probe and write its report; the exit code (0, 1 at or above ``fail_on``, 3 on a check error)."""
    fmt = format.strip().lower()
    if fmt not in FORMATS:
        raise MlwardenError(f"unknown format {format!r}; use one of: {', '.join(FORMATS)}")
    threshold = _threshold(fail_on)
    opts = options(key=key, max_requests=max_requests, rate=rate, timeout_s=timeout_s, time_limit_s=time_limit_s,
                   ca=ca, example=example)
    t0 = time.perf_counter()
    run = run_probe(url, opts)
    report = probe_report(run)
    text = render(report, run, fmt)
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as e:
            raise MlwardenError(f"{out}: cannot write the report: {e.strerror or e}") from e
    print(f"mlwarden probe: {run.summary()}; {time.perf_counter() - t0:.1f} s in all", file=sys.stderr)
    if threshold is not None and report.exit_code(threshold):
        return 1
    return 3 if any(c.status == "error" for c in report.checks) else 0


def _threshold(text: str) -> Severity | None:
    if text.strip().lower() in ("none", "never"):
        return None
    try:
        return Severity.parse(text)
    except ValueError as e:
        raise MlwardenError(f"--fail-on: {e}") from None


def render(report: Report, run: ProbeRun, fmt: str) -> str:
    if fmt == "json":
        from .report.json import JsonFormat

        doc = json.loads(JsonFormat().render(report))
        doc["probe"] = {"requests": run.requests, "budget": run.options.max_requests, "rate": run.options.rate,
                        "seconds": round(run.seconds, 3), "time_limit_s": run.options.time_limit_s}
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "sarif":
        from .report.sarif import SarifFormat

        return SarifFormat().render(report)
    from rich.console import Console

    from .report.console import print_summary

    buf = io.StringIO()
    console = Console(file=buf, highlight=False, soft_wrap=True, markup=False, emoji=False, width=120)
    console.print(f"mlwarden probe of {run.target.display}: {run.summary()}")
    print_summary(report, console)
    for c in report.checks:
        m = c.metrics
        console.print(f"  {c.id}: {m.get('requests', 0)} requests, {m.get('seconds', 0):.2f} s"
                      + (" (stopped early)" if m.get("stopped_early") else "")
                      + (f" — not tested: {c.message}" if c.message else ""))
    return buf.getvalue()
