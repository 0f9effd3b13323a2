"""The loader oracle's worker: the *real* loaders, with a ``find_class`` that only records.

Run as a subprocess by tests/scan/test_oracle.py (never imported by the test process).
It reads one JSON request per line on stdin — ``{"path": …, "mode": "pickle"|"joblib"|
"torch"|"npz"}`` — loads the file with ``pickle.Unpickler``, ``joblib.load``,
``torch.load(weights_only=False)`` or ``numpy.load(allow_pickle=True)``, and answers one
JSON line: every ``(module, name)`` the loader asked ``find_class`` for, whether the loader
then ran it (called it with arguments from the file, or called something reached through it),
and the error
that ended the load, if any.

Nothing from the file runs: every global resolves to a fresh stub class that accepts any
call and records it. The exceptions are a few structural helpers that decide how many
bytes a loader reads (joblib's ``NumpyArrayWrapper``, ``numpy.dtype``) or that only
forward to ``__new__`` of what they are given (``copyreg``'s reconstructors): they are
real, so the loader walks the file exactly as it would in production. Memory and time
per file are bounded, so a hostile size in a generated file cannot take the machine.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import io
import json
import pickle
import resource
import signal
import sys
import warnings

import joblib.numpy_pickle as jnp
import numpy as np
import torch

PASSTHROUGH = {
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "__newobj__"): copyreg.__newobj__,
    ("copyreg", "__newobj_ex__"): copyreg.__newobj_ex__,
    ("numpy", "dtype"): np.dtype,
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): jnp.NumpyArrayWrapper,
}

resolved: list[list] = []  # [module, name, invoked] in the order the loader asked
_index: dict[tuple[str, str], int] = {}


def _mark(key: tuple[str, str]) -> None:
    resolved[_index[key]][2] = True


class _Marker:
    """A method of every stub (on the class or an instance): calling it marks the global as run."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner):
        key = owner._key

        def run(*args, **kwargs):
            _mark(key)
            return _stub(key)()

        return run


class _Meta(type):
    def __call__(cls, *args, **kwargs):
        _mark(cls._key)
        return super().__call__()

    def __getattr__(cls, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Marker().__get__(None, cls)


class _Stub(metaclass=_Meta):
    """A stand-in global. Calling it (REDUCE, INST, OBJ) marks it as run; building an instance
    with ``__new__`` (NEWOBJ) and handing that instance its state or items (BUILD, SETITEM,
    APPEND) does not: that is the class's own code, and an unknown class stays medium."""

    _key = ("", "")

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return object.__new__(type(self))  # a method or attribute: itself a stub, marked when called

    def __call__(self, *args, **kwargs):
        _mark(type(self)._key)
        return self


def _stub(key: tuple[str, str]) -> type:
    return _Meta(f"Stub_{key[1]}", (_Stub,), {"_key": key})


def record(module: str, name: str):
    key = (str(module), str(name))
    if key not in _index:
        _index[key] = len(resolved)
        resolved.append([key[0], key[1], False])
    # what the default find_class would import for a protocol 0-2 stream (fix_imports)
    mapped = _compat_pickle.NAME_MAPPING.get(key) or (_compat_pickle.IMPORT_MAPPING.get(key[0], key[0]), key[1])
    real = PASSTHROUGH.get(key) or PASSTHROUGH.get(mapped)
    return real if real is not None else _stub(key)


_RealUnpickler = pickle.Unpickler


class RecordingUnpickler(_RealUnpickler):
    """The C unpickler every ``pickle.load`` uses, resolving through :func:`record`."""

    def find_class(self, module, name):
        return record(module, name)


class RecordingNumpyUnpickler(jnp.NumpyUnpickler):
    """joblib's own unpickler (pure Python, reads inline arrays), resolving through :func:`record`."""

    def find_class(self, module, name):
        return record(module, name)


def _load(fh, **kwargs):
    return RecordingUnpickler(fh, **kwargs).load()


# Every loader reaches pickle through this module's attributes at call time (numpy.load of a raw
# pickle or an object array, torch's legacy format): patch the module itself, so no path is left
# to the real find_class.
pickle.Unpickler = RecordingUnpickler
pickle.load = _load
pickle.loads = lambda data, **kw: _load(io.BytesIO(data), **kw)
jnp.NumpyUnpickler = RecordingNumpyUnpickler  # joblib.load builds its unpickler by this name


def load(path: str, mode: str) -> None:
    if mode == "pickle":
        with open(path, "rb") as fh:
            RecordingUnpickler(fh).load()
    elif mode == "joblib":
        jnp.load(path)
    elif mode == "torch":
        torch.load(path, weights_only=False, pickle_module=pickle, map_location="cpu")
    elif mode == "npz":
        with np.load(path, allow_pickle=True) as npz:
            for member in npz.files:
                npz[member]
    else:
        raise ValueError(mode)


def _timeout(signum, frame):
    raise TimeoutError("load took too long")


def main() -> None:
    warnings.simplefilter("ignore")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), hard))  # 1 GiB above what the imports took
    signal.signal(signal.SIGALRM, _timeout)
    sys.setrecursionlimit(3000)
    out = sys.stdout
    sys.stdout = io.StringIO()  # loaders that print must not corrupt the answers
    for line in sys.stdin:
        req = json.loads(line)
        resolved.clear()
        _index.clear()
        error = None
        signal.alarm(10)
        try:
            load(req["path"], req["mode"])
        except BaseException as e:  # noqa: BLE001 — any failure ends the load; what it resolved still counts
            error = f"{type(e).__name__}: {str(e)[:200]}"
        finally:
            signal.alarm(0)
        sys.stdout = io.StringIO()
        out.write(json.dumps({"resolved": resolved, "error": error}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
