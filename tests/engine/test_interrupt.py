"""Ctrl-C mid-audit: exit 130, no report, no traceback, and no worker process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# Force the process pool on small data: partitions of 2,000 rows, no in-process shortcut.
_RUN = ("import sys; from mlwarden.engine import local; from mlwarden.sources import datasets;"
        "local.INPROCESS_BYTES = 0; datasets.PARTITION_ROWS = 2000;"
        "from mlwarden.cli import main; sys.exit(main(sys.argv[1:]))")


def _group(pgid: int) -> list[str]:
    return subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()


# Ctrl-C early in the fold, while workers send their states back (a worker stopped mid-send
# once left the pool's manager thread waiting forever: the audit hung at exit), and later.
@pytest.mark.parametrize("after_s", [0.5, 1.5, 3.0])
def test_interrupt_stops_every_worker_quietly(tmp_path: Path, after_s: float) -> None:
    rng = np.random.default_rng(0)
    n = 300_000
    table = pa.table({**{f"f{i}": rng.normal(size=n) for i in range(6)},
                      "c": rng.choice(["a", "b", "c"], n), "label": rng.integers(0, 2, n)})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2000)
    (tmp_path / "s.yaml").write_text("name: big\ndata: {train: t.parquet, test: t.parquet, label: label}\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _RUN, "audit", str(tmp_path / "s.yaml"), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_group(proc.pid)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # wait until the pool's workers run (main + forkserver + workers)
        assert proc.poll() is None, "the audit ended before the pool started; make the data larger"
        assert len(_group(proc.pid)) >= 3
        time.sleep(after_s)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not out.exists() or not any(out.iterdir())
    for _ in range(50):
        if not _group(proc.pid):
            break
        time.sleep(0.1)
    assert _group(proc.pid) == [], "worker processes outlived the audit"
