"""Report sets are written whole: never a partial set, never a mix of two audits."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from pathlib import Path

import pytest

from mlwarden.findings import Report, Target
from mlwarden.report import Format
from mlwarden.report.write import write_reports

FORMATS = [Format.HTML, Format.JSON, Format.SARIF]  # each names the target


def _report(name: str) -> Report:
    return Report(tool_version="0", target=Target(name=name), started_at="2026-12-07T00:00:00+00:00",
                  duration_s=0.0, checks=())


def _writer(name: str, out: str, rounds: int) -> None:
    for _ in range(rounds):
        write_reports(_report(name), Path(out), FORMATS)


def test_two_writers_leave_one_writers_set(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(name, str(tmp_path), 30)) for name in ("alpha", "bravo")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    files = {p.name: p.read_text() for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert sorted(files) == ["report.html", "report.json", "report.sarif"]
    winners = {name for name in ("alpha", "bravo") if all(name in text for text in files.values())}
    assert len(winners) == 1, "the folder holds a mix of two audits' reports"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failing_format_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    write_reports(_report("old"), tmp_path, FORMATS)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    from mlwarden.report import sarif

    def broken(self, report):
        raise RuntimeError("boom")

    monkeypatch.setattr(sarif.SarifFormat, "render", broken)
    with pytest.raises(RuntimeError):
        write_reports(replace(_report("new")), tmp_path, FORMATS)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
