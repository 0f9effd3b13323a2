"""NumPy ``.npy`` files: the header is a Python literal, the payload raw bytes or a pickle.

The header dict is read with ``ast.literal_eval`` (literals only, nothing runs). An object
dtype means the payload is a pickle, which ``numpy.load(allow_pickle=True)`` would load:
it is scanned. Any other dtype's payload is plain numbers: its length is checked against
the header and the bytes are skipped. ``.npz`` files are zips of these (``zipscan``).
"""

from __future__ import annotations

import ast
import struct
from typing import Any, BinaryIO

from ..findings import Severity
from .base import ScanContext, ScanIssue, Where
from .compressed import window

_MAX_HEADER = 1 << 20  # numpy itself refuses headers over 10 kB unless told otherwise


def scan_npy(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
    """Scan one .npy stream; see the module docstring."""
    size = stream.seek(0, 2)
    stream.seek(6)
    version = stream.read(2)
    header, error = _read_header(stream, version)
    offset = stream.tell()
    if error is None:
        error = _check_header(header)
    if error is not None:
        ctx.add(ScanIssue(kind="numpy.parse_error", severity=Severity.MEDIUM, where=where,
                          message=f"malformed .npy header: {error}",
                          remediation="Re-save the array with numpy.save from trusted code."))
        return
    assert isinstance(header, dict)
    import numpy as np  # dtype from a literal description: no user code can run

    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except Exception as exc:  # noqa: BLE001 — numpy raises many types on odd descriptions
        ctx.add(ScanIssue(kind="numpy.parse_error", severity=Severity.MEDIUM, where=where,
                          message=f"the .npy header's dtype {header['descr']!r} is invalid: {exc}"))
        return
    if dtype.hasobject:
        from .pickle import scan_pickle

        ctx.add(ScanIssue(kind="numpy.object_array", severity=Severity.LOW, where=where,
                          message="object array: numpy.load(allow_pickle=True) unpickles its payload (scanned)",
                          remediation="Save numeric arrays instead of object arrays; load with allow_pickle=False."))
        scan_pickle(window(stream, offset, size), ctx, where)
        return
    count = 1
    for dim in header["shape"]:
        count *= dim
    expected, actual = count * dtype.itemsize, size - offset
    if actual < expected:
        ctx.add(ScanIssue(kind="numpy.truncated", severity=Severity.MEDIUM, where=where,
                          message=f"header announces {expected} payload bytes but the file holds {actual}",
                          detail={"expected": expected, "actual": actual}))
    elif actual > expected:
        ctx.add(ScanIssue(kind="numpy.trailing_data", severity=Severity.LOW, where=where,
                          message=f"{actual - expected} bytes follow the array data; numpy ignores them",
                          detail={"expected": expected, "actual": actual}))


def _read_header(stream: BinaryIO, version: bytes) -> tuple[Any, str | None]:
    if len(version) < 2 or version[0] not in (1, 2, 3):
        return None, f"unsupported format version {tuple(version)}"
    fmt = "<H" if version[0] == 1 else "<I"
    raw = stream.read(struct.calcsize(fmt))
    if len(raw) < struct.calcsize(fmt):
        return None, "truncated header length"
    (length,) = struct.unpack(fmt, raw)
    if length > _MAX_HEADER:
        return None, f"header of {length} bytes is implausibly large"
    text = stream.read(length)
    if len(text) < length:
        return None, "truncated header"
    try:
        return ast.literal_eval(text.decode("utf-8" if version[0] == 3 else "latin-1")), None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        return None, f"header is not a Python literal ({type(exc).__name__})"


def _check_header(header: Any) -> str | None:
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= header.keys():
        return "header must be a dict with descr, fortran_order and shape"
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return f"shape {shape!r} is not a tuple of non-negative integers"
    return None
