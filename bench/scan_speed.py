"""Whole-process speed rows for bench_scan.py: every tool, one process, the same file.

``python bench/bench_scan.py --speed [--dir DIR]`` prints one table: for each file, each
scanner (``mlwarden scan``, ``picklescan --path``, ``modelscan -p``) runs as a whole process
under ``/usr/bin/time``; wall seconds and peak RSS are the median of ``--repeat`` runs. Rows:

- the small-file start-up: a 100-byte plain pickle (what a pre-commit hook pays per file);
- the opcode-heavy pickle: protocol 4, 3M small tuples (~54 MB), the walker's worst case;
- the corpus in one process per tool (a folder of every generated file), when ``--dir``
  holds one from a detection run.

Nothing is imported from mlwarden here: the numbers include interpreter start and imports,
as for the peers.
"""

from __future__ import annotations

import pickle
import statistics
import subprocess
import tempfile
from pathlib import Path


def write_small(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"weights": [0.5, 1.5, 2.5], "name": "small", "shape": (3,)}, protocol=4))
    return path


def write_opcode_heavy(path: Path, n: int = 3_000_000) -> Path:
    """Protocol 4, ``n`` small tuples (int, float, str) in one list: ~18 bytes of opcodes each."""
    path.write_bytes(pickle.dumps([(i, i / 3, "x") for i in range(n)], protocol=4))
    return path


def timed(cmd: list[str], timeout: float) -> tuple[float, float, int]:
    """(wall s, peak RSS MiB, exit code) of one whole process, from GNU time."""
    with tempfile.TemporaryDirectory() as cwd:
        try:
            proc = subprocess.run(["/usr/bin/time", "-f", "@@ %e %M", *cmd], capture_output=True, text=True,
                                  timeout=timeout, cwd=cwd, errors="replace", check=False)
        except subprocess.TimeoutExpired:
            return float("nan"), float("nan"), -1
    line = next((ln for ln in reversed(proc.stderr.splitlines()) if ln.startswith("@@ ")), "@@ nan nan")
    _, wall, rss = line.split()
    return float(wall), float(rss) / 1024, proc.returncode


def speed_table(tools: dict[str, list[str]], files: dict[str, Path], repeat: int, timeout: float) -> str:
    """``tools``: name → argv prefix (the path is appended). ``files``: row label → file or folder."""
    lines = ["| file | size | " + " | ".join(f"{t} wall s / peak RSS MiB" for t in tools) + " |",
             "|---|---:|" + "---:|" * len(tools)]
    for label, path in files.items():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
        cells = []
        for cmd in tools.values():
            runs = [timed([*cmd, str(path)], timeout) for _ in range(repeat)]
            wall = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            cells.append(f"{wall:.2f} / {rss:.0f} (exit {runs[-1][2]})")
        lines.append(f"| {label} | {size / 1e6:.2f} MB | " + " | ".join(cells) + " |")
    return "\n".join(lines)
