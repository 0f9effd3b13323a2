"""The loader oracle: whatever the real loader resolves and the allowlist does not admit, the scan reports.

Pickles are generated from a grammar of valid opcodes (globals drawn from allowlisted,
unknown and dangerous names, reached by GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE, NEWOBJ,
BUILD, the memo and frames) and real pickle, joblib, torch and npz files are mutated byte
by byte. Each file is loaded in a subprocess (tests/scan/oracle_worker.py) by the *real*
loader — ``pickle.Unpickler``, ``joblib.load``, ``torch.load(weights_only=False)``,
``numpy.load(allow_pickle=True)`` — whose ``find_class`` only records, so nothing runs.

The property, per resolved global that ``Policy`` does not call safe:
- dangerous, or run by the loader (called, instantiated, its state set): a finding at
  high or above names it;
- unknown and only imported: a finding names it (medium is the policy for unknown classes);
unless the scan says at high or above that it could not vouch for the whole file (a
finding that names no global: a parse error, a limit, a desync). Examples:
``MLWARDEN_ORACLE_EXAMPLES`` (default 300, derandomized, so CI is reproducible).
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import json
import os
import pickle
import select
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwarden.findings import Severity
from mlwarden.scan import FileScan, scan_path
from mlwarden.scan.policy import Policy

WORKER = Path(__file__).with_name("oracle_worker.py")
EXAMPLES = int(os.environ.get("MLWARDEN_ORACLE_EXAMPLES", "300"))
POLICY = Policy()

SAFE = [("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "dict"), ("copyreg", "_reconstructor"),
        ("builtins", "object"), ("numpy", "dtype"), ("datetime", "date"), ("numpy._core.multiarray", "_reconstruct"),
        ("torch._utils", "_rebuild_tensor_v2"), ("copy_reg", "_reconstructor"), ("__builtin__", "set")]
UNKNOWN = [("mypkg", "Model"), ("sklearn.custom", "Thing"), ("zlib", "decompress"), ("torch.nn.custom", "Layer"),
           ("collections", "UserDict.data")]
DANGEROUS = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "getattr"),
             ("subprocess", "Popen"), ("__builtin__", "eval"), ("pickle", "loads"), ("builtins", "exec"),
             ("os", "path.os.system"), ("builtins", "eval.__call__"), ("nt", "system")]


class Oracle:
    """One long-lived worker process that loads files with the real loaders and says what they resolved."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)
        return self.proc

    def resolve(self, path: Path, mode: str) -> tuple[list[tuple[str, str, bool]], str | None]:
        proc = self._start()
        assert proc.stdin and proc.stdout
        proc.stdin.write(json.dumps({"path": str(path), "mode": mode}) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if not line:  # hung or died (memory limit): what it resolved is unknown, so nothing is claimed
            self.close()
            return [], "worker died"
        answer = json.loads(line)
        return [(m, n, bool(run)) for m, n, run in answer["resolved"]], answer["error"]

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def oracle():
    o = Oracle()
    yield o
    o.close()


def _mapped(module: str, name: str) -> tuple[str, str]:
    """What the default find_class imports for a protocol 0-2 stream (fix_imports)."""
    return _compat_pickle.NAME_MAPPING.get((module, name)) or (_compat_pickle.IMPORT_MAPPING.get(module, module), name)


_NAME = {s.rank: s.value for s in Severity}


def misses(resolved: list[tuple[str, str, bool]], scan: FileScan) -> list[str]:
    """The resolved globals the scan fails to report at the severity the property asks for."""
    high = Severity.HIGH.rank
    if any(i.severity.rank >= high and i.detail.get("global") is None for i in scan.issues):
        return []  # the scan says at high that it could not vouch for the whole file
    reported: dict[str, int] = {}
    for i in scan.issues:
        g = i.detail.get("global")
        if g:
            reported[g] = max(reported.get(g, -1), i.severity.rank)
    out: list[str] = []
    for module, name, ran in dict.fromkeys(resolved):
        real = _mapped(module, name)
        verdict = POLICY.classify(*real)
        if verdict.level == "safe":
            continue
        need = high if verdict.level == "dangerous" or ran else Severity.MEDIUM.rank
        got = max(reported.get(f"{module}.{name}", -1), reported.get(f"{real[0]}.{real[1]}", -1))
        if got < need and not any(o.startswith(f"{module}.{name} (") for o in out):
            out.append(f"{module}.{name} ({verdict.level}{', run' if ran else ''}): "
                       f"needs {_NAME[need]}, got {_NAME.get(got, 'nothing')}")
    return out


# ---- the grammar --------------------------------------------------------------------------

NAMES = st.sampled_from(SAFE + UNKNOWN + DANGEROUS)
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=12)


def _unicode(s: str, how: int) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    if how == 0 and len(b) < 256:
        return b"\x8c" + bytes([len(b)]) + b
    if how == 1:
        return b"X" + struct.pack("<I", len(b)) + b
    return b"V" + s.encode("raw-unicode-escape") + b"\n"


@st.composite
def global_ref(draw, g: tuple[str, str]) -> bytes:
    """Push the global ``g`` by GLOBAL text or STACK_GLOBAL (its strings maybe through the memo)."""
    module, name = g
    how = draw(st.integers(0, 2))
    if how == 0:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    a, b = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    if how == 1:
        return _unicode(module, a) + _unicode(name, b) + b"\x93"
    k = draw(st.integers(0, 255))  # module via the memo: BINPUT, POP, BINGET
    return _unicode(module, a) + b"q" + bytes([k]) + b"0h" + bytes([k]) + _unicode(name, b) + b"\x93"


@st.composite
def atom(draw) -> bytes:
    kind = draw(st.integers(0, 8))
    n = draw(st.integers(-(2**40), 2**40))
    if kind == 0:
        return b"K" + bytes([n & 0xFF])
    if kind == 1:
        return b"J" + struct.pack("<i", n & 0x7FFFFFFF)
    if kind == 2:
        return f"I{n}\n".encode()
    if kind == 3:
        return f"I{hex(abs(n))}\n".encode()  # both unpicklers parse INT with base 0
    if kind == 4:
        return b"N"
    if kind == 5:
        return _unicode(draw(TEXT), draw(st.integers(0, 2)))
    if kind == 6:
        data = draw(st.binary(max_size=16))
        return b"C" + bytes([len(data)]) + data
    if kind == 7:
        return b"G" + struct.pack(">d", draw(st.floats(allow_nan=False)))
    return b"\x88"


def value(depth: int = 0):
    if depth >= 3:
        return atom()
    inner = st.deferred(lambda: value(depth + 1))
    return st.one_of(atom(), atom(), container(inner), call(inner), memo_roundtrip(inner))


@st.composite
def container(draw, inner) -> bytes:
    items = draw(st.lists(inner, max_size=3))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return b"(" + b"".join(items) + b"t"
    if kind == 1:
        return b"]" + (b"(" + b"".join(items) + b"e" if items else b"")
    pairs = items[: len(items) // 2 * 2]
    return b"}" + (b"(" + b"".join(pairs) + b"u" if pairs else b"")


@st.composite
def call(draw, inner) -> bytes:
    g = draw(NAMES)
    args = b"(" + b"".join(draw(st.lists(inner, max_size=2))) + b"t"
    how = draw(st.integers(0, 5))
    ref = draw(global_ref(g))
    if how == 0:
        return ref
    if how == 1:
        return ref + args + b"R"
    if how == 2:
        return ref + args + b"\x81"  # NEWOBJ
    if how == 3:
        return b"(" + b"".join(draw(st.lists(inner, max_size=2))) + b"i" + g[0].encode() + b"\n" + g[1].encode() + b"\n"
    if how == 4:
        return b"(" + ref + b"".join(draw(st.lists(inner, max_size=2))) + b"o"  # OBJ
    return ref + args + b"R" + b"}" + b"b"  # BUILD with a state


@st.composite
def memo_roundtrip(draw, inner) -> bytes:
    k = draw(st.integers(0, 255))
    return draw(inner) + b"q" + bytes([k]) + b"0h" + bytes([k])


@st.composite
def program(draw) -> bytes:
    body = draw(value()) + b"."
    proto = draw(st.sampled_from([None, 0, 2, 3, 4, 5]))
    if proto is None or proto < 2:
        return body
    head = b"\x80" + bytes([proto])
    if proto >= 4 and draw(st.booleans()):
        return head + b"\x95" + struct.pack("<Q", len(body)) + body
    return head + body


# ---- mutated real files ---------------------------------------------------------------------

def _seeds() -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """Real files written by the real writers: name → (bytes, loaders that read them)."""
    import joblib
    import numpy as np
    import torch

    out: dict[str, tuple[bytes, tuple[str, ...]]] = {}
    obj = {"w": np.arange(4.0), "m": collections.OrderedDict(a=1), "t": (1, "x")}
    for proto in (2, 4):
        out[f"p{proto}.pkl"] = (pickle.dumps(obj, protocol=proto), ("pickle", "joblib"))
    buf = io.BytesIO()
    joblib.dump({"w": np.arange(6, dtype="f8"), "i": np.arange(3, dtype="i2"),
                 "o": np.array([collections.OrderedDict()], dtype=object)}, buf)
    out["j.joblib"] = (buf.getvalue(), ("joblib",))
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "meta": collections.OrderedDict(a=1)}, buf)
    out["t.pt"] = (buf.getvalue(), ("torch",))
    buf = io.BytesIO()
    np.savez(buf, w=np.arange(3), o=np.array([collections.Counter()], dtype=object))
    out["a.npz"] = (buf.getvalue(), ("npz",))
    return out


SEEDS = _seeds()
PAYLOADS = [b"cos\nsystem\n(S'true'\ntR", b"\x8c\x05posix\x8c\x06system\x93", b"cbuiltins\neval\n",
            b"(cmypkg\nModel\no", b"\x8c\x02os\x8c\x0bpath.system\x93", b"I0x1\n0", b"\x94"]


@st.composite
def mutated(draw) -> tuple[str, bytes, tuple[str, ...]]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data, modes = SEEDS[name]
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(buf)))
        op = draw(st.integers(0, 3))
        if op == 0 and pos < len(buf):
            buf[pos] = draw(st.integers(0, 255))
        elif op == 1:
            buf[pos:pos] = draw(st.sampled_from(PAYLOADS))
        elif op == 2:
            del buf[pos:pos + draw(st.integers(1, 16))]
        else:
            buf[pos:pos + 8] = struct.pack("<Q", draw(st.sampled_from([0, 1, 7, 8, 255, 2**31, 2**40])))
    return name, bytes(buf), modes


def check(oracle: Oracle, tmp: Path, name: str, data: bytes, modes: tuple[str, ...]) -> None:
    path = tmp / name
    path.write_bytes(data)
    resolved: list[tuple[str, str, bool]] = []
    errors = []
    for mode in modes:
        got, error = oracle.resolve(path, mode)
        resolved += got
        errors.append(f"{mode}: {error}")
    scan = scan_path(path, policy=POLICY)
    missed = misses(resolved, scan)
    assert not missed, (f"scan of {name} ({data.hex()}) misses what the loader resolved: {missed}; "
                        f"loaders: {errors}; scan: {[(i.kind, i.severity.value, i.message[:80]) for i in scan.issues]}")


SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=program())
def test_generated_pickles(oracle: Oracle, tmp_path_factory, data: bytes) -> None:
    check(oracle, tmp_path_factory.mktemp("gen", numbered=True), "g.pkl", data, ("pickle", "joblib"))


@SETTINGS
@given(case=mutated())
def test_mutated_real_files(oracle: Oracle, tmp_path_factory, case) -> None:
    name, data, modes = case
    check(oracle, tmp_path_factory.mktemp("mut", numbered=True), name, data, modes)


REPRODUCERS = {
    # issue 10 §3: no PROTO, starts with SHORT_BINUNICODE; pickle, joblib and numpy all load it
    "no-proto.dat": b"\x8c\x05posix\x8c\x06system\x93\x8c\x04true\x85R.",
    # §4: a text INT in hex before the payload (both unpicklers parse ints with base 0)
    "hex-int.pkl": b"I0x1\n0cos\nsystem\n(S'true'\ntR.",
    # §4: an 80 KB dotted name resolved attribute by attribute under protocol 4
    "long-name.pkl": b"\x80\x04\x8c\x02os" + _unicode("path." * 16000 + "os.system", 1) + b"\x93\x8c\x04true\x85R.",
}


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_reproducers(oracle: Oracle, tmp_path: Path, name: str) -> None:
    check(oracle, tmp_path, name, REPRODUCERS[name], ("pickle", "joblib"))


def test_the_worker_runs_nothing(oracle: Oracle, tmp_path: Path) -> None:
    """The oracle itself is safe: a payload that would create a file, loaded every way, creates none."""
    canary = tmp_path / "canary"
    cmd = f"touch {canary}".encode()
    evil = b"\x80\x02cposix\nsystem\nC" + bytes([len(cmd)]) + cmd + b"\x85R."
    (tmp_path / "evil.pkl").write_bytes(evil)
    for mode in ("pickle", "joblib", "npz", "torch"):
        resolved, _ = oracle.resolve(tmp_path / "evil.pkl", mode)
        assert ("posix", "system", True) in resolved
    assert not canary.exists()
    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as z:
        z.writestr("o.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
                   .ljust(10 + 117, b" ") + b"\n" + evil)
    resolved, _ = oracle.resolve(tmp_path / "evil.npz", "npz")
    assert ("posix", "system", True) in resolved and not canary.exists()


def test_the_property_can_fail() -> None:
    """misses() is not vacuous: silence, medium for a run global, or a medium parse error all fail it."""
    from mlwarden.scan.base import ScanIssue, Where

    where = Where(path="x.pkl")
    silent = FileScan(path="x.pkl", format="pickle", issues=(), globals={}, bytes_inspected=0, size=0)
    assert misses([("os", "system", False)], silent) == ["os.system (dangerous): needs high, got nothing"]
    assert misses([("collections", "OrderedDict", True)], silent) == []
    medium = ScanIssue(kind="pickle.global.unknown", severity=Severity.MEDIUM, message="m", where=where,
                       detail={"global": "mypkg.Model"})
    parse = ScanIssue(kind="pickle.parse_error", severity=Severity.MEDIUM, message="p", where=where)
    scan = FileScan(path="x.pkl", format="pickle", issues=(medium, parse), globals={}, bytes_inspected=0, size=0)
    assert misses([("mypkg", "Model", False)], scan) == []
    assert misses([("mypkg", "Model", True)], scan) == ["mypkg.Model (unknown, run): needs high, got medium"]
    closed = ScanIssue(kind="pickle.parse_error", severity=Severity.HIGH, message="p", where=where)
    scan = FileScan(path="x.pkl", format="pickle", issues=(closed,), globals={}, bytes_inspected=0, size=0)
    assert misses([("os", "system", True)], scan) == []
