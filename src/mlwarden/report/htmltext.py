"""Values and Markdown-ish text as escaped HTML: nested key/value tables, lists, paragraphs.

The report's evidence, metrics and documentation pass through here. Everything is cut to
:class:`Limits` (rows, items, depth, characters) so one huge value cannot blow the page's
size budget, and everything user-derived is escaped before any markup is added.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Limits:
    """How much of each kind of thing the page shows in full."""

    findings_per_check: int = 50
    findings_total: int = 300
    compact_per_check: int = 200
    compact_total: int = 2000
    rows: int = 40
    items: int = 20
    depth: int = 4
    text: int = 2000
    value: int = 300
    bars: int = 30

    def halved(self) -> Limits:
        return Limits(**{k: max(v // 2, 1) for k, v in self.__dict__.items()})


# --- values as compact tables ----------------------------------------------------------

def kv_table(data: Mapping[Any, Any], lim: Limits, depth: int = 0) -> Markup:
    """A nested key/value table, cut to ``lim.rows`` keys per level and ``lim.depth`` levels."""
    rows = [Markup('<tr><th scope="row">{}</th><td>{}</td></tr>').format(_clip(k, lim.value), _value(v, lim, depth + 1))
            for k, v in islice(data.items(), lim.rows)]
    if len(data) > lim.rows:
        rows.append(Markup('<tr class="more"><td colspan="2">… {:,} more keys (see report.json)</td></tr>')
                    .format(len(data) - lim.rows))
    return Markup('<table class="kv"><tbody>{}</tbody></table>').format(Markup("").join(rows))


def _value(v: Any, lim: Limits, depth: int) -> Markup:
    v = _plain(v)
    if isinstance(v, Mapping):
        if not v:
            return Markup('<span class="dim">(empty)</span>')
        if depth >= lim.depth:
            return escape(_short(v, lim))
        return kv_table(v, lim, depth)
    if isinstance(v, (list, tuple, set, frozenset)):
        seq = v if isinstance(v, (list, tuple)) else sorted(v, key=str)  # sets: a stable order
        if not seq:
            return Markup('<span class="dim">(none)</span>')
        if all(_scalar(_plain(x)) for x in islice(seq, lim.items)) or depth >= lim.depth:
            return escape(_list_text(seq, lim))
        head = {f"[{i}]": x for i, x in enumerate(islice(seq, lim.items))}
        out = kv_table(head, lim, depth)
        if len(seq) > lim.items:
            out += Markup('<div class="more">… {:,} more items</div>').format(len(seq) - lim.items)
        return out
    if v is None:
        return Markup('<span class="dim">null</span>')
    if isinstance(v, bool):
        return escape(str(v).lower())
    if isinstance(v, (int, float)):
        return escape(_num(v))
    return escape(_clip(v, lim.value))


def _plain(v: Any) -> Any:
    """numpy scalars and arrays become Python values."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        try:
            return v.tolist()
        except Exception:
            return str(v)
    return v


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool, bytes))


def _list_text(seq: Any, lim: Limits) -> str:
    seq = list(seq) if not isinstance(seq, (list, tuple)) else seq
    head = [_num(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else _short(_plain(x), lim, 80)
            for x in seq[: lim.items]]
    text = ", ".join(head)
    if len(seq) > lim.items:
        text += f", … ({len(seq):,} in all)"
    return _clip(text, lim.value * 4)


def _short(v: Any, lim: Limits, n: int | None = None) -> str:
    """Text of a value too deep or too nested for a table; reprlib never builds the whole repr."""
    if isinstance(v, str):
        return _clip(v, n or lim.value)
    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxtuple, r.maxset = 2, lim.items, lim.items, lim.items, lim.items
    r.maxstring = r.maxother = r.maxlong = lim.value
    return _clip(r.repr(v), n or lim.value)


def _num(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.6g}"


def _clip(v: Any, n: int) -> str:
    s = v if isinstance(v, str) else str(v)
    return s if len(s) <= n else f"{s[:n]}… ({len(s):,} characters)"


# --- Markdown-ish documentation ----------------------------------------------------------

_INLINE = re.compile(r"``(.+?)``|`([^`]+?)`|\*\*(.+?)\*\*|(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")


def doc_html(text: str, lim: Limits) -> Markup:
    """Paragraphs and ``- `` lists with **bold**, *emphasis* and `code`; everything else escaped."""
    out = []
    for block in re.split(r"\n\s*\n", _clip(text.strip(), lim.text)):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if not lines or not lines[0]:
            continue
        if all(ln.startswith(("- ", "* ")) for ln in lines):
            items = Markup("").join(Markup("<li>{}</li>").format(_inline(ln[2:])) for ln in lines)
            out.append(Markup("<ul>{}</ul>").format(items))
        else:
            out.append(Markup("<p>{}</p>").format(_inline(" ".join(lines))))
    return Markup("").join(out)


def _inline(text: str) -> Markup:
    """Escape first, then turn the markers into tags: the markers survive escaping unchanged."""

    def sub(m: re.Match[str]) -> str:
        code = m.group(1) or m.group(2)
        if code is not None:
            return f"<code>{code}</code>"
        if m.group(3) is not None:
            return f"<strong>{_INLINE.sub(sub, m.group(3))}</strong>"
        return f"<em>{m.group(4)}</em>"

    return Markup(_INLINE.sub(sub, str(escape(text))))
