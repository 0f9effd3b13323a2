"""The safe model loader: scikit-learn, joblib and pickle files, through an allowlist.

A model file is scanned with the pickle walker first and refused if it imports any global
that is not known to be safe; only then is it unpickled, by an unpickler whose
``find_class`` admits the same allowlist (defence in depth: the two must both be fooled).
joblib files — plain or zlib/gzip/bz2/lzma/xz compressed, with their inline numpy arrays —
go through a subclass of joblib's own ``NumpyUnpickler``. PyTorch zip checkpoints load
with ``torch.load(weights_only=True)`` when torch is installed.

Two resolvers that ordinary pickles use are replaced by narrow stand-ins instead of being
refused: ``getattr`` (pandas pickles ``ZoneInfo._unpickle`` that way) only reaches
attributes the policy lists, and ``functools.partial`` (HistGradientBoosting keeps
``partial(check_array, …)``) only wraps functions the policy calls safe.

What an admitted global may do with the file's values is bounded too (loader_guards.py): a
callable that calls an argument (``policy.trampolines``) only calls admitted ones; sizes,
shapes and exponents are checked before a constructor allocates; opcodes and seconds are
counted against ``LoadLimits``.
"""

from __future__ import annotations

import _compat_pickle
import collections
import functools
import io
import os
import pickle
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from .errors import SourceError
from .loader_guards import (CountingDispatch, LoadLimits, Work, check_calls, shape_bytes,
                            size_guards, too_big)
from .scan.base import ScanContext, Where
from .scan.pickle import scan_pickle
from .scan.policy import ArgRef, Policy, trampolines

__all__ = ["LoadLimits", "UnsafeArtifactError", "load_model"]

_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafeArtifactError(SourceError):
    """A model file imports a global that is not known to be safe; it was not loaded."""


def load_model(path: str | os.PathLike[str], *, allow: Iterable[str] = (),
               limits: LoadLimits | None = None) -> Any:
    """Load a scikit-learn/joblib/pickle model (or a PyTorch zip checkpoint) safely.

    Raises :class:`UnsafeArtifactError` when the file imports anything off the allowlist
    (``allow`` adds ``module.name`` or ``module.*`` entries; it never admits a known
    gadget), a ``LoadLimitError`` or ``UnadmittedCallError`` (loader_guards.py) when it
    asks for more memory or work than ``limits`` (default ``LoadLimits.for_file``) allow
    or an admitted callable would call something unadmitted, and :class:`SourceError`
    when the file is missing, corrupt or truncated.
    """
    p = Path(path)
    policy = Policy(allow)
    if not p.is_file():
        raise SourceError(f"{p}: model file not found; check model.artifact in the spec")
    if zipfile.is_zipfile(p):
        return _load_torch_zip(p, policy)
    _prescan(p, policy)
    limits = limits or LoadLimits.for_file(p.stat().st_size)
    try:
        with open(p, "rb") as raw, _joblib_stream(raw, p) as stream:
            unpickler = _RestrictedUnpickler(str(p), stream, policy, limits)
            obj = unpickler.load()  # mlwarden: allow — restricted unpickler, allowlist-only find_class
    except SourceError:
        raise
    except MemoryError as e:  # a bound not yet modelled; still one clear line
        raise SourceError(f"{p}: cannot load the model, it needs more memory than is"
                          " available; it may be a decompression or allocation bomb") from e
    except Exception as e:  # corrupt input of any kind: one clear line, never a traceback
        raise SourceError(f"{p}: cannot load the model, the file is corrupt or truncated"
                          f" ({type(e).__name__}: {e}); re-export it") from e
    if isinstance(obj, int) and obj == _LEGACY_TORCH_MAGIC:
        raise SourceError(f"{p}: a legacy (pre-1.6) PyTorch file; re-save it with torch.save"
                          " (zip format) and load it with torch installed")
    return obj


@contextmanager
def _joblib_stream(raw: BinaryIO, p: Path) -> Iterator[BinaryIO]:
    """The decompressed pickle stream, opened the way joblib.load opens it."""
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    try:
        with _validate_fileobject_and_memmap(raw, str(p), None) as (fobj, _mmap):
            if isinstance(fobj, str):
                raise SourceError(f"{p}: a joblib file older than 0.10, whose arrays live in"
                                  " companion files; re-save it with a current joblib")
            yield fobj
    except SourceError:
        raise
    except Exception as e:
        raise SourceError(f"{p}: cannot open the model ({type(e).__name__}: {e});"
                          " the file is corrupt or truncated") from e


def _prescan(p: Path, policy: Policy) -> None:
    ctx = ScanContext(policy=policy)
    with open(p, "rb") as raw, _joblib_stream(raw, p) as stream:
        scan_pickle(stream, ctx, Where(path=str(p)))
    _refuse_on(ctx, p)


def _refuse_on(ctx: ScanContext, p: Path | str) -> None:
    issues = sorted(ctx.issues, key=lambda i: -i.severity.rank)
    for issue in issues:
        if issue.kind.startswith("pickle.global."):
            g = issue.detail.get("global") or "a global the scanner cannot name"
            raise UnsafeArtifactError(f"{p}: refuses to load {g}: "
                                      f"{issue.detail.get('reason') or issue.message}")
    for issue in issues:
        if issue.kind == "pickle.parse_error":
            raise SourceError(f"{p}: cannot load the model, the file is corrupt or truncated:"
                              f" {issue.message}")
        if issue.kind != "pickle.trailing_data":
            raise UnsafeArtifactError(f"{p}: refuses to load: {issue.message}")


def _qualified(obj: Any) -> tuple[str, str] | None:
    mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return (mod, qual) if isinstance(mod, str) and isinstance(qual, str) else None


def _restricted_resolvers(policy: Policy, p: str, admit: Any) -> dict[str, Any]:
    def is_safe(obj: Any) -> bool:
        q = _qualified(obj)
        return q is not None and policy.classify(*q).level == "safe"

    def safe_getattr(obj: Any, attr: str) -> Any:
        q = _qualified(obj) if isinstance(obj, type) else None
        if q is None or not isinstance(attr, str) or \
                policy.classify(q[0], f"{q[1]}.{attr}").level != "safe":
            raise UnsafeArtifactError(f"{p}: refuses to load getattr({obj!r}, {attr!r}):"
                                      " only listed class attributes may be reached")
        return admit(f"{q[0]}.{q[1]}.{attr}", getattr(obj, attr))

    class SafePartial(functools.partial):  # type: ignore[type-arg]
        def __new__(cls, func: Any, /, *args: Any, **kw: Any) -> Any:
            if not is_safe(func):
                raise UnsafeArtifactError(f"{p}: refuses to load functools.partial of"
                                          f" {func!r}: not a function known to be safe")
            return super().__new__(cls, func, *args, **kw)

        def __setstate__(self, state: Any) -> None:
            if not (isinstance(state, tuple) and state and is_safe(state[0])):
                raise UnsafeArtifactError(f"{p}: refuses to load a functools.partial whose"
                                          " state swaps in a function not known to be safe")
            super().__setstate__(state)  # type: ignore[misc]  # typeshed omits partial.__setstate__; CPython has it

    return {"builtins.getattr": safe_getattr, "functools.partial": SafePartial}


def _unpickler_base() -> type:
    from joblib.numpy_pickle import NumpyUnpickler

    return NumpyUnpickler


_Base: type = _unpickler_base()


class _RestrictedUnpickler(_Base):
    """joblib's NumpyUnpickler whose find_class admits only policy-safe globals, whose calls
    are checked before they run, and whose opcodes are counted (see loader_guards.py)."""

    dispatch = _Base.dispatch.copy()  # type: ignore[attr-defined]

    def __init__(self, filename: str, stream: BinaryIO, policy: Policy, limits: LoadLimits) -> None:
        super().__init__(filename, stream, ensure_native_byte_order=True)
        self._policy = policy
        self._limits = limits
        self._admitted: dict[int, Any] = {}
        self._classes: dict[int, tuple[str, tuple[ArgRef, ...], tuple[ArgRef, ...]]] = {}
        self._guards = size_guards(filename, limits)
        self._work = Work(filename, limits)
        self._resolvers = {k: self._admit(k, v)
                           for k, v in _restricted_resolvers(policy, filename, self._admit).items()}
        self.dispatch = CountingDispatch(type(self).dispatch, self._work)  # load() reads self.dispatch

    def find_class(self, module: str, name: str) -> Any:
        self._work.check_clock()
        if self.proto < 3 and self.fix_imports:
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full in self._resolvers:
            return self._resolvers[full]
        verdict = self._policy.classify(module, name)
        if verdict.level != "safe":
            raise UnsafeArtifactError(f"{self.filename}: refuses to load {full}:"
                                      f" {verdict.reason}")
        return self._admit(full, super().find_class(module, name))

    def _admit(self, full: str, obj: Any) -> Any:
        """Remember ``obj`` as admitted; a function that calls its arguments comes back wrapped
        so that it checks them (classes keep their identity and are checked at REDUCE/NEWOBJ)."""
        refs = trampolines(full)
        if isinstance(obj, type):
            state_refs = trampolines(f"{full}.__setstate__")
            if refs or state_refs:
                self._classes[id(obj)] = (full, refs, state_refs)
        elif refs:
            obj = self._checked(full, obj, refs)
        self._admitted[id(obj)] = obj
        return obj

    def _is_admitted(self, obj: Any) -> bool:
        return self._admitted.get(id(obj)) is obj

    def _is_guarded(self, obj: Any) -> bool:
        return id(obj) in self._guards

    def _checked(self, full: str, fn: Any, refs: tuple[ArgRef, ...]) -> Any:
        guard = self._guards.get(id(fn))

        @functools.wraps(fn)
        def call(*args: Any, **kw: Any) -> Any:
            self._work.tick()
            check_calls(self.filename, full, refs, args, self._is_admitted, self._is_guarded)
            if guard is not None:
                guard(args, kw)
            return fn(*args, **kw)

        self._guards.pop(id(call), None)
        return call

    def _before_call(self, func: Any, args: Any, kw: dict[str, Any]) -> None:
        if not isinstance(args, tuple):
            return  # the unpickler itself rejects it
        guard = self._guards.get(id(func))
        if guard is not None:
            guard(args, kw)
        entry = self._classes.get(id(func))
        if entry is not None and entry[1]:
            # defaultdict calls its factory with no arguments: a size guard has nothing to check
            guarded = (lambda o: False) if entry[0] == "collections.defaultdict" else self._is_guarded
            check_calls(self.filename, entry[0], entry[1], args, self._is_admitted, guarded)

    def load_reduce(self) -> None:
        self._before_call(self.stack[-2], self.stack[-1], {})
        pickle._Unpickler.load_reduce(self)  # type: ignore[attr-defined]

    def load_newobj(self) -> None:
        self._before_call(self.stack[-2], self.stack[-1], {})
        pickle._Unpickler.load_newobj(self)  # type: ignore[attr-defined]

    def load_newobj_ex(self) -> None:
        kw = self.stack[-1]
        self._before_call(self.stack[-3], self.stack[-2], kw if isinstance(kw, dict) else {})
        pickle._Unpickler.load_newobj_ex(self)  # type: ignore[attr-defined]

    def load_build(self) -> None:
        from joblib.numpy_pickle import NumpyArrayWrapper

        state, inst = self.stack[-1], self.stack[-2]
        entry = self._classes.get(id(type(inst)))
        if entry is not None and entry[2]:
            check_calls(self.filename, f"{entry[0]}.__setstate__", entry[2], (state,),
                        self._is_admitted, self._is_guarded)
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        top = self.stack[-1]
        if isinstance(inst, collections.defaultdict) and inst.default_factory is not None \
                and not self._is_admitted(inst.default_factory):
            raise UnsafeArtifactError(f"{self.filename}: refuses to load a defaultdict whose"
                                      " state sets a default_factory that is not admitted")
        if isinstance(top, NumpyArrayWrapper):
            # joblib allocates the whole array from the wrapper's shape before reading it
            self.stack.pop()
            n = shape_bytes(top.shape, top.dtype)
            if n is not None and n > self._limits.max_bytes:
                raise too_big(self.filename, f"a joblib array of shape {tuple(top.shape)}", n,
                              self._limits)
            self.stack.append(top.read(self, self.ensure_native_byte_order))

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build


def _load_torch_zip(p: Path, policy: Policy) -> Any:
    ctx = ScanContext(policy=policy)
    try:
        with zipfile.ZipFile(p) as zf:
            names = [n for n in zf.namelist() if n.endswith(".pkl")]
            if not names:
                raise SourceError(f"{p}: a zip file with no pickle inside; not a PyTorch"
                                  " checkpoint mlwarden can load")
            for name in names:
                with zf.open(name) as member:
                    # typeshed types zf.open() as IO[bytes]; it is a ZipExtFile, a readable BufferedIOBase
                    scan_pickle(io.BufferedReader(member), ctx,  # type: ignore[type-var]
                                Where(path=str(p)).child(name))
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise SourceError(f"{p}: cannot read the zip checkpoint ({e}); it is corrupt") from e
    _refuse_on(ctx, p)
    try:
        import torch
    except ImportError:
        raise SourceError(f"{p}: a PyTorch checkpoint; install torch (pip install torch) to"
                          " load it") from None
    try:
        return torch.load(p, weights_only=True, map_location="cpu")
    except Exception as e:
        raise SourceError(f"{p}: torch.load(weights_only=True) refused or failed"
                          f" ({type(e).__name__}: {e})") from e
