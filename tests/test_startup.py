"""``mlwarden scan`` of a small pickle starts instantly: it imports no heavy library.

Pre-commit hooks run the scanner on every commit, so its path must not pay for the data
checks' scipy, pandas, pyarrow or scikit-learn. Each case runs the real command as a whole
process under ``python -X importtime`` and asserts on the modules it imported — never on
times (bench/bench_scan.py prints those).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "scipy", "pyarrow", "sklearn", "numpy", "torch", "jinja2", "dask", "yaml", "cryptography")


def imported_by(*args: str, cwd: Path) -> tuple[int, set[str]]:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlwarden", *args], capture_output=True,
                       text=True, timeout=120, cwd=cwd, check=False)
    modules = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "mlwarden.cli" in modules, r.stderr[-2000:]
    return r.returncode, modules


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.pkl"
    path.write_bytes(pickle.dumps({"weights": [0.5, 1.5], "name": "m", "shape": (2,)}, protocol=4))
    return path


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_scan_of_a_small_pickle_imports_no_heavy_library(small: Path, tmp_path: Path, fmt: str) -> None:
    code, modules = imported_by("scan", str(small), "--format", fmt, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert code == 0
    assert not tops(modules) & set(HEAVY), sorted(tops(modules) & set(HEAVY))
    # only the artifact family of checks loads; the spec's pydantic models are not built
    assert {m for m in modules if m.startswith("mlwarden.checks.")} <= {
        "mlwarden.checks.artifact", "mlwarden.checks.artifact.families", "mlwarden.checks.artifact.scanning",
        "mlwarden.checks.common"}
    assert "mlwarden.spec" not in modules and "mlwarden.sources.datasets" not in modules


def test_scan_of_a_folder_and_a_dangerous_pickle_stays_light(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "a.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    (folder / "evil.pkl").write_bytes(b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00idq\x00\x85R.")
    code, modules = imported_by("scan", str(folder), cwd=tmp_path)
    assert code == 1
    assert not tops(modules) & set(HEAVY)


def test_version_and_explain_stay_light(tmp_path: Path) -> None:
    code, modules = imported_by("--version", cwd=tmp_path)
    assert code == 0 and not tops(modules) & set(HEAVY)
    code, modules = imported_by("checks", "--explain", "artifact.integrity", cwd=tmp_path)
    assert code == 0 and not tops(modules) & set(HEAVY)
