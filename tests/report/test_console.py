"""The console output shows names from scanned files exactly and safely.

Pickles generated here name globals that carry rich markup (``[/nope]``, ``[link=…]``),
emoji codes, ANSI escapes, carriage returns and bidi overrides, in a folder named ``d[``;
``mlwarden scan`` runs as a whole process and its stdout is checked byte for byte.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from mlwarden.findings import CheckResult, Finding, Location, Report, Severity, Target
from mlwarden.report.console import plain, print_summary, printable, safe


def global_pickle(module: str, name: str) -> bytes:
    """Protocol 4: import ``module.name`` by STACK_GLOBAL and call it with no arguments."""
    m, n = module.encode(), name.encode()
    return b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n + b"\x93)R."


HOSTILE = {
    "markup.pkl": "x[/nope]",
    "link.pkl": "[link=http://x]y[/link]",
    "ansi.pkl": "red\x1b[31mtext",
    "cr.pkl": "over\rwrite",
    "emoji.pkl": "a:skull:b",
    "bidi.pkl": "abc\u202edef",
}


def _scan(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb"}  # wide, so finding titles are not folded
    return subprocess.run([sys.executable, "-m", "mlwarden", "scan", *args], capture_output=True,
                          timeout=120, env=env, check=False)


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "d["
    folder.mkdir()
    for fname, name in HOSTILE.items():
        (folder / fname).write_bytes(global_pickle("mypkg", name))
    (folder / "danger.pkl").write_bytes(global_pickle("os", "sys\x1b]8;;http://x\x1b\\tem"))
    return folder


def test_hostile_names_are_shown_exactly_and_never_reach_the_terminal_raw(hostile_dir: Path) -> None:
    r = _scan(str(hostile_dir))
    out = r.stdout.decode("utf-8")
    assert r.returncode == 1, r.stderr.decode()  # flagged (critical os.*), not an internal error
    assert b"internal error" not in r.stderr
    for ch in ("\x1b", "\r", "\u202e", "\x9b"):
        assert ch not in out, f"raw {ch!r} reached stdout"
    # the folder and every name appear as they are (control characters in visible form)
    assert f"{hostile_dir}/markup.pkl" in out
    assert "mypkg.x[/nope]" in out
    assert "mypkg.[link=http://x]y[/link]" in out
    assert "mypkg.red\\x1b[31mtext" in out
    assert "mypkg.over\\x0dwrite" in out
    assert "mypkg.a:skull:b" in out and "\N{SKULL}" not in out
    assert "mypkg.abc\\u202edef" in out
    assert "os.sys\\x1b]8;;http://x\\x1b\\tem" in out


def test_unwritable_out_is_one_line_exit_2(hostile_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "scan.txt"
    for fmt in ("text", "json"):
        r = _scan(str(hostile_dir), "--format", fmt, "--out", str(target))
        assert r.returncode == 2
        assert r.stderr.decode().strip().splitlines() == [
            f"mlwarden: error: {target}: cannot write the report: No such file or directory"]


def test_text_out_file_holds_the_same_safe_text(hostile_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "scan.txt"
    r = _scan(str(hostile_dir / "ansi.pkl"), "--out", str(target))
    assert r.returncode == 1 and r.stdout == b""
    text = target.read_text(encoding="utf-8")
    assert "\x1b" not in text and "mypkg.red\\x1b[31mtext" in text


@pytest.mark.parametrize("raw,shown", [
    ("x[/nope]", "x[/nope]"), ("a\x1bb", "a\\x1bb"), ("a\nb\tc", "a\\x0ab\\x09c"), ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),
    ("\u2066x\u2069", "\\u2066x\\u2069"), ("héllo ✓", "héllo ✓"),
])
def test_printable_and_plain(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(plain(raw))
    assert buf.getvalue() == shown + "\n"


def test_safe_escapes_markup_for_markup_strings() -> None:
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(f"[bold]{safe('[/nope] [link=http://x]y[/link]')}[/]")
    assert buf.getvalue() == "[/nope] [link=http://x]y[/link]\n"


def test_summary_of_hostile_report_renders_every_field_literally() -> None:
    nasty = "[/x] [red]r[/red] :skull: \x1b[2J"
    finding = Finding(id="f1", check="artifact.code_execution", severity=Severity.HIGH, title=nasty,
                      description=nasty, remediation="", location=Location(artifact=nasty))
    report = Report(tool_version="0", target=Target(name=nasty), started_at="2024-01-01T00:00:00",
                    duration_s=0.0, checks=(
                        CheckResult(id="artifact.code_execution", title="t", status="fail", findings=(finding,)),
                        CheckResult(id="artifact.integrity", title="t", status="error", message=nasty)))
    buf = io.StringIO()
    print_summary(report, Console(file=buf, width=400, color_system="truecolor", force_terminal=True))
    out = buf.getvalue()
    assert "\x1b[2J" not in out and "\\x1b[2J" in out
    assert out.count("[/x] [red]r[/red] :skull: ") == 3  # the target, the error note and the finding
    assert "1 check(s) errored" in out
