"""PyTorch artifacts: zip checkpoints, TorchScript archives and both legacy formats.

* Zip checkpoints (``archive/data.pkl``, ``archive/data/N``, ``archive/version``) and
  TorchScript archives (``code/*.py``, ``constants.pkl``) are zips: ``zipscan`` scans
  every member by content; this module names the layout and reports TorchScript code.
* The legacy format (torch < 1.6) is five pickles back to back — magic number, protocol
  version, sys_info, the model, the storage keys — then raw storage bytes. Every one of
  the five can run code, so each is found (by replaying its opcodes, never loading it)
  and scanned; the raw bytes after them are expected and left alone.
* The legacy tar format (``sys_info``, ``pickle``, ``storages``, ``tensors``) comes
  through ``tarscan``, which asks :func:`legacy_tar_role` how to treat each member.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from ..findings import Severity
from .base import ScanContext, ScanIssue, Where
from .compressed import window

_TENSOR_BLOB = re.compile(r"(^|/)data/\d+$")
_LEGACY_PICKLES = ("magic number", "protocol version", "sys_info", "model", "storage keys")
LEGACY_TAR_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})


def classify_zip(names: list[str]) -> str:
    """The flavour of a zip, from its member names: what a reader of the report expects."""
    if any(n.endswith("/code/") or "/code/" in n or n.startswith("code/") for n in names) and any(
        n.endswith("constants.pkl") for n in names
    ):
        return "torchscript"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "pytorch-zip"
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return "keras"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def is_tensor_blob(name: str) -> bool:
    """``<archive>/data/<key>``: raw tensor bytes in a zip checkpoint, not a pickle."""
    return bool(_TENSOR_BLOB.search(name))


def report_zip_layout(ctx: ScanContext, where: Where, fmt: str, names: list[str]) -> None:
    if fmt != "torchscript":
        return
    code = sorted(n for n in names if n.endswith(".py") and ("/code/" in n or n.startswith("code/")))
    ctx.add(ScanIssue(
        kind="torch.torchscript_code", severity=Severity.INFO, where=where,
        message=f"TorchScript archive carries {len(code)} code member(s); torch.jit.load compiles and runs them",
        detail={"code_members": code[:50], "count": len(code)},
        remediation="Load TorchScript only from trusted sources; review the code/ members.",
    ))


def scan_keras_config_member(content: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Hand a ``.keras`` archive's config.json to the Keras scanner, bounded in size."""
    from . import unavailable

    content.seek(0)
    data = content.read(ctx.limits.max_header_bytes + 1)
    if len(data) > ctx.limits.max_header_bytes:
        ctx.add(ScanIssue(kind="keras.config_too_large", severity=Severity.MEDIUM, where=where,
                          message=f"config.json is larger than {ctx.limits.max_header_bytes} bytes; not inspected"))
        return
    try:
        from .formats.keras import scan_keras_config
    except ImportError:
        unavailable(ctx, where, "keras")
        return
    scan_keras_config(data, ctx, where)


def scan_torch_legacy(stream: BinaryIO, ctx: ScanContext, where: Where, name: str) -> None:
    """Scan the five stacked pickles of a legacy (pre-zip) PyTorch file, each to its STOP."""
    from .pickle import scan_one_pickle

    size = stream.seek(0, 2)
    pos = 0
    for label in _LEGACY_PICKLES:
        stream.seek(pos)
        end = scan_one_pickle(window(stream, pos, size), ctx, where)
        if end is None:  # the walker reported where and why; the loader stops there too
            ctx.add(ScanIssue(kind="torch.legacy_parse_error", severity=Severity.MEDIUM, where=where,
                              offset=pos, message=f"the {label} pickle of a legacy PyTorch file does not parse",
                              remediation="Re-save the checkpoint with a current torch.save from trusted code."))
            return
        pos += end


def scan_first_pickle(stream: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Legacy tar ``storages``/``tensors`` members: a count pickle, then records and raw data.

    The count pickle is scanned; the per-record pickles after it are interleaved with
    raw storage bytes whose lengths depend on the storage types, and are reported as not
    inspected rather than guessed at.
    """
    from .pickle import scan_one_pickle

    size = stream.seek(0, 2)
    stream.seek(0)
    end = scan_one_pickle(stream, ctx, where)
    if end is not None and end < size:
        ctx.add(ScanIssue(kind="torch.legacy_tar_records", severity=Severity.LOW, where=where,
                          message=f"{size - end} bytes of legacy storage records after the first pickle are not inspected",
                          remediation="Re-save the checkpoint with a current torch.save from trusted code."))
