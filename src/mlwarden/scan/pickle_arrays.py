"""How many bytes joblib reads after a ``NumpyArrayWrapper``: joblib's and numpy's own rules.

joblib's ``NumpyUnpickler`` reads an array right after the BUILD of a wrapper, from the
wrapper's attributes: ``shape`` (product in int64, as ``np.multiply.reduce`` computes it),
``dtype`` (``hasobject`` → a nested pickle; else ``itemsize`` bytes per item) and
``numpy_array_alignment_bytes`` (anything but None → one pad-length byte and the pad).

The attributes come from every construction path the unpickler has: ``__init__`` runs for
REDUCE/INST/OBJ of the class (its defaults set the alignment), never for NEWOBJ,
NEWOBJ_EX or copyreg's ``__newobj__``/``__newobj_ex__``/``_reconstructor``; BUILD then
updates them as ``pickle._Unpickler.load_build`` does (a dict state, or a
``(state, slotstate)`` pair).

A dtype is rebuilt the way numpy's ``arraydescr_setstate`` reads its pickled state:
the element size in the state counts only for the flexible kinds (S, U, V) — a fixed-size
type keeps its own size whatever the state claims — while ``hasobject`` comes from the
state's flags (version ≥ 3) or from the type and fields (older versions). The type code
itself is parsed by ``numpy.dtype`` (a string parser: nothing from the file runs).
Anything the rules cannot settle raises :class:`Unresolved`, which the machine reports high.
"""

from __future__ import annotations

from typing import Any

from .pickle_values import DATA, Call, Global

WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_FIELDS = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
_NO_INIT = ("copyreg.__newobj__", "copyreg.__newobj_ex__", "copyreg._reconstructor")
DTYPES = frozenset({"numpy.dtype", "numpy.core.multiarray.dtype", "numpy._core.multiarray.dtype"})
STRINGDTYPE = frozenset({"numpy._core._internal._convert_to_stringdtype_kwargs",
                         "numpy.core._internal._convert_to_stringdtype_kwargs"})
_INVALID = "<invalid>"
_INT64 = 1 << 63


class Unresolved(Exception):
    """The array's byte count cannot be settled from what the pickle says."""


def _full(v: Any) -> str | None:
    return v.full if isinstance(v, Global) else None


def on_call(call: Call) -> None:
    """Give ``call`` wrapper attributes when it constructs a NumpyArrayWrapper."""
    func, args = _full(call.func), call.args
    if func == WRAPPER:
        if call.how in ("NEWOBJ", "NEWOBJ_EX"):
            call.attrs = {}
            return
        call.attrs = {"allow_mmap": False, "numpy_array_alignment_bytes": 16}  # __init__ defaults
        if type(args) not in (tuple, list) or not 4 <= len(args) <= 6:
            call.attrs[_INVALID] = "its __init__ arguments cannot be matched"
        else:
            call.attrs.update(zip(_FIELDS, args))
    elif func in _NO_INIT and type(args) is tuple and args and _full(args[0]) == WRAPPER:
        call.attrs = {}
        if func == "copyreg._reconstructor" and not (len(args) == 3 and
                                                      _full(args[1]) == "builtins.object"):
            call.attrs[_INVALID] = "copyreg._reconstructor with a base other than object"


def on_build(call: Call, state: Any) -> None:
    """``load_build`` on a wrapper: a dict state and slot state update its attributes."""
    attrs = call.attrs
    assert attrs is not None
    slots = None
    if type(state) is tuple and len(state) == 2:
        state, slots = state
    for part in (state, slots):
        if part is None or (type(part) in (dict, tuple, list) and not part):
            continue
        if type(part) is dict:
            attrs.update((k, v) for k, v in part.items() if type(k) is str)
        else:
            attrs[_INVALID] = f"its BUILD state is {type(part).__name__}, not a dict the" \
                              " scanner can read"


def layout(call: Call) -> tuple[int, bool, bool]:
    """(array bytes, holds Python objects, reads alignment padding) for a built wrapper."""
    attrs = call.attrs or {}
    if _INVALID in attrs:
        raise Unresolved(attrs[_INVALID])
    shape = attrs.get("shape")
    if not isinstance(shape, (tuple, list)) or any(type(d) not in (int, bool) for d in shape):
        raise Unresolved(f"its shape is {'missing' if shape is None else type(shape).__name__}"
                         " or not made of integers")
    count = 1
    for d in shape:
        if not -_INT64 <= d < _INT64:
            raise Unresolved("a dimension does not fit in int64")
        count = (count * d + _INT64) % (1 << 64) - _INT64  # int64 wrap, as numpy computes it
    if count < 0:
        raise Unresolved("the element count is negative")
    itemsize, hasobject = dtype_info(attrs.get("dtype"))
    if hasobject:
        return 0, True, False
    if itemsize <= 0:
        raise Unresolved(f"the dtype's item size is {itemsize}")
    return count * itemsize, False, attrs.get("numpy_array_alignment_bytes") is not None


def dtype_info(v: Any, depth: int = 0) -> tuple[int, bool]:
    """(itemsize, hasobject) of a dtype rebuilt from its pickled call and state."""
    if not isinstance(v, Call) or depth > 32:
        raise Unresolved(f"its dtype is {type(v).__name__}, not a numpy dtype the scanner can read")
    func, args, kwargs = _full(v.func), v.args, v.kwargs
    if func in ("copyreg.__newobj__", "copyreg.__newobj_ex__") and type(args) is tuple and args:
        if func == "copyreg.__newobj__":
            func, args = _full(args[0]), args[1:]
        elif len(args) == 3:
            func, args, kwargs = _full(args[0]), args[1], args[2]
    if func in STRINGDTYPE and v.state is None:
        return 16, True  # numpy's StringDType holds Python-managed strings: a nested pickle
    if func not in DTYPES or type(args) not in (tuple, list) or not args:
        raise Unresolved(f"its dtype is built by {func or 'a computed object'}")
    kw = kwargs if type(kwargs) is dict else {}
    if kwargs not in (None, {}) and type(kwargs) is not dict:
        raise Unresolved("the dtype's keyword arguments cannot be read")
    code, align = args[0], (args[1] if len(args) > 1 else kw.get("align", False))
    if type(code) is not str or len(code) > 256 or type(align) not in (bool, int):
        raise Unresolved("the dtype's type code is not a short string")
    import numpy as np  # parses a type-code string; nothing from the file is imported

    try:
        base = np.dtype(code, align=bool(align))
    except (TypeError, ValueError, SyntaxError) as e:
        raise Unresolved(f"numpy rejects the type code {code!r} ({e})") from None
    st = v.state
    if st is None:
        return base.itemsize, bool(base.hasobject)
    if type(st) is not tuple or not 5 <= len(st) <= 9:
        raise Unresolved("the dtype state is not a tuple numpy reads")
    n = len(st)
    version = 0 if n == 5 else st[0]
    el = st[{5: 3, 6: 4}.get(n, 5)]
    flags = st[7] if n >= 8 else 0
    fields = st[{5: 2, 6: 3}.get(n, 4)]
    if any(type(x) not in (int, bool) or not -(1 << 31) <= x < 1 << 31 for x in (version, el, flags)):
        raise Unresolved("the dtype state holds a non-integer or out-of-range size or flag")
    if not 0 <= version <= 4:
        raise Unresolved(f"numpy cannot read dtype pickle version {version}")
    if -128 <= flags < 0:
        flags += 128
    if flags < 0:
        raise Unresolved("the dtype flags overflow")
    itemsize = el if base.kind in "SUV" else base.itemsize  # fixed sizes ignore the state
    if version >= 3:
        return itemsize, bool(flags & 1)
    hasobject = bool(flags) or base.kind == "O"
    if not hasobject and fields not in (None, DATA) and type(fields) is dict:
        for value in fields.values():
            sub = value[0] if type(value) is tuple and value else value
            hasobject = hasobject or dtype_info(sub, depth + 1)[1]
    elif not hasobject and fields is not None:
        raise Unresolved("the dtype's fields cannot be read")
    return itemsize, hasobject
