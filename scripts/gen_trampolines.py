"""Regenerate src/mlwarden/scan/trampolines.txt: allowlisted callables that call an argument.

Run after upgrading numpy, pandas, scikit-learn or torch (and after changing the
allowlists): `python scripts/gen_trampolines.py`; `--check` exits 1 when the committed file
is out of date. An allowlisted callable is only as safe as what it calls: pandas'
``_new_IntervalIndex(cls, d)`` calls ``cls.from_arrays(**d)`` and torch's
``_rebuild_from_type_v2(func, ...)`` calls ``func(*args)``, so a file can pass them anything
to call. This script reads the *code* of every callable the allowlist admits (policy.SAFE,
allowlist_sklearn.txt, allowlist_torch.txt) and lists each one that calls a parameter, or an
attribute of a parameter, as ``INDEX`` or ``INDEX.ATTR`` (``args[INDEX]`` is called, or
``getattr(args[INDEX], ATTR)`` is). For a class the parameters are those of ``__new__`` and
``__init__`` (what REDUCE and NEWOBJ pass); ``Class.__setstate__`` lines give what the class's
``__setstate__`` calls on the BUILD state (index 0).

What the analysis follows: aliases of a parameter (``f = p``, ``f = p.attr``,
``f = getattr(p, "attr")``, conditional and ``or`` expressions), ``getattr(p, name)`` where
``name`` is a parameter its caller passes as a constant, and calls into other Python
functions the code names (module functions, ``self.method``) with a parameter as argument,
up to a few levels deep. What it does not follow: values reached through subscripts or
iteration (``state[0].items()``), and ``**kwargs`` passed on. Callables with no Python source
(C, Cython) cannot be read; the ones known to call an argument are in ``_BY_HAND`` below,
each with its reason, and the script prints the rest so a reviewer sees what was assumed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import textwrap
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "mlwarden" / "scan" / "trampolines.txt"
_DEPTH = 4

# C and Cython callables have no source to read. These call something taken from the file:
_BY_HAND: dict[str, tuple[str, ...]] = {
    # dict(m) and OrderedDict(m) call m.keys() when m is not a dict (PyDict_Merge).
    "builtins.dict": ("0.keys",),
    "collections.OrderedDict": ("0.keys",),
    # defaultdict(factory, m): factory() runs on every missing key once the model is in use.
    "collections.defaultdict": ("0", "1.keys"),
    # Cython `def newObj(obj): return obj.__new__(obj)` (sklearn/neighbors/_binary_tree.pxi.tp,
    # sklearn/metrics/_dist_metrics.pyx.tp).
    "sklearn.neighbors._kd_tree.newObj": ("0.__new__",),
    "sklearn.neighbors._ball_tree.newObj": ("0.__new__",),
    "sklearn.metrics._dist_metrics.newObj": ("0.__new__",),
}
# Reviewed C/Cython callables that only take numbers, strings, buffers or arrays, or call
# only special methods looked up on an argument's type (which is the argument's own class
# code, judged when that class is named): every other callable without source that the
# script prints under "no source".


def admitted_names() -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from mlwarden.scan import policy

    names = set(policy.SAFE) | set(policy.SAFE_OVER_DANGEROUS) | set(policy._sklearn_estimators())
    names |= set(policy._torch_layers())
    return sorted(names)


def resolve(full: str) -> object | None:
    parts = full.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _function_ast(fn: types.FunctionType) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == fn.__name__:
            return node
    return None


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = node.args
    names = [p.arg for p in a.posonlyargs + a.args]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    return names + [p.arg for p in a.kwonlyargs]


Ref = tuple[str, str | None]  # (parameter name, attribute or None; "@p" = attribute named by parameter p)


class _Analysis:
    """Which parameters of a Python function it calls, directly or through callees."""

    def __init__(self) -> None:
        self.memo: dict[object, set[Ref]] = {}
        self.no_source: set[str] = set()

    def refs(self, fn: object, depth: int = 0) -> set[Ref]:
        fn = inspect.unwrap(fn) if callable(fn) else fn  # type: ignore[arg-type]
        if isinstance(fn, (classmethod, staticmethod)):
            fn = fn.__func__
        if isinstance(fn, types.MethodType):
            fn = fn.__func__
        if not isinstance(fn, types.FunctionType) or depth > _DEPTH:
            return set()
        if fn in self.memo:
            return self.memo[fn]
        self.memo[fn] = set()  # recursion guard
        node = _function_ast(fn)
        out = set() if node is None else self._scan(fn, node, depth)
        self.memo[fn] = out
        return out

    def _scan(self, fn: types.FunctionType, node: ast.FunctionDef | ast.AsyncFunctionDef,
              depth: int) -> set[Ref]:
        params = [p.lstrip("*") for p in _params(node)]
        taint: dict[str, set[Ref]] = {p: {(p, None)} for p in params}
        body = list(ast.walk(node))
        for _ in range(3):  # aliases of aliases
            for n in body:
                if isinstance(n, ast.Assign):
                    t = self._expr(n.value, taint)
                    for target in n.targets:
                        if isinstance(target, ast.Name) and t:
                            taint.setdefault(target.id, set()).update(t)
                elif isinstance(n, (ast.AnnAssign, ast.NamedExpr)) and n.value is not None:
                    t = self._expr(n.value, taint)
                    if isinstance(n.target, ast.Name) and t:
                        taint.setdefault(n.target.id, set()).update(t)
        out: set[Ref] = set()
        for n in body:
            if not isinstance(n, ast.Call):
                continue
            out |= self._called(n.func, taint)
            if isinstance(n.func, ast.Call):
                continue
            callee = self._callee(fn, n.func)
            if callee is None:
                continue
            inner = self.refs(callee[0], depth + 1)
            if not inner:
                continue
            cparams = self._callee_params(callee[0])
            bound = self._bind(n, cparams, callee[1])
            for pname, attr in inner:
                arg = bound.get(pname)
                if arg is None:
                    continue
                for src, sattr in self._expr(arg, taint):
                    if attr is not None and attr.startswith("@"):
                        const = bound.get(attr[1:])
                        attr = const.value if isinstance(const, ast.Constant) and isinstance(const.value, str) else "*"
                    out.add((src, sattr if sattr is not None else attr))
        return {(p, a) for p, a in out if p in params}

    def _expr(self, e: ast.expr, taint: dict[str, set[Ref]]) -> set[Ref]:
        if isinstance(e, ast.Name):
            return set(taint.get(e.id, ()))
        if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name):
            return {(p, a if a is not None else e.attr) for p, a in taint.get(e.value.id, ())}
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "getattr" \
                and len(e.args) >= 2 and isinstance(e.args[0], ast.Name):
            name = e.args[1]
            attr = name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) \
                else f"@{name.id}" if isinstance(name, ast.Name) else "*"
            return {(p, a if a is not None else attr) for p, a in taint.get(e.args[0].id, ())}
        if isinstance(e, ast.IfExp):
            return self._expr(e.body, taint) | self._expr(e.orelse, taint)
        if isinstance(e, ast.BoolOp):
            return set().union(*(self._expr(v, taint) for v in e.values))
        return set()

    def _called(self, func: ast.expr, taint: dict[str, set[Ref]]) -> set[Ref]:
        return self._expr(func, taint)

    @staticmethod
    def _callee(fn: types.FunctionType, func: ast.expr) -> tuple[object, int] | None:
        """The Python function a call names, and how many leading parameters it binds itself."""
        chain: list[str] = []
        e = func
        while isinstance(e, ast.Attribute):
            chain.append(e.attr)
            e = e.value
        if not isinstance(e, ast.Name):
            return None
        chain.append(e.id)
        chain.reverse()
        if chain[0] in ("self", "cls") and len(chain) == 2:
            owner = _owner_class(fn)
            target = inspect.getattr_static(owner, chain[1], None) if owner else None
            if isinstance(target, (staticmethod,)):
                return target.__func__, 0
            if isinstance(target, classmethod) or isinstance(target, types.FunctionType):
                return getattr(target, "__func__", target), 1
            return None
        obj = _local_imports(fn).get(chain[0]) or fn.__globals__.get(chain[0])
        for attr in chain[1:]:
            obj = getattr(obj, attr, None)
        if isinstance(obj, type):
            init = inspect.getattr_static(obj, "__init__", None)
            return (init, 1) if isinstance(init, types.FunctionType) else None
        if isinstance(obj, types.MethodType):
            return obj.__func__, 1
        return (obj, 0) if isinstance(obj, types.FunctionType) else None

    @staticmethod
    def _callee_params(fn: object) -> list[str]:
        node = _function_ast(fn) if isinstance(fn, types.FunctionType) else None
        return [p for p in _params(node)] if node else []

    @staticmethod
    def _bind(call: ast.Call, params: list[str], skip: int) -> dict[str, ast.expr]:
        bound: dict[str, ast.expr] = {}
        positional = [p for p in params[skip:] if not p.startswith("*")]
        for p, a in zip(positional, call.args):
            if isinstance(a, ast.Starred):
                break
            bound[p] = a
        star = next((p[1:] for p in params if p.startswith("*")), None)
        if star is not None:
            for a in call.args:
                if isinstance(a, ast.Starred):
                    bound[star] = a.value
        for kw in call.keywords:
            if kw.arg is not None:
                bound[kw.arg] = kw.value
        return bound


def _local_imports(fn: types.FunctionType) -> dict[str, object]:
    """Names a function imports inside its body (pandas does this to break import cycles)."""
    node = _function_ast(fn)
    out: dict[str, object] = {}
    for n in ast.walk(node) if node else ():
        if isinstance(n, ast.ImportFrom) and n.module:
            base = importlib.util.resolve_name("." * n.level + n.module, fn.__module__.rpartition(".")[0]) \
                if n.level else n.module
            try:
                mod = importlib.import_module(base)
            except ImportError:
                continue
            for alias in n.names:
                out[alias.asname or alias.name] = getattr(mod, alias.name, None)
    return out


def _owner_class(fn: types.FunctionType) -> type | None:
    qual = fn.__qualname__.split(".")
    if len(qual) < 2:
        return None
    obj: object = sys.modules.get(fn.__module__)
    for part in qual[:-1]:
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


def _as_refs(fn: object, refs: set[Ref], skip: int) -> set[str]:
    node = _function_ast(fn) if isinstance(fn, types.FunctionType) else None
    if node is None:
        return set()
    params = _params(node)[skip:]
    out = set()
    for pname, attr in refs:
        if ("*" + pname) in params:
            idx = params.index("*" + pname)  # f(*args) calls args[idx:]; the first is what runs
        elif pname in params:
            idx = params.index(pname)
        else:
            continue
        if attr is not None and attr.startswith("@"):
            attr = "*"
        out.add(f"{idx}.{attr}" if attr else str(idx))
    return out


def _class_refs(cls: type, an: _Analysis) -> tuple[set[str], set[str]]:
    ctor: set[str] = set()
    for meth in ("__new__", "__init__"):
        fn = inspect.getattr_static(cls, meth, None)
        fn = getattr(fn, "__func__", fn)
        if isinstance(fn, types.FunctionType):
            ctor |= _as_refs(fn, an.refs(fn), 1)
    setstate = inspect.getattr_static(cls, "__setstate__", None)
    state = _as_refs(setstate, an.refs(setstate), 1) if isinstance(setstate, types.FunctionType) else set()
    return ctor, state


def table() -> tuple[dict[str, tuple[str, ...]], list[str]]:
    an = _Analysis()
    rows: dict[str, set[str]] = {}
    no_source: list[str] = []
    for full in admitted_names():
        obj = resolve(full)
        if obj is None or not callable(obj):
            continue
        # numpy's public functions are C dispatchers around a Python implementation.
        obj = getattr(obj, "_implementation", obj)
        if isinstance(obj, type):
            ctor, state = _class_refs(obj, an)
            if ctor:
                rows.setdefault(full, set()).update(ctor)
            if state:
                rows.setdefault(f"{full}.__setstate__", set()).update(state)
        elif isinstance(obj, (types.FunctionType, types.MethodType)):
            refs = _as_refs(getattr(obj, "__func__", obj), an.refs(obj),
                            1 if isinstance(obj, types.MethodType) else 0)
            if refs:
                rows.setdefault(full, set()).update(refs)
        else:
            no_source.append(full)
    for full, refs in _BY_HAND.items():
        rows.setdefault(full, set()).update(refs)
    return {k: tuple(sorted(v)) for k, v in sorted(rows.items())}, sorted(no_source)


def versions() -> Iterator[str]:
    for mod in ("numpy", "scipy", "pandas", "sklearn", "torch"):
        try:
            yield f"{mod} {importlib.import_module(mod).__version__}"
        except ImportError:
            yield f"{mod} (not installed)"


def render() -> tuple[str, list[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows, no_source = table()
    head = ("# Allowlisted callables that call an argument taken from the file"
            " (scripts/gen_trampolines.py).\n"
            f"# Derived from the code of: {', '.join(versions())}.\n"
            "# CALLABLE<TAB>REF...  REF = INDEX (args[INDEX] is called) or INDEX.ATTR"
            " (getattr(args[INDEX], ATTR) is called; ATTR * = a computed name).\n"
            "# CLASS.__setstate__ lines: index 0 is the BUILD state.\n")
    return head + "".join(f"{k}\t{' '.join(v)}\n" for k, v in rows.items()), no_source


def main(argv: list[str]) -> int:
    text, no_source = render()
    if "--check" in argv:
        same = OUT.read_text(encoding="utf-8") == text
        print("in sync" if same else f"{OUT} is out of date; run scripts/gen_trampolines.py")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10)) - 4} callables to {OUT}")
    print("no source (C/Cython; reviewed, see _BY_HAND):", " ".join(no_source))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
