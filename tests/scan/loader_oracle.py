"""Run a real loader on a generated file, recording what it resolves instead of running it.

Used by the tests in a subprocess only: ``python loader_oracle.py torch|numpy|pickle PATH``
prints one JSON object — the globals the loader's unpickler asked for (``resolved``) and
the members it read — or the loader's error. ``find_class`` resolves torch's and numpy's
own rebuild helpers (so a real checkpoint loads) and hands back a harmless stub for
everything else, so the payload under test is named but never called.
"""

from __future__ import annotations

import json
import pickle
import sys
import types

RESOLVED: list[str] = []
_REAL = ("torch", "collections", "numpy", "builtins", "_codecs", "copyreg")
_UNSAFE = ("builtins.eval", "builtins.exec", "builtins.getattr", "builtins.__import__", "builtins.open",
           "builtins.compile", "builtins.breakpoint", "builtins.input")


class Stub:
    """Stands in for whatever the file asked for: accepts any call, does nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> Stub:
        return Stub()

    def __setstate__(self, state: object) -> None:
        pass


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        full = f"{module}.{name}"
        RESOLVED.append(full)
        if module.split(".")[0] in _REAL and full not in _UNSAFE:
            return super().find_class(module, name)
        return Stub


def _load(file: object, **kwargs: object) -> object:
    kwargs.pop("fix_imports", None)
    return Unpickler(file, **kwargs).load()  # type: ignore[arg-type]


recording = types.ModuleType("recording_pickle")
recording.Unpickler = Unpickler  # type: ignore[attr-defined]
recording.load = _load  # type: ignore[attr-defined]
recording.__name__ = "recording_pickle"


def main(kind: str, path: str) -> dict[str, object]:
    out: dict[str, object] = {"resolved": RESOLVED}
    try:
        if kind == "torch":
            import torch

            out["records"] = sorted(torch._C.PyTorchFileReader(path).get_all_records())
            torch.load(path, weights_only=False, pickle_module=recording)
        elif kind == "numpy":
            import numpy as np
            from numpy.lib import _format_impl

            _format_impl.pickle = recording  # type: ignore[attr-defined]
            with np.load(path, allow_pickle=True) as npz:
                out["records"] = sorted(npz.files)
                for key in npz.files:
                    npz[key]
        elif kind == "pickle":
            with open(path, "rb") as fh:
                _load(fh)
        else:
            raise SystemExit(f"unknown loader {kind}")
    except Exception as exc:  # noqa: BLE001 — the caller wants to know how the loader failed
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
