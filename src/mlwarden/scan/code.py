"""AST scanner for ML training and serving code: unsafe loads, remote code, unpinned downloads.

Reads Python files and Jupyter notebooks as text and parses them with :mod:`ast`; nothing
scanned is imported or run. Calls are matched by the fully-qualified name they resolve to
through the file's own imports (``import pickle as pk``, ``from torch import load``), simple
assignments (``tf = tarfile.open(p)``, ``with zipfile.ZipFile(p) as z``) and parameter
annotations, so ``pk.load(f)`` is found while ``self.store.load()`` or a local ``def load``
is not. What each rule finds and why lives in :mod:`mlwarden.scan.code_rules`; how names
resolve, in :mod:`mlwarden.scan.code_resolve`.
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
from .code_resolve import Analysis
from .code_rules import RULES, Rule

__all__ = ["RULES", "CodeIssue", "Rule", "scan_code_paths", "scan_notebook_file",
           "scan_python_file", "scan_source"]

SKIP_DIRS = frozenset({".venv", "venv", "site-packages", "node_modules", ".git", "__pycache__",
                       ".ipynb_checkpoints", ".tox", ".nox", ".mypy_cache"})
MAX_SOURCE_BYTES = 16 << 20
MAX_NOTEBOOK_BYTES = 64 << 20  # notebooks carry outputs (images) beside their code
_PY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "writefile", "px"}
_MAGIC_LINE = re.compile(r"(\s*)(?:[!%]|\w+\s*=\s*[!%])")


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
    analysis, parsed = Analysis(), []
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
