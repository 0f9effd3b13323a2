"""Bounds and call checks for the safe loader: what an admitted global may do with the file's values.

The allowlist decides *which* callables a model file may reach; this module decides *how*:

- **Trampolines.** Some admitted callables call one of their arguments
  (``_rebuild_from_type_v2(func, …)`` runs ``func(*args)``; see ``policy.trampolines``). Such
  a call is allowed only when the called argument is itself admitted: an object this load
  resolved through the allowlist, or a method that the argument's own class defines (not one
  an instance carries in its ``__dict__`` or ``__slots__``, which the file chose).
- **Sizes.** A 30-byte pickle can ask for ``bytearray(1_500_000_000)``. Constructors that
  take a size, a shape or an exponent from the file are checked before they run: the memory
  they would allocate must stay under ``LoadLimits.max_bytes``, and numbers handed to
  ``Fraction``/``Decimal``/``int`` may not have more than ``MAX_DIGITS`` digits or an exponent
  beyond it (``Fraction('1e30000000')`` is 34 s of CPU otherwise).
- **Work.** Each opcode allocates a bounded amount (bulk bytes come from the file itself),
  so with the constructors above checked, memory and time grow with the opcodes run; those
  are counted (``max_ops``) and a wall-clock deadline is checked as they run.

Default bounds (``LoadLimits.for_file``): ``max_bytes`` = min(half the available RAM,
max(256 MiB, 64 × file size)); ``max_ops`` = max(10 million, 64 × file size); 300 s.
A real model's arrays are written into its file, so they never need the size bound to be
larger than the file (compressed files expand: hence the factor 64).
"""

from __future__ import annotations

import decimal
import fractions
import inspect
import math
import os
import re
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SourceError
from .scan.policy import ArgRef

MIB = 1 << 20
MAX_DIGITS = 4300  # CPython's own default limit on int <-> str conversion
_EXPONENT = re.compile(r"[eE]\s*([-+]?\d+)")


class LoadLimitError(SourceError):
    """A model file asks for more memory or work than its size can justify; it was not loaded."""


class UnadmittedCallError(SourceError):
    """An admitted callable would call something the allowlist does not admit."""


@dataclass(frozen=True, kw_only=True)
class LoadLimits:
    """How much memory one constructor may allocate, how many opcodes and seconds a load may take."""

    max_bytes: int
    max_ops: int
    max_seconds: float = 300.0

    @classmethod
    def for_file(cls, size: int) -> LoadLimits:
        return cls(max_bytes=min(_available_ram() // 2, max(256 * MIB, 64 * size)),
                   max_ops=max(10_000_000, 64 * size))


def _available_ram() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


class Work:
    """Counts opcodes and watches the clock; ``tick`` raises once either bound is passed."""

    def __init__(self, path: str, limits: LoadLimits) -> None:
        self.path, self.limits = path, limits
        self.ops = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def tick(self, n: int = 1) -> None:
        self.ops += n
        if self.ops > self.limits.max_ops:
            raise LoadLimitError(
                f"{self.path}: refuses to load: the pickle runs more than"
                f" {self.limits.max_ops:,} opcodes, beyond the work bound for a file of this"
                " size; if the model is genuine, load it with a larger LoadLimits.max_ops")
        if (self.ops & 1023) == 0 or n > 1:
            self.check_clock()

    def check_clock(self) -> None:
        if time.monotonic() > self.deadline:
            raise LoadLimitError(
                f"{self.path}: refuses to load: unpickling took longer than"
                f" {self.limits.max_seconds:g} s; if the model is genuine, load it with a"
                " larger LoadLimits.max_seconds")


class CountingDispatch(dict):  # type: ignore[type-arg]
    """The unpickler's opcode table, counting each opcode it hands out (see ``Work``)."""

    def __init__(self, table: dict[int, Callable[..., Any]], work: Work) -> None:
        super().__init__(table)
        self._work = work

    def __getitem__(self, key: int) -> Callable[..., Any]:
        self._work.tick()
        return dict.__getitem__(self, key)


def too_big(path: str, what: str, nbytes: int, limits: LoadLimits) -> LoadLimitError:
    return LoadLimitError(
        f"{path}: refuses to load: {what} would allocate {nbytes:,} bytes, more than the"
        f" {limits.max_bytes:,}-byte bound for one object from a file of this size; if the"
        " model is genuine, load it with a larger LoadLimits.max_bytes")


def _as_int(x: Any) -> int | None:
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    index = getattr(type(x), "__index__", None)
    return int(index(x)) if index is not None and type(x).__module__ == "numpy" else None


def shape_bytes(shape: Any, dtype: Any) -> int | None:
    """Bytes an array of ``shape`` and ``dtype`` takes, or None if numpy would reject them."""
    import numpy as np

    dims = [shape] if _as_int(shape) is not None else shape
    try:
        count = math.prod(max(0, int(_as_int(d) or 0)) for d in dims)
        itemsize = np.dtype(dtype).itemsize if dtype is not None else 8
    except (TypeError, ValueError):
        return None
    return count * max(itemsize, 1)


def _digits_check(path: str, what: str, value: Any) -> None:
    """Refuse numbers whose conversion to an exact value costs time or memory beyond bounds."""
    exp: int | None = None
    if isinstance(value, str):
        m = _EXPONENT.search(value)
        exp = int(m.group(1)) if m and len(m.group(1)) <= 12 else (10**12 if m else None)
    elif isinstance(value, decimal.Decimal) and value.is_finite():
        exp = value.adjusted()
    elif isinstance(value, int) and value.bit_length() > MAX_DIGITS * 4:
        raise LoadLimitError(f"{path}: refuses to load: {what} of a {value.bit_length():,}-bit"
                             f" integer, beyond the {MAX_DIGITS}-digit bound on exact numbers")
    if exp is not None and abs(exp) > MAX_DIGITS:
        raise LoadLimitError(f"{path}: refuses to load: {what} with a decimal exponent of"
                             f" {exp:,}, beyond the {MAX_DIGITS}-digit bound on exact numbers"
                             " (computing it would take unbounded time and memory)")


def size_guards(path: str, limits: LoadLimits) -> dict[int, Callable[[Sequence[Any], dict[str, Any]], None]]:
    """Pre-call checks keyed by ``id`` of the real constructor they protect."""
    import numpy as np

    def nbytes_of(what: str, n: int | None) -> None:
        if n is not None and n > limits.max_bytes:
            raise too_big(path, what, n, limits)

    def sized(name: str) -> Callable[[Sequence[Any], dict[str, Any]], None]:
        def check(args: Sequence[Any], kw: dict[str, Any]) -> None:
            src = args[0] if args else kw.get("source")
            n = _as_int(src)
            if n is None and isinstance(src, range):
                n = len(src)
            nbytes_of(f"{name}({n:,})" if n is not None else name, n)
        return check

    def check_range(args: Sequence[Any], kw: dict[str, Any]) -> None:
        try:
            n = len(range(*args))
        except (TypeError, ValueError, OverflowError):
            n = 1 << 63  # a range too long for len() is too long to materialize
        # a range is lazy, but list/set/bytes/numpy turn it into objects of ~64 bytes each
        nbytes_of(f"range of {n:,} items", n * 64)

    def exact(name: str) -> Callable[[Sequence[Any], dict[str, Any]], None]:
        def check(args: Sequence[Any], kw: dict[str, Any]) -> None:
            for a in list(args[:2]) + list(kw.values()):
                _digits_check(path, f"{name}()", a)
        return check

    def ndarray(args: Sequence[Any], kw: dict[str, Any]) -> None:
        shape = args[0] if args else kw.get("shape", ())
        dtype = args[1] if len(args) > 1 else kw.get("dtype")
        nbytes_of("numpy.ndarray", shape_bytes(shape, dtype))

    def reconstruct(args: Sequence[Any], kw: dict[str, Any]) -> None:
        if len(args) >= 3:
            nbytes_of("numpy _reconstruct", shape_bytes(args[1], args[2]))

    def mareconstruct(args: Sequence[Any], kw: dict[str, Any]) -> None:
        if len(args) >= 4:
            nbytes_of("numpy.ma _mareconstruct", shape_bytes(args[2], args[3]))

    guards: dict[Any, Callable[[Sequence[Any], dict[str, Any]], None]] = {
        bytes: sized("bytes"), bytearray: sized("bytearray"), range: check_range,
        int: exact("int"), fractions.Fraction: exact("Fraction"), decimal.Decimal: exact("Decimal"),
        np.ndarray: ndarray,
    }
    for modname in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            guards[__import__(modname, fromlist=["_reconstruct"])._reconstruct] = reconstruct
        except (ImportError, AttributeError):
            pass
    guards[np.ma.core._mareconstruct] = mareconstruct  # type: ignore[attr-defined]
    return {id(k): v for k, v in guards.items()}


_MISSING = object()
_METHODS = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
            types.WrapperDescriptorType, types.ClassMethodDescriptorType, classmethod, staticmethod)


def own_method(obj: Any, attr: str) -> bool:
    """True when ``getattr(obj, attr)`` is a method of ``type(obj)`` (or absent), not a value
    the object carries: an instance ``__dict__`` entry, a slot, a property or ``__getattr__``."""
    if attr == "*":
        return False
    cls = type(obj)
    if cls.__getattribute__ is not object.__getattribute__ and cls.__module__ != "builtins" \
            and not isinstance(obj, type):
        return False
    static = inspect.getattr_static(obj, attr, _MISSING)
    on_type = inspect.getattr_static(cls, attr, _MISSING) if not isinstance(obj, type) else static
    if static is _MISSING:
        return getattr(cls, "__getattr__", None) is None  # absent: the call fails, nothing runs
    return static is on_type and isinstance(static, _METHODS)


def check_calls(path: str, name: str, refs: tuple[ArgRef, ...], args: Sequence[Any],
                admitted: Callable[[Any], bool], guarded: Callable[[Any], bool]) -> None:
    """Refuse ``name(*args)`` when it would call an argument the allowlist does not admit."""
    for ref in refs:
        if ref.index >= len(args):
            continue
        target = args[ref.index]
        if ref.attr is None:
            if admitted(target) and not guarded(target):
                continue
            what = (f"{_name(target)}, a size-taking constructor, with arguments it supplies"
                    " unchecked" if admitted(target) else _describe(target))
        else:
            if guarded(target) and ref.attr in ("__new__", "__init__"):
                what = f"{_name(target)}.{ref.attr}, a size-taking constructor, with arguments" \
                       " it supplies unchecked"
            elif admitted(target) or own_method(target, ref.attr):
                continue
            else:
                what = f"{ref.attr!r} of {_describe(target)}, which the file supplies"
        raise UnadmittedCallError(
            f"{path}: refuses to load {name}: it would call {what} (argument {ref.index});"
            " a callable on the allowlist may only call what the allowlist admits")


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"


def _describe(obj: Any) -> str:
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        return f"{_name(obj)}, which is not on the allowlist"
    return f"a computed {_name(type(obj))} object"
