"""Read a JSON header from a model file without letting it decide how much memory we spend.

``json.loads`` turns two bytes (``[]``) into a 56-byte list: a 100 MB header of empty
lists costs gigabytes. :func:`read_bounded` reads the header in chunks and counts the
bytes that open a container or separate items (``[``, ``{``, ``,`` — inside strings too,
so the count only over-estimates); past ``Limits.max_json_tokens`` it stops reading,
before anything is parsed, and says why. Real headers stay far below the budget.
"""

from __future__ import annotations

from typing import BinaryIO

_CHUNK = 1 << 20


def read_bounded(stream: BinaryIO, n: int, max_tokens: int) -> tuple[bytes | None, str]:
    """``n`` bytes from ``stream``, or (None, why) when they are too many or too complex."""
    parts: list[bytes] = []
    tokens = got = 0
    while got < n:
        chunk = stream.read(min(_CHUNK, n - got))
        if not chunk:
            return None, f"the header ends after {got} of its {n} bytes"
        tokens += chunk.count(b"[") + chunk.count(b"{") + chunk.count(b",")
        if tokens > max_tokens:
            return None, (f"the header holds more than {max_tokens} JSON containers and items "
                          f"(within its first {got + len(chunk)} bytes); parsing it would exhaust memory")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts), ""
