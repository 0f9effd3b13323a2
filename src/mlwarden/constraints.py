"""Relational constraints of the spec (``constraints:``): a small safe grammar, never ``eval``.

A constraint is a boolean expression over columns, written as a user would write it::

    open_acc <= total_acc
    a + b <= c
    installment == amount * rate / 12 / (1 - (1 + rate / 12) ** (-term)) within 0.01
    grade in {1, 2, 3} and not (term < 12 or region == "north")
    abs(x - y) <= max(1, 0.1 * y)

The tokenizer and recursive-descent parser build a tiny AST of frozen dataclasses;
:func:`evaluate` computes it column-wise with numpy over any mapping of column → array (a
DataFrame works), so a million rows cost one vectorised pass. ``==`` is exact up to float
rounding unless ``within TOL`` gives an absolute tolerance. A row with a missing value in a
column a constraint reads is *not applicable* (neither satisfied nor broken): see
:func:`applicable`. Repair onto constraints lives in :mod:`mlwarden.attacks.repair`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SpecError

FUNCTIONS = {"abs": (1, 1), "min": (2, 8), "max": (2, 8)}
KEYWORDS = {"and", "or", "not", "in", "within"}
COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
REL_EPS = 1e-9
"""Float slack of every comparison (relative to the larger side): rounding is not a violation."""


class ConstraintError(SpecError):
    """A constraint does not parse, or names columns the data lacks."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Str:
    value: str


@dataclass(frozen=True)
class Col:
    name: str


@dataclass(frozen=True)
class Neg:
    x: Any


@dataclass(frozen=True)
class Bin:
    op: str
    a: Any
    b: Any


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Cmp:
    op: str
    a: Any
    b: Any
    tol: float = 0.0


@dataclass(frozen=True)
class In:
    x: Any
    values: tuple[Any, ...]
    negate: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    x: Any


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: its text, its AST and the columns it reads."""

    text: str
    tree: Any
    columns: tuple[str, ...]


_TOKEN = re.compile(r"""\s*(?:
    (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | `(?P<quoted>[^`]+)`
  | (?P<str>"[^"]*"|'[^']*')
  | (?P<op>\*\*|<=|>=|==|!=|[-+*/(),{}<>])
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ConstraintError(f"constraint {text!r}: unexpected character {text[pos:].lstrip()[:1]!r} "
                                  f"at position {pos + 1}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None  # every alternative of the token pattern is a named group
        val = m.group(kind)
        if kind == "num":
            out.append(("num", float(val)))
        elif kind == "name":
            out.append(("kw", val) if val in KEYWORDS else ("name", val))
        elif kind == "quoted":
            out.append(("name", val))
        elif kind == "str":
            out.append(("str", val[1:-1]))
        else:
            out.append(("op", val))
    out.append(("end", None))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def fail(self, what: str) -> ConstraintError:
        kind, val = self.toks[self.i]
        got = "the end" if kind == "end" else repr(val)
        return ConstraintError(f"constraint {self.text!r}: expected {what}, found {got}")

    def peek(self, value: str) -> bool:
        kind, val = self.toks[self.i]
        return kind in ("op", "kw") and val == value

    def take(self, value: str) -> bool:
        if self.peek(value):
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.take(value):
            raise self.fail(repr(value))

    def parse(self) -> Any:
        tree = self.or_()
        if self.toks[self.i][0] != "end":
            raise self.fail("an operator or the end")
        if _type(tree) != "bool":
            raise ConstraintError(f"constraint {self.text!r}: must be a comparison (<=, ==, in …), not a value")
        return tree

    def or_(self) -> Any:
        items = [self.and_()]
        while self.take("or"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(self._bool(x) for x in items))

    def and_(self) -> Any:
        items = [self.not_()]
        while self.take("and"):
            items.append(self.not_())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(self._bool(x) for x in items))

    def not_(self) -> Any:
        if self.take("not"):
            return Not(self._bool(self.not_()))
        return self.comparison()

    def _bool(self, node: Any) -> Any:
        if _type(node) != "bool":
            raise ConstraintError(f"constraint {self.text!r}: 'and', 'or' and 'not' combine comparisons, not values")
        return node

    def comparison(self) -> Any:
        left = self.arith()
        for op in COMPARISONS:
            if self.take(op):
                right = self.arith()
                tol = 0.0
                if self.take("within"):
                    kind, val = self.toks[self.i]
                    if kind != "num":
                        raise self.fail("a tolerance number after 'within'")
                    self.i += 1
                    tol = float(val)
                if op in ("<", ">") and tol:
                    raise ConstraintError(f"constraint {self.text!r}: 'within' suits ==, !=, <= and >=")
                self._same_kind(left, right)
                return Cmp(op, left, right, tol)
        negate = False
        if self.peek("not") and self.toks[self.i + 1] == ("kw", "in"):
            self.i += 1
            negate = True
        if self.take("in"):
            self.expect("{")
            values = [self.literal()]
            while self.take(","):
                values.append(self.literal())
            self.expect("}")
            return In(left, tuple(values), negate)
        return left

    def _same_kind(self, a: Any, b: Any) -> None:
        ta, tb = _type(a), _type(b)
        if "bool" in (ta, tb):
            raise ConstraintError(f"constraint {self.text!r}: cannot compare a comparison; use 'and'/'or'")
        if "str" in (ta, tb) and "num" in (ta, tb) and not (isinstance(a, Col) or isinstance(b, Col)):
            raise ConstraintError(f"constraint {self.text!r}: cannot compare text with a number")

    def literal(self) -> Any:
        sign = -1.0 if self.take("-") else 1.0
        kind, val = self.toks[self.i]
        if kind == "num":
            self.i += 1
            return sign * val
        if kind == "str" and sign > 0:
            self.i += 1
            return val
        raise self.fail("a number or a quoted string")

    def arith(self) -> Any:
        node = self.term()
        while True:
            for op in ("+", "-"):
                if self.take(op):
                    node = Bin(op, self._num(node), self._num(self.term()))
                    break
            else:
                return node

    def term(self) -> Any:
        node = self.unary()
        while True:
            for op in ("*", "/"):
                if self.take(op):
                    node = Bin(op, self._num(node), self._num(self.unary()))
                    break
            else:
                return node

    def unary(self) -> Any:
        if self.take("-"):
            return Neg(self._num(self.unary()))
        if self.take("+"):
            return self._num(self.unary())
        return self.power()

    def power(self) -> Any:
        base = self.atom()
        if self.take("**"):
            return Bin("**", self._num(base), self._num(self.unary()))
        return base

    def _num(self, node: Any) -> Any:
        t = _type(node)
        if t == "bool" or t == "str":
            raise ConstraintError(f"constraint {self.text!r}: arithmetic needs numbers, not "
                                  f"{'a comparison' if t == 'bool' else 'text'}")
        return node

    def atom(self) -> Any:
        kind, val = self.toks[self.i]
        if kind == "num":
            self.i += 1
            return Num(val)
        if kind == "str":
            self.i += 1
            return Str(val)
        if kind == "name":
            self.i += 1
            if self.take("("):
                if val not in FUNCTIONS:
                    raise ConstraintError(f"constraint {self.text!r}: unknown function {val!r} "
                                          f"(known: {', '.join(sorted(FUNCTIONS))})")
                args = [self._num(self.arith())]
                while self.take(","):
                    args.append(self._num(self.arith()))
                self.expect(")")
                lo, hi = FUNCTIONS[val]
                if not lo <= len(args) <= hi:
                    raise ConstraintError(f"constraint {self.text!r}: {val}() takes {lo}"
                                          f"{'' if lo == hi else f' to {hi}'} argument(s), got {len(args)}")
                return Call(val, tuple(args))
            return Col(val)
        if self.take("("):
            node = self.or_()
            self.expect(")")
            return node
        raise self.fail("a number, a column name or '('")


def _type(node: Any) -> str:
    if isinstance(node, (Cmp, In, BoolOp, Not)):
        return "bool"
    if isinstance(node, Str):
        return "str"
    if isinstance(node, Col):
        return "col"
    return "num"


def columns_of(node: Any) -> list[str]:
    """Column names a tree reads, in first-seen order."""
    if isinstance(node, Col):
        return [node.name]
    out: list[str] = []
    for child in _children(node):
        for c in columns_of(child):
            if c not in out:
                out.append(c)
    return out


def _children(node: Any) -> tuple[Any, ...]:
    if isinstance(node, Neg | Not):
        return (node.x,)
    if isinstance(node, Bin | Cmp):
        return (node.a, node.b)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, In):
        return (node.x,)
    if isinstance(node, BoolOp):
        return node.items
    return ()


def parse(text: str) -> Constraint:
    """Parse one constraint, or raise :class:`ConstraintError` with one line saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ConstraintError("a constraint must be a non-empty string such as 'open_acc <= total_acc'")
    tree = _Parser(text).parse()
    return Constraint(text=text.strip(), tree=tree, columns=tuple(columns_of(tree)))


def parse_all(texts: Sequence[str], columns: Sequence[str] | None = None) -> list[Constraint]:
    """Parse every constraint; with ``columns``, also check that each column it reads exists."""
    out = [parse(t) for t in texts]
    if columns is not None:
        for c in out:
            check_columns(c, columns)
    return out


def check_columns(c: Constraint, columns: Sequence[str]) -> None:
    have = set(columns)
    missing = [n for n in c.columns if n not in have]
    if missing:
        raise ConstraintError(f"constraint {c.text!r} names column(s) the data lacks: {', '.join(missing)}")


Env = Mapping[str, Any]


def evaluate(c: Constraint | Any, env: Env) -> np.ndarray:
    """Per row, whether the constraint holds (False where a value it reads is missing)."""
    tree = c.tree if isinstance(c, Constraint) else c
    with np.errstate(all="ignore"):
        out = _eval(tree, env)
    return np.asarray(out, dtype=bool)


def applicable(c: Constraint, env: Env) -> np.ndarray:
    """Rows where every column the constraint reads has a value (NaN/None rows are not judged)."""
    n = _rows(env)
    ok = np.ones(n, dtype=bool)
    for name in c.columns:
        col = np.asarray(env[name])
        ok &= ~_isnull(col)
    return ok


def _rows(env: Env) -> int:
    for v in (env.values() if hasattr(env, "values") else []):
        return len(v)
    return 0


def _isnull(col: np.ndarray) -> np.ndarray:
    if col.dtype.kind in "fc":
        return np.isnan(col)
    if col.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in col], dtype=bool)
    return np.zeros(len(col), dtype=bool)


def _column(env: Env, name: str) -> np.ndarray:
    col = np.asarray(env[name])
    if col.dtype.kind in "biuf":
        return col.astype(np.float64)
    if col.dtype.kind == "O":
        try:
            return col.astype(np.float64)
        except (TypeError, ValueError):
            return col.astype(str)
    return col.astype(str)


def _eval(node: Any, env: Env) -> Any:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Col):
        return _column(env, node.name)
    if isinstance(node, Neg):
        return -_numeric(_eval(node.x, env), node.x)
    if isinstance(node, Bin):
        a, b = _numeric(_eval(node.a, env), node.a), _numeric(_eval(node.b, env), node.b)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        if node.op == "/":
            return np.divide(a, b)
        return np.power(np.asarray(a, dtype=np.float64), b)
    if isinstance(node, Call):
        args = [_numeric(_eval(x, env), x) for x in node.args]
        if node.fn == "abs":
            return np.abs(args[0])
        fn = np.minimum if node.fn == "min" else np.maximum
        out = args[0]
        for a in args[1:]:
            out = fn(out, a)
        return out
    if isinstance(node, Cmp):
        return _compare(node, _eval(node.a, env), _eval(node.b, env))
    if isinstance(node, In):
        x = _eval(node.x, env)
        x = np.asarray(x)
        if x.dtype.kind == "f":
            inside = np.isin(x, [v for v in node.values if not isinstance(v, str)])
        else:
            inside = np.isin(x.astype(str), [str(v) for v in node.values])
        return ~inside if node.negate else inside
    if isinstance(node, BoolOp):
        parts = [np.asarray(_eval(x, env), dtype=bool) for x in node.items]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if node.op == "and" else (out | p)
        return out
    if isinstance(node, Not):
        return ~np.asarray(_eval(node.x, env), dtype=bool)
    raise TypeError(node)


def _numeric(v: Any, node: Any) -> Any:
    arr = np.asarray(v)
    if arr.dtype.kind not in "biuf":
        name = node.name if isinstance(node, Col) else "a value"
        raise ConstraintError(f"constraint arithmetic needs numbers, but {name} holds text")
    return v


def _compare(node: Cmp, a: Any, b: Any) -> np.ndarray:
    sa, sb = np.asarray(a), np.asarray(b)
    if sa.dtype.kind not in "biuf" or sb.dtype.kind not in "biuf":
        sa, sb = sa.astype(str), sb.astype(str)
        if node.op not in ("==", "!="):
            raise ConstraintError(f"text can only be compared with == or != ({node.op} used)")
        eq = sa == sb
        return eq if node.op == "==" else ~eq
    finite = np.isfinite(sa) & np.isfinite(sb)  # x / 0 and overflow break a relation, never satisfy it
    slack = REL_EPS * np.maximum(1.0, np.maximum(np.abs(sa), np.abs(sb))) + node.tol
    d = sa - sb
    if node.op == "<=":
        return finite & (d <= slack)
    if node.op == ">=":
        return finite & (d >= -slack)
    if node.op == "<":
        return finite & (d < 0)
    if node.op == ">":
        return finite & (d > 0)
    if node.op == "==":
        return finite & (np.abs(d) <= slack)
    return finite & ~(np.abs(d) <= slack)


def linear(node: Any) -> tuple[dict[str, float], float] | None:
    """``node`` as Σ coef·column + const, or None when it is not linear in its columns."""
    if isinstance(node, Num):
        return {}, node.value
    if isinstance(node, Col):
        return {node.name: 1.0}, 0.0
    if isinstance(node, Neg):
        inner = linear(node.x)
        return None if inner is None else ({k: -v for k, v in inner[0].items()}, -inner[1])
    if isinstance(node, Bin) and node.op in ("+", "-"):
        a, b = linear(node.a), linear(node.b)
        if a is None or b is None:
            return None
        sign = 1.0 if node.op == "+" else -1.0
        coef = dict(a[0])
        for k, v in b[0].items():
            coef[k] = coef.get(k, 0.0) + sign * v
        return coef, a[1] + sign * b[1]
    if isinstance(node, Bin) and node.op in ("*", "/"):
        a, b = linear(node.a), linear(node.b)
        if a is None or b is None:
            return None
        if node.op == "/":
            if b[0] or b[1] == 0:
                return None
            return {k: v / b[1] for k, v in a[0].items()}, a[1] / b[1]
        if a[0] and b[0]:
            return None
        (coefs, const), scale = (a, b[1]) if not b[0] else (b, a[1])
        return {n: v * scale for n, v in coefs.items()}, const * scale
    return None
