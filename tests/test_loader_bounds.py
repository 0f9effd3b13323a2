"""The safe loader's bounds: sizes, exponents, work and trampolines taken from the file.

Each refused file is tiny and hand-assembled from pickle opcodes; the memory bombs are
loaded in a subprocess under RLIMIT_AS = 2 GiB, so a missing bound shows as a MemoryError
or a killed process instead of an exact, clean refusal.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from mlwarden.errors import SourceError
from mlwarden.loader import LoadLimits, _RestrictedUnpickler, load_model
from mlwarden.loader_guards import LoadLimitError, UnadmittedCallError
from mlwarden.scan.policy import Policy


def _global(module: str, name: str) -> bytes:
    return b"\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) \
        + name.encode() + b"\x93"


def _str(s: str) -> bytes:
    return b"\x8c" + bytes([len(s)]) + s.encode()


BYTEARRAY_BOMB = b"\x80\x04" + _global("builtins", "bytearray") + b"J\x00\x2f\x68\x59\x85R."
FRACTION_BOMB = b"\x80\x04" + _global("fractions", "Fraction") + _str("1e30000000") + b"\x85R."
DECIMAL_BOMB = b"\x80\x04" + _global("decimal", "Decimal") + _str("1e30000000") + b"\x85R."
RANGE_BOMB = (b"\x80\x04" + _global("builtins", "list") + _global("builtins", "range")
              + b"\x8a\x05\x00\xe4\x0bT\x02\x85R\x85R.")  # list(range(10**10))
SHAPE_BOMB = (b"\x80\x04" + _global("numpy._core.multiarray", "_reconstruct")
              + _global("numpy", "ndarray") + b"J\x40\x42\x0f\x00J\x40\x42\x0f\x00\x86"
              + b"C\x01b\x87R.")  # _reconstruct(ndarray, (10**6, 10**6), b'b')

_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from pathlib import Path
from mlwarden.loader import LoadLimits, load_model
p = Path(sys.argv[1])
try:
    load_model(p)
    print(json.dumps({"loaded": True}))
except BaseException as e:
    print(json.dumps({"type": type(e).__name__, "msg": str(e),
                      "bound": LoadLimits.for_file(p.stat().st_size).max_bytes}))
"""


def _load_capped(path: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _too_big(path: Path, what: str, n: int, bound: int) -> str:
    return (f"{path}: refuses to load: {what} would allocate {n:,} bytes, more than the"
            f" {bound:,}-byte bound for one object from a file of this size; if the model is"
            " genuine, load it with a larger LoadLimits.max_bytes")


def test_bytearray_bomb_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pkl"
    path.write_bytes(BYTEARRAY_BOMB)
    assert len(BYTEARRAY_BOMB) < 40
    out = _load_capped(path)
    assert out["type"] == "LoadLimitError"
    assert out["msg"] == _too_big(path, "bytearray(1,500,000,000)", 1_500_000_000, out["bound"])


@pytest.mark.parametrize(("data", "what", "n"), [
    (RANGE_BOMB, "range of 10,000,000,000 items", 640_000_000_000),
    (SHAPE_BOMB, "numpy _reconstruct", 10**12),
])
def test_size_bombs_are_refused_before_allocating(data: bytes, what: str, n: int,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "bomb.pkl"
    path.write_bytes(data)
    out = _load_capped(path)
    assert (out["type"], out["msg"]) == ("LoadLimitError", _too_big(path, what, n, out["bound"]))


@pytest.mark.parametrize(("data", "name"), [(FRACTION_BOMB, "Fraction"), (DECIMAL_BOMB, "Decimal")])
def test_huge_exponents_are_refused_before_computing(data: bytes, name: str, tmp_path: Path) -> None:
    path = tmp_path / "exp.pkl"
    path.write_bytes(data)
    out = _load_capped(path)
    assert out["type"] == "LoadLimitError"
    assert out["msg"] == (f"{path}: refuses to load: {name}() with a decimal exponent of"
                          " 30,000,000, beyond the 4300-digit bound on exact numbers (computing"
                          " it would take unbounded time and memory)")


def test_joblib_array_shape_is_bounded_before_joblib_allocates() -> None:
    # joblib's read_array allocates the whole shape before reading; the walker's prescan
    # refuses this file too (the data is missing), so the unpickler layer is tested alone.
    from joblib.numpy_pickle import NumpyArrayWrapper

    wrapper = NumpyArrayWrapper(np.ndarray, (100_000, 100_000), "C", np.dtype("f8"))
    with pytest.raises(LoadLimitError) as err:
        _restricted(pickle.dumps(wrapper, protocol=4))
    assert str(err.value) == _too_big(Path("f.pkl"), "a joblib array of shape (100000, 100000)",
                                      80_000_000_000, 1 << 28)


def test_work_is_bounded_by_opcodes_and_by_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "many.pkl"
    path.write_bytes(pickle.dumps([[i] for i in range(5000)], protocol=4))
    with pytest.raises(LoadLimitError) as err:
        load_model(path, limits=LoadLimits(max_bytes=1 << 30, max_ops=1000))
    assert str(err.value) == (f"{path}: refuses to load: the pickle runs more than 1,000"
                              " opcodes, beyond the work bound for a file of this size; if the"
                              " model is genuine, load it with a larger LoadLimits.max_ops")
    with pytest.raises(LoadLimitError) as err:
        load_model(path, limits=LoadLimits(max_bytes=1 << 30, max_ops=10**9, max_seconds=0))
    assert str(err.value) == (f"{path}: refuses to load: unpickling took longer than 0 s; if"
                              " the model is genuine, load it with a larger"
                              " LoadLimits.max_seconds")


def _restricted(data: bytes) -> Any:
    """The unpickler alone (the walker's prescan is the other, independent layer)."""
    limits = LoadLimits(max_bytes=1 << 28, max_ops=10**6)
    return _RestrictedUnpickler("f.pkl", io.BytesIO(data), Policy(), limits).load()


BUNCH = _global("sklearn.utils._bunch", "Bunch") + b")R"  # Bunch()


def test_trampoline_refuses_a_method_the_file_supplies() -> None:
    # _new_IntervalIndex(Bunch(from_arrays=bytearray), {}) would run bytearray(**{})
    data = (b"\x80\x04" + _global("pandas.core.indexes.interval", "_new_IntervalIndex") + BUNCH
            + _str("from_arrays") + _global("builtins", "bytearray") + b"s}\x86R.")
    with pytest.raises(UnadmittedCallError) as err:
        _restricted(data)
    assert str(err.value) == (
        "f.pkl: refuses to load pandas.core.indexes.interval._new_IntervalIndex: it would call"
        " 'from_arrays' of a computed sklearn.utils._bunch.Bunch object, which the file"
        " supplies (argument 0); a callable on the allowlist may only call what the allowlist"
        " admits")


def test_trampoline_refuses_a_computed_callable() -> None:
    pytest.importorskip("torch")
    # _rebuild_from_type_v2(Bunch(), int, (), None) would call the Bunch
    data = (b"\x80\x04" + _global("torch._tensor", "_rebuild_from_type_v2") + b"(" + BUNCH
            + _global("builtins", "int") + b")Nt" + b"R.")
    with pytest.raises(UnadmittedCallError) as err:
        _restricted(data)
    assert str(err.value) == (
        "f.pkl: refuses to load torch._tensor._rebuild_from_type_v2: it would call a computed"
        " sklearn.utils._bunch.Bunch object (argument 0); a callable on the allowlist may only"
        " call what the allowlist admits")


def test_trampoline_refuses_a_size_taking_constructor_it_would_feed() -> None:
    # copyreg._reconstructor(object, bytearray, 10**9) runs bytearray.__new__/__init__(…, 10**9)
    data = (b"\x80\x04" + _global("copyreg", "_reconstructor") + b"(" + _global("builtins", "object")
            + _global("builtins", "bytearray") + b"J\x00\xca\x9a\x3btR.")
    with pytest.raises(UnadmittedCallError, match=r"copyreg\._reconstructor: it would call"
                       r" builtins\.bytearray\.__(init|new)__, a size-taking constructor"):
        _restricted(data)


def test_defaultdict_factory_must_be_admitted_even_when_set_by_state() -> None:
    # defaultdict(None) whose BUILD slot state swaps in a computed factory
    data = (b"\x80\x04" + _global("collections", "defaultdict") + b"N\x85R"
            + b"N}" + _str("default_factory") + BUNCH + b"s\x86b.")
    with pytest.raises(SourceError, match="default_factory that is not admitted"):
        _restricted(data)


def test_ordinary_objects_that_pass_through_trampolines_still_load(tmp_path: Path) -> None:
    objs = {"dd": collections.defaultdict(int, {"a": 1}), "dl": collections.defaultdict(list),
            "od": collections.OrderedDict(a=1), "counter": collections.Counter("aab"),
            "rng": np.random.default_rng(0), "legacy": np.random.RandomState(0),
            "masked": np.ma.masked_array([1, 2], mask=[0, 1]), "matrix": np.matrix([[1, 2]])}
    for proto in (2, 4, 5):
        path = tmp_path / f"o{proto}.pkl"
        path.write_bytes(pickle.dumps(objs, protocol=proto))
        loaded = load_model(path)
        assert loaded["dd"]["missing"] == 0 and loaded["dd"]["a"] == 1
        assert loaded["counter"] == collections.Counter("aab")
        assert loaded["rng"].integers(1000) == np.random.default_rng(0).integers(1000)
        assert loaded["masked"].mask.tolist() == [False, True]


@pytest.mark.parametrize("compress", [0, 3])
def test_a_real_size_random_forest_loads(compress: int, tmp_path: Path) -> None:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(2000, 20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RandomForestClassifier(200, random_state=0, n_jobs=1).fit(X, y)
    path = tmp_path / "forest.joblib"
    joblib.dump(model, path, compress=compress)
    loaded = load_model(path)
    assert (loaded.predict(X) == model.predict(X)).all()
