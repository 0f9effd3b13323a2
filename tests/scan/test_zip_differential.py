"""Zip archives are located as the loaders locate them, proven against the loaders themselves.

The attack: a benign archive whose comment holds a second, malicious archive. Python's
zipfile (numpy's ``.npz``) and PyTorch's reader take the *last* end-of-central-directory
record, so they load the hidden archive. Each test builds such a file, runs the real
loader on it in a subprocess with a recording unpickler (``loader_oracle.py``: names what
the loader resolves, runs none of it), and checks that the scanner reports what the
loader would run — critical — plus the disagreement itself, high.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlwarden.findings import Severity
from mlwarden.scan import FileScan, scan_path
from mlwarden.scan.policy import Policy
from mlwarden.scan.ziputil import find_end_records

ORACLE = Path(__file__).with_name("loader_oracle.py")


class Evil:
    """Pickles to a call of os.system; only ever dumped (the oracle stubs it out)."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def oracle(kind: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, str(ORACLE), kind, str(path)], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def torch_zip(obj: object) -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def rebase(archive: bytes, shift: int) -> bytes:
    """The archive with every offset moved by ``shift``: as if it were written at that offset."""
    b = bytearray(archive)
    eocd = b.rfind(b"PK\x05\x06")
    count, _, cd_offset = struct.unpack_from("<HII", b, eocd + 10)
    pos = cd_offset
    for _ in range(count):
        nlen, xlen, clen = struct.unpack_from("<HHH", b, pos + 28)
        struct.pack_into("<I", b, pos + 42, struct.unpack_from("<I", b, pos + 42)[0] + shift)
        pos += 46 + nlen + xlen + clen
    struct.pack_into("<I", b, eocd + 16, cd_offset + shift)
    loc = eocd - 20
    if b[loc : loc + 4] == b"PK\x06\x07":  # torch writes a zip64 end record and its locator too
        rec = struct.unpack_from("<Q", b, loc + 8)[0]
        struct.pack_into("<Q", b, loc + 8, rec + shift)
        struct.pack_into("<Q", b, rec + 48, struct.unpack_from("<Q", b, rec + 48)[0] + shift)
    return bytes(b)


def hide_in_comment(outer: bytes, inner: bytes, *, absolute: bool, inner_comment_len: int = 1) -> bytes:
    """``outer`` with ``inner`` as its archive comment; the comment reaches the end of the file
    exactly, and the inner record claims a comment it lacks so a comment-length check prefers
    the outer one (what the old scanner did)."""
    if outer[-22:-18] == b"PK\x05\x06":
        cut = len(outer) - 2
    else:  # torch writes a zip64 end record: the classic one is still last, no comment
        cut = outer.rfind(b"PK\x05\x06") + 20
    inner = rebase(inner, cut + 2) if absolute else inner
    inner = inner[:-2] + struct.pack("<H", inner_comment_len)
    return outer[:cut] + struct.pack("<H", len(inner)) + inner


def critical_at(result: FileScan) -> list[str]:
    return [str(i.where) for i in result.issues if i.severity is Severity.CRITICAL]


def kinds(result: FileScan) -> dict[str, str]:
    return {i.kind: i.severity.value for i in result.issues}


def test_npz_with_an_archive_in_its_comment(tmp_path: Path) -> None:
    outer = npz({"w": np.arange(4.0)})
    inner = npz({"w": np.array([Evil()], dtype=object)})
    path = tmp_path / "model.npz"
    path.write_bytes(hide_in_comment(outer, inner, absolute=False))
    seen = oracle("numpy", path)
    assert "posix.system" in seen["resolved"] or "nt.system" in seen["resolved"]  # numpy reads the hidden one
    result = scan_path(path, policy=Policy())
    assert any(w.endswith("!/w.npy") for w in critical_at(result))
    assert kinds(result)["zip.multiple_end_records"] == "high"


def test_torch_checkpoint_with_an_archive_in_its_comment(tmp_path: Path) -> None:
    outer = torch_zip({"w": [1.0, 2.0]})
    inner = torch_zip({"w": Evil()})
    path = tmp_path / "model.pt"
    path.write_bytes(hide_in_comment(outer, inner, absolute=True))
    seen = oracle("torch", path)
    assert "error" not in seen, seen
    assert {"posix.system", "nt.system"} & set(seen["resolved"])  # torch.load runs the hidden payload
    result = scan_path(path, policy=Policy())
    assert critical_at(result), [(i.kind, i.severity.value) for i in result.issues]
    assert kinds(result)["zip.multiple_end_records"] == "high"


def test_end_records_are_the_loaders_own(tmp_path: Path) -> None:
    """Where zipfile and torch each find the end record, compared with the scanner's choice."""
    torch = pytest.importorskip("torch")
    base = torch_zip({"w": [1.0]})
    cases = {
        "plain": base,
        "short-trailing-signature": base + b"PK\x05\x06" + bytes(10),
        "trailing-junk": base + b"junk" * 4,
    }
    for label, data in cases.items():
        path = tmp_path / f"{label}.pt"
        path.write_bytes(data)
        ends = find_end_records(io.BytesIO(data), len(data))
        try:
            zipfile.ZipFile(path).close()
            python_ok = True
        except zipfile.BadZipFile:
            python_ok = False
        assert (ends.python is not None) == python_ok, label
        torch._C.PyTorchFileReader(str(path))  # torch reads all three
        assert ends.miniz is not None, label
    # zipfile gives up on a signature with fewer than 22 bytes after it; torch takes the one before
    result = scan_path(tmp_path / "short-trailing-signature.pt", policy=Policy())
    assert kinds(result)["zip.end_record_disagreement"] == "high"
    assert kinds(scan_path(tmp_path / "trailing-junk.pt", policy=Policy()))["zip.trailing_data"] == "high"
    assert not [i for i in scan_path(tmp_path / "plain.pt", policy=Policy()).issues
                if i.severity.rank >= Severity.MEDIUM.rank]


def test_prepended_pickle_is_what_torch_and_numpy_load(tmp_path: Path) -> None:
    """Data before a zip: zipfile shifts the offsets, torch and numpy see no zip and unpickle."""
    data = pickle.dumps(Evil(), protocol=2) + npz({"w": np.arange(3.0)})
    path = tmp_path / "model.npz"
    path.write_bytes(data)
    assert {"posix.system", "nt.system"} & set(oracle("pickle", path)["resolved"])
    result = scan_path(path, policy=Policy())
    assert critical_at(result)
    assert Severity(kinds(result)["zip.prepended_data"]).rank >= Severity.HIGH.rank


def test_zip_stored_inside_a_zip_is_not_a_second_end_record(tmp_path: Path) -> None:
    inner = npz({"w": np.arange(3.0)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("nested.npz", inner)
    data = buf.getvalue()
    ends = find_end_records(io.BytesIO(data), len(data))
    assert ends.others == () and ends.python == ends.miniz
    assert not [i for i in scan_path(_write(tmp_path / "outer.zip", data), policy=Policy()).issues
                if i.severity.rank >= Severity.MEDIUM.rank]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
