"""Report formatters: each a small class with one method, ``render(report) -> str``.

The CLI owns files and stdout; formatters only turn a :class:`~mlwarden.findings.Report`
into text. :class:`Format` maps the names users type to the classes.
"""

from __future__ import annotations

import enum
from typing import Protocol

from ..findings import Report


class Formatter(Protocol):
    filename: str

    def render(self, report: Report) -> str: ...


class Format(str, enum.Enum):
    HTML = "html"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"

    def formatter(self) -> Formatter:
        if self is Format.JSON:
            from .json import JsonFormat

            return JsonFormat()
        if self is Format.SARIF:
            from .sarif import SarifFormat

            return SarifFormat()
        if self is Format.HTML:
            from .html import HtmlFormat

            return HtmlFormat()
        from .junit import JunitFormat

        return JunitFormat()


def parse_formats(text: str) -> list[Format]:
    """``"html,json"`` → formats; unknown names raise ValueError naming the choices."""
    out = []
    for name in (t.strip().lower() for t in text.split(",") if t.strip()):
        try:
            out.append(Format(name))
        except ValueError:
            raise ValueError(f"unknown format {name!r}; use any of: {', '.join(f.value for f in Format)}") from None
    if not out:
        raise ValueError("no format given; use any of: " + ", ".join(f.value for f in Format))
    return out
