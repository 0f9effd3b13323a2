"""Name resolution for the code scanner: what a call in the scanned source refers to.

Binds names over a whole module (every cell of a notebook) from its imports, simple
assignments, ``with … as`` targets, parameter annotations and class bases, then resolves
each callee to the fully-qualified name the rules in :mod:`mlwarden.scan.code_rules` are
keyed by. Kept apart from :mod:`mlwarden.scan.code`, which reads files and turns hits into
issues, because this is the part that must stay bounded on hostile input (alias webs,
deep chains) and is easiest to reason about alone.
"""

from __future__ import annotations

import ast

from .code_rules import CALL_CHECKS, CANONICAL, UNKNOWN, Hit, check_from_pretrained
from .code_rules import check_trust_dict, check_trust_remote_code

_MAX_DEPTH = 24  # alias chains (a = b; b = c …) are followed this far, no further
_KNOWN = frozenset(q for q in CALL_CHECKS if "()" not in q)


_Binding = tuple[str, object, "_Scope | None"]
"""(kind, payload, scope the payload is resolved in); kind is qual, value, annot, class, opaque."""


class _Scope:
    """Names bound in one function, class or module body: name → bindings in source order."""

    __slots__ = ("kind", "parent", "names", "stars")

    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind, self.parent = kind, parent
        self.names: dict[str, list[_Binding]] = {}
        self.stars: list[str] = []

    def bind(self, name: str, kind: str = "opaque", payload: object = None,
             where: _Scope | None = None) -> None:
        self.names.setdefault(name, []).append((kind, payload, where))


def _canonical(q: str) -> str:
    for _ in range(3):
        for old, new in CANONICAL:
            if q.startswith(old) and q[len(old):len(old) + 1] in ("", ".", "("):
                q = new + q[len(old):]
                break
        else:
            return q
    return q


class Analysis:
    """Binds names over a whole module (every cell of a notebook), then checks its calls."""

    def __init__(self) -> None:
        self.module = _Scope("module", None)
        self.calls: list[tuple[int, ast.Call, _Scope]] = []
        self.dicts: list[tuple[int, ast.Dict, _Scope]] = []
        self._memo: dict[int, str | None] = {}
        self._bases: dict[int, tuple[str, ...]] = {}

    def walk(self, tree: ast.AST, unit: int) -> None:
        stack: list[tuple[ast.AST, _Scope]] = [(tree, self.module)]
        while stack:
            node, scope = stack.pop()
            if isinstance(node, ast.Call):
                self.calls.append((unit, node, scope))
            elif isinstance(node, ast.Dict):
                self.dicts.append((unit, node, scope))
            stack.extend(reversed(self._bind(node, scope)))

    def _bind(self, node: ast.AST, scope: _Scope) -> list[tuple[ast.AST, _Scope]]:
        """Record what ``node`` binds; return its children with the scope each runs in."""
        if isinstance(node, ast.Import):
            for a in node.names:
                name = a.asname or a.name.split(".")[0]
                scope.bind(name, "qual", a.name if a.asname else name)
            return []
        if isinstance(node, ast.ImportFrom):
            mod = "." * node.level + (node.module or "")
            for a in node.names:
                if a.name == "*":
                    scope.stars.append(mod)
                else:
                    scope.bind(a.asname or a.name, "qual", f"{mod}.{a.name}")
            return []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inner, args = _Scope("function", scope), node.args
            out: list[tuple[ast.AST, _Scope]] = []
            if not isinstance(node, ast.Lambda):
                scope.bind(node.name)
                out += [(d, scope) for d in node.decorator_list]
                out += [(node.returns, scope)] if node.returns else []
            for p in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                if p is not None and p.annotation is not None:
                    inner.bind(p.arg, "annot", p.annotation, scope)
                    out.append((p.annotation, scope))
                elif p is not None:
                    inner.bind(p.arg)
            out += [(d, scope) for d in (*args.defaults, *args.kw_defaults) if d is not None]
            body = node.body if isinstance(node.body, list) else [node.body]
            return out + [(s, inner) for s in body]
        if isinstance(node, ast.ClassDef):
            scope.bind(node.name, "class", node, scope)
            inner = _Scope("class", scope)
            heads = [*node.bases, *(k.value for k in node.keywords), *node.decorator_list]
            return [(h, scope) for h in heads] + [(s, inner) for s in node.body]
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out = [(node.value, scope)] if node.value is not None else []
            for t in targets:
                if isinstance(t, ast.Name) and node.value is not None:
                    scope.bind(t.id, "value", node.value, scope)
                elif isinstance(t, ast.Name) and isinstance(node, ast.AnnAssign):
                    scope.bind(t.id, "annot", node.annotation, scope)
                else:
                    out.append((t, scope))
            return out
        if isinstance(node, ast.With | ast.AsyncWith):
            out = []
            for item in node.items:
                out.append((item.context_expr, scope))
                if isinstance(item.optional_vars, ast.Name):
                    scope.bind(item.optional_vars.id, "value", item.context_expr, scope)
                elif item.optional_vars is not None:
                    out.append((item.optional_vars, scope))
            return out + [(s, scope) for s in node.body]
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            scope.bind(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            scope.bind(node.name)
        return [(c, scope) for c in ast.iter_child_nodes(node)]

    def _find(self, name: str, scope: _Scope) -> list[_Binding] | str | None:
        """The bindings ``name`` refers to from ``scope``; a str when only a star import has it."""
        s: _Scope | None = scope
        while s is not None:
            if s.kind != "class" or s is scope:
                if name in s.names:
                    return s.names[name]
                for mod in s.stars:
                    if (q := _canonical(f"{mod}.{name}")) in _KNOWN:
                        return q
            s = s.parent
        return None

    def qualname(self, node: ast.expr, scope: _Scope, depth: int = 0) -> str | None:
        """``pk.load`` → ``pickle.load``; ``tarfile.open(p).extractall`` →
        ``tarfile.open().extractall``; ``None`` for names not bound by an import."""
        parts: list[str] = []
        while not isinstance(node, ast.Name):
            if isinstance(node, ast.Attribute):
                parts.append("." + node.attr)
                node = node.value
            elif isinstance(node, ast.Call):
                parts.append("()")
                node = node.func
            else:
                return None
        found = self._find(node.id, scope)
        if isinstance(found, str):
            base: str | None = found
        elif found is None:
            base = f"builtins.{node.id}" if node.id in ("eval", "exec", "compile") else None
        else:
            base = self._resolve(found, depth)
        return _canonical(base + "".join(reversed(parts))) if base else None

    def _resolve(self, bindings: list[_Binding], depth: int) -> str | None:
        # An import wins over any other binding of the same name in that scope, so that
        # `try: import torch / except ImportError: torch = None` still resolves torch.
        # Memoised per binding list, which keeps hostile alias webs linear and ends cycles.
        key = id(bindings)
        if key in self._memo:
            return self._memo[key]
        if depth > _MAX_DEPTH:
            return None
        self._memo[key] = None
        self._memo[key] = result = self._first(bindings, depth)
        return result

    def _first(self, bindings: list[_Binding], depth: int) -> str | None:
        for kind, payload, where in reversed(bindings):
            q: str | None = None
            if kind == "qual":
                q = payload  # type: ignore[assignment]
            elif kind in ("value", "annot") and where is not None:
                q = self.qualname(payload, where, depth + 1)  # type: ignore[arg-type]
                q = f"{q}()" if q and kind == "annot" else q
            if q:
                return q
        return None

    def constant(self, node: ast.expr, scope: _Scope) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        found = self._find(node.id, scope) if isinstance(node, ast.Name) else None
        if isinstance(found, list):
            values = {repr(p.value): p.value for k, p, _ in found
                      if k == "value" and isinstance(p, ast.Constant)}
            if len(values) == 1 and all(k == "value" for k, _, _ in found):
                return next(iter(values.values()))
        return UNKNOWN

    def ancestry(self, node: ast.expr, scope: _Scope, depth: int = 0) -> tuple[str, ...]:
        """The name ``node`` resolves to, or for a class defined here, its bases' (recursively)."""
        if (q := self.qualname(node, scope)) is not None:
            return (q,)
        found = self._find(node.id, scope) if isinstance(node, ast.Name) else None
        out: tuple[str, ...] = ()
        for kind, payload, where in found if isinstance(found, list) and depth < 8 else ():
            if kind == "class" and isinstance(payload, ast.ClassDef) and where is not None:
                if id(payload) not in self._bases:
                    self._bases[id(payload)] = ()  # a class that names itself as a base
                    self._bases[id(payload)] = tuple(
                        n for b in payload.bases for n in self.ancestry(b, where, depth + 1))
                out += self._bases[id(payload)]
        return out

    def hits(self) -> list[tuple[int, ast.AST, Hit]]:
        out: list[tuple[int, ast.AST, Hit]] = []
        for unit, call, scope in self.calls:
            view = _View(self, scope)
            qual = self.qualname(call.func, scope)
            text = _dotted(call.func)
            same = qual is None or qual == text or qual.endswith(f".{text}")
            shown = f"{text}()" if same else f"{text}() [{qual}]"
            found: list[Hit] = []
            if qual in CALL_CHECKS:
                found += CALL_CHECKS[qual](call, shown, view)
            elif isinstance(call.func, ast.Attribute) and call.func.attr == "from_pretrained":
                found += check_from_pretrained(call, shown, view)
            found += check_trust_remote_code(call, shown, view)
            out += [(unit, call, h) for h in found]
        for unit, node, scope in self.dicts:
            out += [(unit, node, h) for h in check_trust_dict(node, _View(self, scope))]
        return out


class _View:
    """The :class:`~mlwarden.scan.code_rules.Resolver` the checks see, fixed at one scope."""

    def __init__(self, analysis: Analysis, scope: _Scope) -> None:
        self._a, self._scope = analysis, scope

    def qualname(self, node: ast.expr) -> str | None:
        return self._a.qualname(node, self._scope)

    def constant(self, node: ast.expr) -> object:
        return self._a.constant(node, self._scope)

    def ancestry(self, node: ast.expr) -> tuple[str, ...]:
        return self._a.ancestry(node, self._scope)


def _dotted(node: ast.expr) -> str:
    """Source-like text of a callee (``tf.keras.models.load_model``), at most 80 characters."""
    parts: list[str] = []
    while len(parts) < 20:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            parts.append("(…)")
            node = node.func
        else:
            parts.append(node.id if isinstance(node, ast.Name) else "…")
            break
    return ".".join(reversed(parts)).replace(".(…)", "(…)")[:80]
