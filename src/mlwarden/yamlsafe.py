"""Bounds on YAML before anything builds objects from it: depth and alias expansion.

``yaml.safe_load`` never runs code, but it still trusts the *shape* of the text: a few
hundred bytes of nested aliases ("billion laughs") describe billions of nodes once anything
walks the result, and a hundred thousand ``[`` exhaust the recursion of the composer.
:func:`check_yaml_bounds` reads the event stream (PyYAML's parser is a state machine, so
this pass itself never recurses), counts the nodes the document would have with every alias
expanded and its nesting depth, and raises :class:`YamlBoundsError` with the line where a
limit is crossed. Real specs and manifests are far below both limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

MAX_DEPTH = 64
MAX_NODES = 1_000_000


class YamlBoundsError(ValueError):
    """The YAML text is too deep or expands to too many nodes; ``line`` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class _Open:
    anchor: str | None
    nodes: int = 1


def check_yaml_bounds(text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Raise :class:`YamlBoundsError` when ``text`` nests deeper than ``max_depth`` or expands past ``max_nodes``.

    Syntax errors are left to the real parse that follows, which reports them with their line.
    """
    sizes: dict[str, int] = {}
    stack: list[_Open] = []
    total = 0
    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            line = ev.start_mark.line + 1 if ev.start_mark is not None else 0
            if isinstance(ev, yaml.CollectionStartEvent):
                stack.append(_Open(ev.anchor))
                if len(stack) > max_depth:
                    raise YamlBoundsError(f"nested more than {max_depth} levels deep; a spec is a few levels deep", line)
                continue
            if isinstance(ev, yaml.CollectionEndEvent):
                done = stack.pop()
                if done.anchor is not None:
                    sizes[done.anchor] = done.nodes
                if stack:
                    stack[-1].nodes += done.nodes
                else:
                    total += done.nodes
            elif isinstance(ev, (yaml.ScalarEvent, yaml.AliasEvent)):
                n = 1 if isinstance(ev, yaml.ScalarEvent) else sizes.get(ev.anchor, 1)
                if isinstance(ev, yaml.ScalarEvent) and ev.anchor is not None:
                    sizes[ev.anchor] = 1
                if stack:
                    stack[-1].nodes += n
                else:
                    total += n
            else:
                continue
            if (stack[-1].nodes if stack else total) > max_nodes:
                raise YamlBoundsError(f"expands to more than {max_nodes:,} values once its aliases (*name) are"
                                      " resolved; write the values out, or use fewer nested aliases", line)
    except yaml.YAMLError:
        return
