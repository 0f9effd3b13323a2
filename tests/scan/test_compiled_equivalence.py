"""The compiled pickle machine and its pure-Python source must report exactly the same.

``setup.py`` compiles ``pickle_machine``, ``pickle_reader`` and ``pickle_values`` with Cython
from the very same ``.py`` files (:mod:`mlwarden.scan.compiled`). These tests hold the two
builds to one behaviour: every issue — id, severity, message, offset, detail — over the
benchmark corpus, the issue-10 reproducers and a few hundred generated and mutated pickles
is identical from both, and the scanner's own tests pass again with the pure-Python modules
(``MLWARDEN_PURE_PYTHON=1``) when this session runs compiled. Both sides run as subprocesses
so each imports its own build.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import pickletools
import random
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mlwarden.scan import compiled

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PURE_RERUN = ["test_pickle.py", "test_pickle_reproducers.py", "test_corpus.py", "test_failclosed.py",
              "test_oracle.py"]

WORKER = r"""
import json, sys
from pathlib import Path
from mlwarden.scan import compiled, scan_path
from mlwarden.scan.policy import Policy

root = Path(sys.argv[1])
scans = []
for path in sorted(p for p in root.rglob("*") if p.is_file()):
    r = scan_path(path, policy=Policy())
    scans.append({"file": str(path.relative_to(root)), "format": r.format,
                  "bytes_inspected": r.bytes_inspected,
                  "globals": {k: sorted(v) for k, v in r.globals.items()},
                  "issues": [[i.kind, str(i.severity), i.message, str(i.where), i.offset,
                              repr(sorted(i.detail.items(), key=repr))] for i in r.issues]})
print(json.dumps({"active": compiled.active(), "scans": scans}))
"""


def _runs_compiled() -> bool:
    return any(compiled.active().values())


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _seeds() -> list[bytes]:
    """Small pickles that exercise every part of the machine, benign and hostile."""
    repro = _load("pickle_reproducers_for_equivalence", HERE / "test_pickle_reproducers.py")
    seeds = [make() for make, _mode in repro.REPRODUCERS.values()]
    objs = [[(i, i * 2.5, str(i)) for i in range(300)], {"a": [1, 2.0, "x", b"y", None, True]},
            OrderedDict(w=np.arange(6.0).reshape(2, 3)), np.array(["s", 1, None], dtype=object),
            {1, 2}, frozenset({"k"}), bytearray(b"ba"), 10**30, -(2**70), "é" * 40, (), [[[]]]]
    for proto in range(6):
        seeds += [pickle.dumps(o, protocol=proto) for o in objs]
    import joblib

    for obj in (np.arange(40, dtype="<f8").reshape(5, 8), np.array([{"x": 1}, "s"], dtype=object),
                {"w": np.ones(7, dtype="S3"), "b": np.zeros(3, dtype=[("a", "<i4"), ("b", "O")])}):
        buf = io.BytesIO()
        joblib.dump(obj, buf)
        seeds.append(buf.getvalue())
    text = b"(I0x1f\nI-012\nL99L\nF1e3\nS'a\\x41'\nVb\\u00e9\np0\ng0\ncos\nsystem\n(S'id'\ntR.\n"
    seeds += [text, b"\x80\x04" + b"\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.", b"\x80\x05\x95"]
    return seeds


_OPCODES = bytes(op.code.encode("latin-1")[0] for op in pickletools.opcodes)


def _mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(b) + 1)
        how = rng.randrange(7)
        if how == 0 and b:
            b[min(at, len(b) - 1)] = rng.randrange(256)
        elif how == 1:
            b[at:at] = bytes([rng.choice(_OPCODES)]) + rng.randbytes(rng.randrange(9))
        elif how == 2:
            del b[at:at + rng.randint(1, 16)]
        elif how == 3:
            del b[at:]
        elif how == 4:
            b[at:at] = b[rng.randrange(len(b) + 1):][:rng.randint(1, 64)]
        elif how == 5:
            other = rng.choice(seeds)
            b[at:] = other[rng.randrange(len(other) + 1):]
        elif b:
            k = min(at, len(b) - 1)
            b[k] = rng.choice(_OPCODES)
    return bytes(b)


def _build(root: Path) -> int:
    corpus = _load("scan_corpus", ROOT / "bench" / "scan_corpus.py")
    corpus.build_corpus(root / "corpus", blob_bytes=1 << 12)
    seeds = _seeds()
    gen = root / "generated"
    gen.mkdir()
    for k, data in enumerate(seeds):
        (gen / f"seed_{k:03d}.pkl").write_bytes(data)
    rng = random.Random(1010)
    for k in range(400):
        (gen / f"mutant_{k:03d}.{rng.choice(['pkl', 'joblib', 'bin'])}").write_bytes(
            _mutate(rng.choice(seeds), rng, seeds))
    return sum(1 for p in root.rglob("*") if p.is_file())


def _scan_all(root: Path, pure: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != compiled.ENV}
    if pure:
        env[compiled.ENV] = "1"
    proc = subprocess.run([sys.executable, "-c", WORKER, str(root)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.skipif(not _runs_compiled(), reason="the compiled pickle machine is not built here (pure Python only)")
def test_compiled_and_pure_python_report_identical_issues(tmp_path: Path) -> None:
    files = _build(tmp_path)
    fast, pure = _scan_all(tmp_path, pure=False), _scan_all(tmp_path, pure=True)
    assert all(fast["active"].values()), \
        f"{fast['active']}: an extension is stale or missing; rebuild with `pip install -e .`"
    assert not any(pure["active"].values()), pure["active"]
    assert len(fast["scans"]) == len(pure["scans"]) == files > 1200
    differ = [(a["file"], a, b) for a, b in zip(fast["scans"], pure["scans"], strict=True) if a != b]
    assert differ == [], differ[:2]
    # the comparison covered what it is for: hostile, benign and broken pickles alike
    kinds = {i[0] for s in pure["scans"] for i in s["issues"]}
    assert {"pickle.global.dangerous", "pickle.parse_error"} <= kinds
    assert sum(not s["issues"] for s in pure["scans"]) >= 20


@pytest.mark.skipif(not _runs_compiled(), reason="this session already runs the pure-Python pickle machine")
def test_scanner_tests_pass_with_the_pure_python_modules() -> None:
    env = {**os.environ, compiled.ENV: "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           *[str(HERE / f) for f in PURE_RERUN]],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_the_switch_forces_every_module_to_its_source() -> None:
    env = {**os.environ, compiled.ENV: "1"}
    code = "import json; from mlwarden.scan import compiled; print(json.dumps(compiled.active()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    assert json.loads(out.stdout) == {m: False for m in compiled.MODULES}


def test_a_stale_or_unstamped_extension_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for m in compiled.MODULES:
        (tmp_path / f"{m}.py").write_text(f"# {m}\n")
    monkeypatch.setattr(compiled, "_HERE", tmp_path)
    monkeypatch.delenv(compiled.ENV, raising=False)
    assert compiled.source_only() == frozenset(compiled.MODULES)  # no stamp: nothing was built here
    digest = {m: compiled.source_digest(tmp_path / f"{m}.py") for m in compiled.MODULES}
    stale = compiled.MODULES[0]
    (tmp_path / compiled.STAMP).write_text("".join(f"{m} {'0' * 64 if m == stale else d}\n"
                                                   for m, d in digest.items()))
    assert compiled.source_only() == frozenset({stale})
    (tmp_path / f"{stale}.py").write_text("# edited after the build\n")
    (tmp_path / compiled.STAMP).write_text("".join(f"{m} {d}\n" for m, d in digest.items()))
    assert compiled.source_only() == frozenset({stale})
    monkeypatch.setenv(compiled.ENV, "1")
    assert compiled.source_only() == frozenset(compiled.MODULES)


def test_the_cython_stand_in_leaves_functions_unchanged() -> None:
    def f(x: int) -> int:
        return x + 1

    assert compiled.cython_shim.locals(i=compiled.cython_shim.Py_ssize_t, op=compiled.cython_shim.int)(f) is f
    assert compiled.cython_shim.compiled is False
