"""The pickle machine's optional compiled modules, and the one switch back to pure Python.

``setup.py`` compiles the modules in :data:`MODULES` with Cython from these very ``.py``
files — there is no second source: the ``@cython.locals`` declarations in them are C types
when compiled and no-ops here (:data:`cython_shim` stands in when Cython is not
installed). Each extension sits beside its source, and Python's import system prefers it.

:func:`install` runs first thing in :mod:`mlwarden.scan`, before anything imports these
modules, and makes a module load from its ``.py`` when

* ``MLWARDEN_PURE_PYTHON=1`` is set (every module), or
* the extension was not built from the source that is there now: the build records each
  source's SHA-256 in :data:`STAMP`, so an extension left over from an older source — a
  second reader that silently drifted from the code under review — is never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGE = __name__.rpartition(".")[0]
MODULES = ("pickle_machine", "pickle_reader", "pickle_values")
STAMP = "compiled.sha256"  # "module sha256-of-its-source" lines, written by setup.py's build_ext
ENV = "MLWARDEN_PURE_PYTHON"
_HERE = Path(__file__).resolve().parent


class cython_shim:  # noqa: N801 — stands in for the ``cython`` module, so it is spelt like one
    """The few ``cython`` names the modules use, as no-ops (Cython is a build requirement only)."""

    compiled = False
    int = Py_ssize_t = object

    @staticmethod
    def locals(**_types: Any) -> Callable[[Any], Any]:
        return lambda f: f


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pure_requested() -> bool:
    return os.environ.get(ENV, "").strip() not in ("", "0")


def _stamped() -> dict[str, str]:
    try:
        lines = (_HERE / STAMP).read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    return dict(parts for parts in (line.split() for line in lines) if len(parts) == 2)


def source_only() -> frozenset[str]:
    """The modules that must load from their ``.py`` (see the module docstring)."""
    if pure_requested():
        return frozenset(MODULES)
    stamped = _stamped()
    if not stamped:
        return frozenset(MODULES)  # nothing was built here: the .py files are all there is
    stale = set()
    for m in MODULES:
        try:
            if stamped.get(m) != source_digest(_HERE / f"{m}.py"):
                stale.add(m)
        except OSError:
            pass  # no source beside the extension: there is nothing it could drift from
    return frozenset(stale)


class _SourceFinder:
    """Finds the listed modules as their ``.py`` files, ahead of the extension finder."""

    def __init__(self, modules: frozenset[str]) -> None:
        self.names = {f"{PACKAGE}.{m}" for m in modules}

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in self.names:
            return None
        return importlib.util.spec_from_file_location(fullname, _HERE / f"{fullname.rpartition('.')[2]}.py")

    def invalidate_caches(self) -> None:
        pass


def install() -> None:
    """Route the modules that must run as pure Python to their sources (idempotent)."""
    if any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        return
    modules = source_only()
    if modules:
        sys.meta_path.insert(0, _SourceFinder(modules))


def active() -> dict[str, bool]:
    """Whether each module runs compiled in this process (imports them)."""
    out = {}
    for m in MODULES:
        module = importlib.import_module(f"{PACKAGE}.{m}")
        out[m] = not str(getattr(module, "__file__", "")).endswith(".py")
    return out
