"""Fail closed: wherever the scan stops before the end of what a loader reads, it says so at HIGH.

Each reproducer is a file that once scanned "ok" or "medium" while its loader would run
code, or that cost unbounded memory: every one must now be scanned whole or reported
high ("not fully scanned"), and ``mlwarden scan`` must exit 1 on it. Also here: the
formats that were "not inspected" (7z, deflate64 zip members) and length fields that
point past the end of the file.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from mlwarden.findings import Severity
from mlwarden.scan import FileScan, scan_path
from mlwarden.scan.base import Limits
from mlwarden.scan.policy import Policy


class Evil:
    """Pickles to a call of os.system; only ever dumped."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def scan(path: Path, limits: Limits | None = None) -> FileScan:
    return scan_path(path, policy=Policy(), limits=limits)


def severities(result: FileScan) -> dict[str, str]:
    return {i.kind: i.severity.value for i in result.issues}


def worst(result: FileScan) -> Severity | None:
    return max((i.severity for i in result.issues), key=lambda s: s.rank, default=None)


def cli_exit(path: Path) -> int:
    done = subprocess.run([sys.executable, "-c", "import sys; from mlwarden.cli import main; sys.exit(main())",
                           "scan", str(path)],
                          capture_output=True, text=True, timeout=300, check=False)
    return done.returncode


def evil_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([Evil()], dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_npz_with_100k_empty_members_before_the_payload_is_scanned_whole(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(100_000):
            zf.writestr(f"e{i}.npy", b"")
        zf.writestr("z.npy", evil_npy())
    path = tmp_path / "many.npz"
    path.write_bytes(buf.getvalue())
    result = scan(path)
    assert [str(i.where) for i in result.issues if i.severity is Severity.CRITICAL] == [f"{path}!/z.npy"]
    assert "archive.member_limit" not in severities(result)


def test_member_limit_is_high_and_exits_1(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(50):
            zf.writestr(f"e{i}.txt", b"x")
        zf.writestr("z.npy", evil_npy())
    path = tmp_path / "many.npz"
    path.write_bytes(buf.getvalue())
    result = scan(path, Limits(max_members=10))
    assert severities(result)["archive.member_limit"] == "high"
    assert "not fully scanned" in next(i.message for i in result.issues if i.kind == "archive.member_limit")


def test_time_limit_is_high_for_an_opcode_flood(tmp_path: Path) -> None:
    """Millions of trivial opcodes, gzipped small: stopped by the time limit, reported high."""
    body = b"\x80\x04" + b"N0" * 200_000 + b"N."
    path = tmp_path / "flood.pkl.gz"
    path.write_bytes(gzip.compress(body, 9))
    result = scan(path, Limits(max_seconds=0))
    assert worst(result) is Severity.HIGH
    assert severities(result)["scan.time_limit"] == "high"
    assert cli_exit(path) == 0  # with the default limit this flood is walked to its end
    result = scan(path)
    assert worst(result) is None or worst(result).rank < Severity.MEDIUM.rank  # finished: nothing to report


def test_depth_limit_is_high(tmp_path: Path) -> None:
    data = pickle.dumps(Evil())
    for level in range(4):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(f"l{level}.zip" if level else "evil.pkl", data)
        data = buf.getvalue()
    path = tmp_path / "deep.zip"
    path.write_bytes(data)
    assert severities(scan(path, Limits(max_depth=2)))["archive.depth_limit"] == "high"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_safetensors_gz_with_a_100mb_header_of_empty_lists_stays_small(tmp_path: Path) -> None:
    """Once 2.9 GB of memory: refused after a bounded read, before any JSON is parsed."""
    n = 100_000_000
    header = (b'{"a": [' + b"[]," * ((n - 11) // 3)).ljust(n - 4, b" ") + b"[]]}"
    assert len(header) == n
    path = tmp_path / "model.safetensors.gz"
    path.write_bytes(gzip.compress(struct.pack("<Q", len(header)) + header + bytes(8), 6))
    # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec
    probe = ("import re, json; from mlwarden.scan import scan_path; from mlwarden.scan.policy import Policy;"
             f"r = scan_path({str(path)!r}, policy=Policy());"
             "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1));"
             "print(json.dumps({'kinds': {i.kind: i.severity.value for i in r.issues}, 'rss_mb': hwm // 1024}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    out = json.loads(done.stdout)
    assert out["kinds"] == {"safetensors.header_too_complex": "high"}
    assert out["rss_mb"] < 300, out  # memory, not time: the header is never materialised


def test_exit_code_is_1_when_not_fully_scanned(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 10_000) + b'{"a": 1}')  # header length past the end
    assert severities(scan(path)) == {"safetensors.header_out_of_range": "high"}
    assert cli_exit(path) == 1


# --- coverage: what used to be "not inspected" ------------------------------------------------


def test_7z_members_are_scanned(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "model.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(b"weights", "model/readme.txt")
        archive.writestr(pickle.dumps({"m": Evil()}, protocol=4), "model/model.pkl")
    result = scan(path)
    assert result.format == "7z"
    assert [str(i.where) for i in result.issues if i.severity is Severity.CRITICAL] == [f"{path}!/model/model.pkl"]


def test_benign_7z_is_clean(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "model.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(pickle.dumps({"w": [1.0, 2.0]}, protocol=4), "model.pkl")
    assert worst(scan(path)) is None


def test_7z_without_py7zr_is_high(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "model.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(b"x", "a.txt")
    monkeypatch.setitem(sys.modules, "py7zr", None)
    assert severities(scan(path)) == {"scan.unavailable": "high"}


def test_corrupt_7z_is_high(tmp_path: Path) -> None:
    path = tmp_path / "model.7z"
    path.write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + os.urandom(200))
    assert Severity(severities(scan(path))["archive.decompress_error"]) is Severity.HIGH


def deflate64_zip(name: str, data: bytes) -> bytes:
    """A one-member zip with compression method 9, written by hand (zipfile cannot)."""
    inflate64 = pytest.importorskip("inflate64")
    deflater = inflate64.Deflater()
    packed = deflater.deflate(data) + deflater.flush()
    raw, crc = name.encode(), zlib.crc32(data)
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 21, 0, 9, 0, 0, crc, len(packed), len(data), len(raw), 0)
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 21, 21, 0, 9, 0, 0, crc, len(packed), len(data),
                          len(raw), 0, 0, 0, 0, 0, 0)
    body = local + raw + packed
    cd = central + raw
    return body + cd + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(body), 0)


def test_deflate64_members_are_scanned(tmp_path: Path) -> None:
    payload = pickle.dumps({"pad": "x" * 200_000, "m": Evil()}, protocol=4)  # long enough to need window > 32K
    path = tmp_path / "model.zip"
    path.write_bytes(deflate64_zip("model.pkl", payload))
    result = scan(path)
    assert [str(i.where) for i in result.issues if i.severity is Severity.CRITICAL] == [f"{path}!/model.pkl"]
    assert "zip.unsupported_method" not in severities(result)


def test_deflate64_decoder_round_trip() -> None:
    """The decoder against the reference encoder, in chunks, with nothing lost at the seams."""
    inflate64 = pytest.importorskip("inflate64")
    from mlwarden.scan.compressed import Decoder

    data = os.urandom(50_000) + bytes(300_000) + b"tail"
    deflater = inflate64.Deflater()
    stream = io.BytesIO(deflater.deflate(data) + deflater.flush())
    assert b"".join(Decoder(stream.read, "deflate64").chunks()) == data


def test_corrupt_deflate64_member_is_high(tmp_path: Path) -> None:
    data = bytearray(deflate64_zip("model.pkl", pickle.dumps(list(range(1000)))))
    start = 30 + len("model.pkl")
    data[start : start + 8] = b"\xff" * 8
    path = tmp_path / "model.zip"
    path.write_bytes(bytes(data))
    assert severities(scan(path)).get("archive.decompress_error") == "high"


def test_unknown_zip_method_is_high(tmp_path: Path) -> None:
    data = bytearray(deflate64_zip("model.pkl", b"x"))
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # method 99 (AES) in both headers
        at = data.find(sig)
        struct.pack_into("<H", data, at + (8 if sig == b"PK\x03\x04" else 10), 99)
    path = tmp_path / "model.zip"
    path.write_bytes(bytes(data))
    assert severities(scan(path))["zip.unsupported_method"] == "high"


# --- length fields past the end of the file ---------------------------------------------------


def test_npy_header_and_payload_past_the_end_are_high(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros(1000))
    data = buf.getvalue()
    (tmp_path / "short.npy").write_bytes(data[:-100])
    assert severities(scan(tmp_path / "short.npy"))["numpy.truncated"] == "high"
    long_header = data[:8] + struct.pack("<H", 60_000) + data[10:]
    (tmp_path / "header.npy").write_bytes(long_header)
    assert severities(scan(tmp_path / "header.npy"))["numpy.parse_error"] == "high"


def test_gguf_length_past_the_end_is_high(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40) + b"general.name"
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    assert severities(scan(path))["gguf.parse_error"] == "high"


def test_onnx_length_past_the_end_is_high(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    data = helper.make_model(graph).SerializeToString()
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    assert worst(scan(path)) is None or worst(scan(path)).rank < Severity.MEDIUM.rank
    path.write_bytes(data[: len(data) // 2])  # the graph field's length now points past the end
    assert severities(scan(path))["onnx.parse_error"] == "high"
