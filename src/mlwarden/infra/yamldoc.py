"""Multi-document YAML with line numbers, bounded before anything is built from it.

ruamel.yaml's round-trip loader keeps, on every mapping and sequence, the line of each key
and item; :func:`line_of` reads them back so a finding can point at ``path:line``. Text is
size-capped and passed through :func:`mlwarden.yamlsafe.check_yaml_bounds` first, so a
YAML bomb or a 50 MB manifest costs one "could not parse" finding, not minutes or memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..yamlsafe import YamlBoundsError, check_yaml_bounds

MAX_YAML_BYTES = 8 * 1024 * 1024
"""Rendered Helm output for a whole platform is a few MB; past this, it is not a manifest."""


class YamlReadError(ValueError):
    """The text is not YAML we will read; ``line`` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


def decode(data: bytes, *, limit: int = MAX_YAML_BYTES) -> str:
    """Text of a config file, or :class:`YamlReadError` for binary, oversized or undecodable bytes."""
    if len(data) > limit:
        raise YamlReadError(f"{len(data):,} bytes, over the {limit:,}-byte limit for a config file")
    if b"\x00" in data[:65536]:
        raise YamlReadError("binary content (NUL bytes), not a text config file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise YamlReadError(f"not UTF-8 text (byte {e.start})") from None


def load_documents(text: str) -> list[Any]:
    """Every document of ``text`` (``None`` for empty ones), with ruamel's line info attached."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        check_yaml_bounds(text)
    except YamlBoundsError as e:
        raise YamlReadError(str(e), e.line) from None
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = True  # Helm output repeats keys; the last wins, as in kubectl
    try:
        return list(yaml.load_all(text))
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise YamlReadError(str(e.problem or e).strip(), mark.line + 1 if mark else 0) from None
    except (YAMLError, ValueError, TypeError, RecursionError) as e:
        raise YamlReadError(f"{type(e).__name__}: {e}"[:300]) from None


def line_of(node: Any, key: Any = None, default: int = 0) -> int:
    """1-based line of ``node`` (a mapping or sequence) or of its ``key``/item; ``default`` when unknown."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return default
    try:
        if key is None:
            return lc.line + 1
        if isinstance(key, int) and not isinstance(node, Mapping):
            return lc.item(key)[0] + 1
        return lc.key(key)[0] + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return lc.line + 1 if getattr(lc, "line", None) is not None else default


def dig(node: Any, *keys: Any) -> Any:
    """``node[k1][k2]…`` or None at the first missing step (lists take int keys)."""
    for k in keys:
        if isinstance(node, Mapping) and not isinstance(k, int):
            node = node.get(k)
        elif isinstance(node, list) and isinstance(k, int) and -len(node) <= k < len(node):
            node = node[k]
        else:
            return None
    return node


def as_map(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, Mapping) else {}


def as_list(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []
