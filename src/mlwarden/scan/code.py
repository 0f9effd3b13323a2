"""AST scanner for ML training and serving code: unsafe loads, remote code, unpinned downloads.

Reads Python files and Jupyter notebooks as text and parses them with :mod:`ast`; nothing
scanned is imported or run. Calls are matched by the fully-qualified name they resolve to
through the file's own imports (``import pickle as pk``, ``from torch import load``), simple
assignments (``tf = tarfile.open(p)``, ``with zipfile.ZipFile(p) as z``) and parameter
annotations, so ``pk.load(f)`` is found while ``self.store.load()`` or a local ``def load``
is not. What each rule finds and why lives in :mod:`mlwarden.scan.code_rules`.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SourceError
from ..findings import Severity
from .code_rules import CALL_CHECKS, CANONICAL, RULES, UNKNOWN, Hit, Rule, check_from_pretrained
from .code_rules import check_trust_dict, check_trust_remote_code

__all__ = ["RULES", "CodeIssue", "Rule", "scan_code_paths", "scan_notebook_file",
           "scan_python_file", "scan_source"]

SKIP_DIRS = frozenset({".venv", "venv", "site-packages", "node_modules", ".git", "__pycache__",
                       ".ipynb_checkpoints", ".tox", ".nox", ".mypy_cache"})
MAX_SOURCE_BYTES = 16 << 20
MAX_NOTEBOOK_BYTES = 64 << 20  # notebooks carry outputs (images) beside their code
_MAX_DEPTH = 24  # alias chains (a = b; b = c …) are followed this far, no further
_PY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "writefile", "px"}
_MAGIC_LINE = re.compile(r"(\s*)(?:[!%]|\w+\s*=\s*[!%])")
_KNOWN = frozenset(q for q in CALL_CHECKS if "()" not in q)


@dataclass(frozen=True, kw_only=True)
class CodeIssue:
    """One finding in source code. Lines are 1-based, columns 1-based (characters)."""

    rule: str
    severity: Severity
    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    message: str
    remediation: str
    snippet: str


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


class _Analysis:
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

    def __init__(self, analysis: _Analysis, scope: _Scope) -> None:
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


def _issue(rule: str, severity: Severity, path: str, lines: list[str], line: int, col: int,
           end_line: int, end_col: int, message: str) -> CodeIssue:
    def chars(ln: int, byte_col: int) -> int:  # ast columns are UTF-8 byte offsets
        text = lines[ln - 1] if 0 < ln <= len(lines) else ""
        return len(text.encode("utf-8", "replace")[:byte_col].decode("utf-8", "replace")) + 1

    snippet = lines[line - 1].strip()[:200] if 0 < line <= len(lines) else ""
    return CodeIssue(rule=rule, severity=severity, path=path, line=line, col=chars(line, col),
                     end_line=end_line, end_col=chars(end_line, end_col), message=message,
                     remediation=RULES[rule].remediation, snippet=snippet)


def _note(rule: str, path: str, message: str, line: int = 1,
          lines: list[str] | None = None) -> CodeIssue:
    return _issue(rule, RULES[rule].severity, path, lines or [], line, 0, line, 0, message)


def _scan_units(units: list[tuple[str, str]]) -> list[CodeIssue]:
    """Scan ``(path, source)`` units that share one module namespace (a file, or a notebook)."""
    analysis, parsed = _Analysis(), []
    issues: list[tuple[int, CodeIssue]] = []
    for index, (path, text) in enumerate(units):
        lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
        skipped = f"the {'cell' if '#cell=' in path else 'file'} was not scanned"
        try:
            analysis.walk(ast.parse("\n".join(lines), filename=path), index)
        except SyntaxError as e:
            where = f" at line {e.lineno}" if e.lineno else ""
            issues.append((index, _note("code.parse_error", path, f"not valid Python{where}: "
                                        f"{e.msg}; {skipped}", e.lineno or 1, lines)))
        except ValueError as e:  # null bytes, lone surrogates
            issues.append((index, _note("code.parse_error", path,
                                        f"cannot parse: {e!s:.200}; {skipped}")))
        except (RecursionError, MemoryError):
            issues.append((index, _note("code.parse_error", path,
                                        f"expressions nested too deeply to parse; {skipped}")))
        parsed.append(lines)
    for index, node, hit in analysis.hits():
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        end = getattr(node, "end_lineno", None) or line
        end_col = getattr(node, "end_col_offset", None) or col
        issues.append((index, _issue(hit.rule, hit.severity, units[index][0], parsed[index],
                                     line, col, end, end_col, hit.message)))
    issues.sort(key=lambda p: (p[0], p[1].line, p[1].col, p[1].rule))
    return [issue for _, issue in issues]


def scan_source(text: str, path: str) -> list[CodeIssue]:
    """Scan one Python source text; ``path`` is only used to label the issues."""
    return _scan_units([(path, text)])


def _read(path: Path, limit: int) -> tuple[str | None, list[CodeIssue]]:
    """Read and decode a file, or say why it could not be (too large, unreadable)."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        why = f"cannot read the file: {e.strerror or e}"
        return None, [_note("code.parse_error", str(path), why)]
    if len(data) > limit:
        why = f"larger than {limit >> 20} MiB; not scanned"
        return None, [_note("code.too_large", str(path), why)]
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        encoding = "utf-8"
    try:
        return data.decode(encoding), []
    except (UnicodeDecodeError, LookupError):
        text = data.decode("utf-8", errors="replace")
        return text, [_note("code.decode_error", str(path), f"not valid {encoding}; decoded with "
                            "replacement characters, so findings may be incomplete")]


def scan_python_file(path: str | Path) -> list[CodeIssue]:
    """Scan one ``.py`` file; never raises on bad content (it becomes an issue)."""
    text, notes = _read(Path(path), MAX_SOURCE_BYTES)
    return notes + ([] if text is None else scan_source(text, str(path)))


def _cell_source(source: str) -> str | None:
    """A code cell as Python: IPython magics and ``!shell`` lines become ``pass``, keeping
    line numbers; ``None`` for cells in another language (``%%bash``, ``%%html`` …)."""
    first = source.lstrip().split("\n", 1)[0]
    if first.startswith("%%") and (first[2:].split() or [""])[0] not in _PY_CELL_MAGICS:
        return None
    out = []
    for line in source.split("\n"):
        m = _MAGIC_LINE.match(line)
        out.append(f"{m.group(1)}pass" if m else line)
    return "\n".join(out)


def scan_notebook_file(path: str | Path) -> list[CodeIssue]:
    """Scan a Jupyter notebook's code cells as one module (imports carry across cells).

    Issues name the cell in their path, ``nb.ipynb#cell=N`` (N counts every cell from 1,
    markdown included, as they appear top to bottom), and their line within that cell.
    """
    text, notes = _read(Path(path), MAX_NOTEBOOK_BYTES)
    if text is None:
        return notes
    try:
        nb = json.loads(text)
        cells = nb.get("cells") or [c for ws in nb.get("worksheets", []) for c in ws["cells"]]
        lang = (nb.get("metadata") or {}).get("kernelspec", {}).get("language", "python")
    except (ValueError, RecursionError, AttributeError, KeyError, TypeError) as e:
        return notes + [_note("code.parse_error", str(path), f"not a valid notebook: {e!s:.200}")]
    if isinstance(lang, str) and not lang.lower().startswith("python"):
        return notes  # an R or Julia notebook: not ours to parse
    units = []
    for n, cell in enumerate(cells if isinstance(cells, list) else [], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", cell.get("input", ""))
        src = "".join(s for s in src if isinstance(s, str)) if isinstance(src, list) else src
        if isinstance(src, str) and (py := _cell_source(src)) is not None:
            units.append((f"{path}#cell={n}", py))
    return notes + _scan_units(units)


def _discover(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    seen: set[Path] = set()
    for root in map(Path, paths):
        if root.is_file():
            found = [root]
        elif root.is_dir():
            found = []
            for base, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS
                                 and not (Path(base, d) / "pyvenv.cfg").exists())
                found += [Path(base, f) for f in sorted(files)
                          if f.endswith((".py", ".ipynb")) and Path(base, f).is_file()]
            found.sort(key=lambda f: f.parts)
        else:
            raise SourceError(f"{root}: no such file or directory; list the folders of your "
                              "training and serving code under `code:` in the spec")
        for f in found:
            if (key := f.resolve()) not in seen:
                seen.add(key)
                out.append(f)
    return out


def scan_code_paths(paths: Iterable[str | Path]) -> tuple[list[CodeIssue], int]:
    """Scan files and folders (recursively: ``*.py`` and ``*.ipynb``, skipping virtualenvs,
    ``node_modules``, ``.git`` and caches). Returns the issues and how many files were read.
    A named file is scanned whatever its suffix (``.ipynb`` as a notebook, else as Python)."""
    files = _discover(paths)
    issues: list[CodeIssue] = []
    for f in files:
        issues += scan_notebook_file(f) if f.suffix == ".ipynb" else scan_python_file(f)
    return issues, len(files)
