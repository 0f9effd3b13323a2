"""Trampolines: allowlisted callables that call an argument, derived from their code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from mlwarden.scan.policy import ArgRef, trampolines

ROOT = Path(__file__).resolve().parents[2]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--check"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.skipif(not HAS_TORCH, reason="the committed tables were derived with torch installed")
@pytest.mark.parametrize("script", ["gen_trampolines.py", "gen_torch_allowlist.py"])
def test_generated_tables_match_the_installed_libraries(script: str) -> None:
    done = _run(script)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "in sync"


@pytest.mark.parametrize(("name", "ref"), [
    ("pandas.core.indexes.interval._new_IntervalIndex", ArgRef(0, "from_arrays")),
    ("copyreg._reconstructor", ArgRef(1, "__init__")),
    ("copyreg._reconstructor", ArgRef(1, "__new__")),
    ("copy_reg._reconstructor", ArgRef(1, "__init__")),  # protocol 0-2 spelling
    ("numpy.random._pickle.__generator_ctor", ArgRef(1)),
    ("numpy.random._pickle.__bit_generator_ctor", ArgRef(0)),
    ("collections.defaultdict", ArgRef(0)),  # by hand: C, calls its factory
    ("builtins.dict", ArgRef(0, "keys")),
    ("numpy.sum", ArgRef(0, "sum")),  # getattr(obj, method) with the name passed as a constant
    ("sklearn.neighbors._kd_tree.newObj", ArgRef(0, "__new__")),
])
def test_known_trampolines_are_listed(name: str, ref: ArgRef) -> None:
    assert ref in trampolines(name)


@pytest.mark.skipif(not HAS_TORCH, reason="torch rows come from torch's code")
def test_torch_rebuild_from_type_calls_its_first_argument() -> None:
    assert ArgRef(0) in trampolines("torch._tensor._rebuild_from_type_v2")
    assert trampolines("torch._utils._rebuild_tensor_v2") == ()


def test_plain_callables_call_nothing_and_lookups_import_nothing() -> None:
    code = ("import sys; from mlwarden.scan.policy import trampolines;"
            " assert trampolines('builtins.bytearray') == ();"
            " assert trampolines('os.system') == ();"
            " assert trampolines('copyreg._reconstructor');"
            " print(sorted(m for m in ('pandas', 'torch', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_argref_is_frozen() -> None:
    with pytest.raises(AttributeError):
        ArgRef(0).index = 1  # type: ignore[misc]
