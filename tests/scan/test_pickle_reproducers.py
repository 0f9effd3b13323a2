"""Issue 10's parser-differential reproducers: the scanner must read what the loaders read.

Each file is hand-assembled from opcodes, scanned (``mlwarden scan`` must exit non-zero
with a high or critical finding), and — to prove the reproducer is real — loaded in a
subprocess by the real loader (``joblib``'s ``NumpyUnpickler`` or ``pickle.Unpickler``)
whose ``find_class`` records what it resolves and hands back a harmless stub, so nothing
from the file ever runs.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mlwarden.findings import Severity
from mlwarden.scan import scan_path
from mlwarden.scan.policy import Policy

RECORDER = r"""
import json, pickle, sys
mode, path = sys.argv[1], sys.argv[2]
resolved = []
REAL = {("joblib.numpy_pickle", "NumpyArrayWrapper"), ("numpy", "ndarray"), ("numpy", "dtype"),
        ("copyreg", "__newobj_ex__"), ("copyreg", "__newobj__"), ("builtins", "object")}

class Stub:
    def __init__(self, *a, **k): pass
    def __call__(self, *a, **k): return None

def find_class(self, base, module, name):
    resolved.append(f"{module}.{name}")
    if (module, name) in REAL:
        return base.find_class(self, module, name)
    return Stub()

if mode == "joblib":
    from joblib.numpy_pickle import NumpyUnpickler as Base
    class U(Base):
        def find_class(self, module, name): return find_class(self, Base, module, name)
    opener = lambda fh: U(path, fh, False)
else:
    Base = pickle.Unpickler
    class U(Base):
        def find_class(self, module, name): return find_class(self, Base, module, name)
    opener = U
try:
    with open(path, "rb") as fh:
        opener(fh).load()
except Exception as e:
    resolved.append(f"<error {type(e).__name__}>")
print(json.dumps(resolved))
"""


def loader_resolves(path: Path, mode: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", RECORDER, mode, str(path)], capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def u(s: str) -> bytes:
    b = s.encode()
    return (b"\x8c" + bytes([len(b)]) if len(b) < 256 else b"X" + struct.pack("<I", len(b))) + b


PAYLOAD = b"cos\nsystem\n(S'true'\ntR0"  # os.system('true'), result popped: stack-neutral


def dtype_f8(state: tuple[int, int, int]) -> bytes:
    """numpy.dtype('f8') rebuilt as numpy pickles it, with (elsize, alignment, flags) given."""
    el, al, fl = state
    ints = b"".join(b"J" + struct.pack("<i", x) for x in (el, al, fl))
    return (b"cnumpy\ndtype\n" + u("f8") + b"\x89\x88\x87R"
            + b"(K\x03" + u("<") + b"NNN" + ints + b"tb")


def fields(*, shape: int = 16, dtype: bytes | None = None, align: bool = True) -> bytes:
    items = (u("subclass") + b"cnumpy\nndarray\n" + u("shape") + b"K" + bytes([shape]) + b"\x85"
             + u("order") + u("C") + u("dtype") + (dtype or dtype_f8((-1, -1, 0)))
             + u("allow_mmap") + b"\x89")
    if align:
        items += u("numpy_array_alignment_bytes") + b"K\x10"
    return b"}(" + items + b"u"


WRAPPER = b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n"


def elsize_gap() -> bytes:
    """(a) an f8 array whose dtype state claims elsize=1: 16 bytes for a reader that trusts it."""
    gap = 128 - 16 - 5 + len(PAYLOAD)
    array = bytes(16) + b"B" + struct.pack("<I", gap) + bytes(128 - 16 - 5)
    head = b"\x80\x04" + WRAPPER + b")\x81" + fields(dtype=dtype_f8((1, 1, 0))) + b"b"
    return head + b"\x00" + array + PAYLOAD + b"0N."


def reduce_padding() -> bytes:
    """(b) a wrapper built by REDUCE: __init__ sets the alignment the BUILD state leaves out."""
    init = WRAPPER + b"(cnumpy\nndarray\nK\x10\x85" + u("C") + dtype_f8((-1, -1, 0)) + b"tR"
    array = bytes(111) + b"B" + struct.pack("<I", 12 + len(PAYLOAD)) + bytes(12)
    assert len(array) == 128
    return b"\x80\x04" + init + fields(align=False) + b"b" + b"\x10" + b"\xff" * 16 + array \
        + PAYLOAD + b"0N."


def newobj_ex_wrapper() -> bytes:
    """(c) a wrapper made by the allowlisted copyreg.__newobj_ex__ (no __init__, no alignment)."""
    make = b"ccopyreg\n__newobj_ex__\n" + WRAPPER + b")}\x87R"
    array = b"B" + struct.pack("<I", 123 + len(PAYLOAD)) + bytes(123)
    return b"\x80\x04" + make + fields(align=False) + b"b" + array + PAYLOAD + b"0N."


def hex_int() -> bytes:
    """(d) a text INT in hex: both unpicklers parse it (base 0) and go on to the payload."""
    return b"\x80\x02I0x1\n0" + PAYLOAD + b"N."


def long_dotted_name() -> bytes:
    """(e) an 80 KB dotted name that protocol 4 resolves attribute by attribute to os.system."""
    name = "path.os." * 10_000 + "system"
    return b"\x80\x04" + u("os") + u(name) + b"\x93" + u("true") + b"\x85R."


REPRODUCERS = {"elsize_gap": (elsize_gap, "joblib"), "reduce_padding": (reduce_padding, "joblib"),
               "newobj_ex_wrapper": (newobj_ex_wrapper, "joblib"), "hex_int": (hex_int, "pickle"),
               "long_dotted_name": (long_dotted_name, "pickle")}


@pytest.mark.parametrize("case", sorted(REPRODUCERS))
def test_reproducer_is_real_and_caught(case: str, tmp_path: Path) -> None:
    make, mode = REPRODUCERS[case]
    path = tmp_path / f"{case}.{'joblib' if mode == 'joblib' else 'pkl'}"
    path.write_bytes(make())
    resolved = loader_resolves(path, mode)
    hit = [g for g in resolved if g.startswith("os.")]
    assert hit, resolved  # the real loader reaches the payload
    if case == "long_dotted_name":
        import functools
        import os

        _module, name = hit[0].split(".", 1)
        assert functools.reduce(getattr, name.split("."), os) is os.system
    result = scan_path(path, policy=Policy())
    crit = [i for i in result.issues if i.severity is Severity.CRITICAL
            and str(i.detail.get("global", "")).startswith("os.")]
    assert crit, [(i.kind, i.severity, i.message[:120]) for i in result.issues]
    cli = subprocess.run([sys.executable, "-m", "mlwarden", "scan", str(path)], capture_output=True,
                         text=True, timeout=300, check=False)
    assert cli.returncode == 1, cli.stdout + cli.stderr


BUNCH = b"csklearn.utils._bunch\nBunch\n)\x81(" + u("from_arrays") + b"%s" + b"u"


@pytest.mark.parametrize("gadget", ["yaml\nunsafe_load\n", "click\nedit\n"])
@pytest.mark.parametrize("shape", ["interval", "rebuild_from_type"])
def test_trampoline_calling_an_unvetted_function_is_high(gadget: str, shape: str,
                                                         tmp_path: Path) -> None:
    f = b"c" + gadget.encode()
    if shape == "interval":
        data = (b"\x80\x02cpandas.core.indexes.interval\n_new_IntervalIndex\n(" + BUNCH % f
                + b"}tR.")
    else:
        data = b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(" + f + b"cbuiltins\nint\n" \
            + u("x") + b"\x85NtR."
    path = tmp_path / "t.pkl"
    path.write_bytes(data)
    result = scan_path(path, policy=Policy())
    name = gadget.replace("\n", ".", 1).strip()
    worst = max((i.severity.rank for i in result.issues if i.detail.get("global") == name),
                default=-1)
    assert worst >= Severity.HIGH.rank, [(i.kind, i.severity, i.message[:100]) for i in result.issues]


def test_trampoline_with_admitted_argument_stays_clean(tmp_path: Path) -> None:
    import pickle

    import pandas as pd

    path = tmp_path / "iv.pkl"
    path.write_bytes(pickle.dumps(pd.interval_range(0, 3), protocol=4))
    result = scan_path(path, policy=Policy())
    assert [i for i in result.issues if i.severity.rank >= Severity.MEDIUM.rank] == []
