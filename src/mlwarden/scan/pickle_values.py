"""The symbolic values of the pickle machine, and a memo that keeps only what verdicts need.

Nothing here is ever imported or called: a global is its name, a call is the callable and
its arguments, and plain data (numbers, long strings, bytes) is one shared sentinel. The
memo remembers every key a pickle stores (so ``MEMOIZE`` numbers keys exactly as the
unpickler does) but holds a *value* only when a verdict could depend on it — a string
that could name a module or attribute, a global, a call, or a container holding a global or
a call —
so a pickle of millions of small tuples costs a counter, not millions of objects.
"""

from __future__ import annotations

from typing import Any


class _Sentinel:
    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


DATA = _Sentinel("<data>")  # a value no verdict depends on (float, bytes, numeric string…)
MISS = _Sentinel("<memo miss>")  # a memo key that was never stored
Opaque = _Sentinel  # kept for callers that test isinstance(v, Opaque)

MAX_ITEMS = 256  # symbolic lists/dicts keep this many items; verdicts never need more


class Global:
    """A global the pickle imported: ``module.name``, or unresolved (``module`` is None).

    ``pending`` is set for resolvers that are harmless in one narrow use (``getattr`` of a
    listed class attribute, ``functools.partial`` of a safe function, both seen in
    ordinary pandas and scikit-learn pickles): every copy of such a global put on the
    stack must be consumed by a call of that shape, or it is reported after all.
    """

    __slots__ = ("full", "module", "name", "pending", "pushes", "reported", "safe_uses")

    def __init__(self, module: str | None, name: str | None, pending: Any = None) -> None:
        self.module, self.name, self.pending = module, name, pending
        self.pushes, self.safe_uses, self.reported = 1, 0, False
        self.full = f"{module}.{name}" if module is not None else None

    def __str__(self) -> str:
        return self.full if self.full is not None else "<unresolved>"

    def copy_ref(self) -> Global:
        """Another stack copy (DUP, GET) of this global; deferred ones count their copies."""
        if self.pending:
            self.pushes += 1
        return self


class Call:
    """The result of calling ``func(*args)`` (REDUCE, NEWOBJ, OBJ, INST); BUILD adds state.

    ``how`` is the opcode; ``kwargs`` comes from NEWOBJ_EX. ``attrs`` holds instance
    attributes where the machine tracks them (joblib's array wrapper), and ``state`` the
    last BUILD state (a numpy dtype's ``__setstate__`` tuple, a partial's state …).
    """

    __slots__ = ("args", "attrs", "func", "how", "items", "kwargs", "state")

    def __init__(self, func: Any, args: Any, how: str, kwargs: Any = None) -> None:
        self.func, self.args, self.how, self.kwargs = func, args, how, kwargs
        self.state: Any = None
        self.attrs: dict[str, Any] | None = None
        self.items: dict[Any, Any] | None = None  # SETITEMS onto it (a dict subclass: Bunch)

    def cls(self) -> str | None:
        """The class this call constructs, seen through copyreg's reconstruction helpers."""
        func, args = self.func, self.args
        if isinstance(func, Global) and func.full in ("copyreg._reconstructor",
                                                      "copyreg.__newobj__",
                                                      "copyreg.__newobj_ex__"):
            func = args[0] if isinstance(args, tuple) and args else None
        return func.full if isinstance(func, Global) else None


def kind(v: Any) -> str:
    if v is MISS:
        return "a memo miss"
    if v is DATA:
        return "a data value"
    if isinstance(v, Call):
        return f"the result of calling {v.func}" if isinstance(v.func, Global) else "a call result"
    return type(v).__name__


def nameish(s: str) -> bool:
    """Whether ``s`` could be a dotted module or attribute name (what STACK_GLOBAL needs)."""
    return s.replace(".", "_").isidentifier()


def keep(v: Any) -> bool:
    """Whether a memoized value can matter to a verdict (see the module docstring)."""
    t = type(v)
    if t is str:
        return nameish(v)
    if t is tuple or t is list:
        # A container matters only through a global or a call it holds: no opcode takes a
        # string back out of a tuple, list or dict (STACK_GLOBAL reads the stack, INST its
        # own line), so (i, 2.5, "x") rows cost nothing however many a pickle memoizes.
        for x in v:
            tx = type(x)
            if tx is int or tx is _Sentinel or tx is str:  # the common items, before the set lookup
                continue
            if tx not in _PLAIN:
                return True
        return False
    if t is dict:
        return bool(v) and (keep(tuple(v)) or keep(tuple(v.values())))
    return t is Global or t is Call


_PLAIN = frozenset({int, float, bool, bytes, type(None), _Sentinel})


class Memo:
    """Which keys exist (dense prefix + sparse extras) and the values worth keeping."""

    __slots__ = ("dense", "extra", "vals")

    def __init__(self) -> None:
        self.dense = 0
        self.extra: set[int] = set()
        self.vals: dict[int, Any] = {}

    def __len__(self) -> int:
        return self.dense + len(self.extra)

    def put(self, key: int, v: Any) -> None:
        if key >= self.dense:
            if key == self.dense:
                self.dense += 1
                self.extra.discard(key)
                while self.extra and self.dense in self.extra:
                    self.extra.remove(self.dense)
                    self.dense += 1
            else:
                self.extra.add(key)
        if keep(v):
            self.vals[key] = v
        elif key in self.vals:
            del self.vals[key]

    def get(self, key: int) -> Any:
        v = self.vals.get(key)
        if v is not None:
            return v
        return DATA if key < self.dense or key in self.extra else MISS


def extend(target: Any, items: list[Any], pairs: bool) -> None:
    """APPENDS/SETITEMS onto a symbolic list or dict (other targets keep nothing)."""
    t = type(target)
    if t is list and not pairs:
        room = MAX_ITEMS - len(target)
        if room > 0:
            target.extend(items[:room])
    elif t is Call and pairs:
        if target.items is None:
            target.items = {}
        extend(target.items, items, True)
    elif t is dict and pairs:
        for k, v in zip(items[::2], items[1::2]):
            if len(target) >= MAX_ITEMS:
                break
            if type(k) in (str, int, bytes, bool):
                target[k] = v


def build(name: str, items: list[Any]) -> Any:
    if name == "TUPLE":
        return tuple(items)
    if name == "LIST":
        return items[:MAX_ITEMS]
    if name == "DICT":
        d: dict[Any, Any] = {}
        extend(d, items, True)
        return d
    return DATA  # FROZENSET
