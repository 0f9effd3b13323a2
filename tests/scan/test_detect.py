"""Format sniffing, the dispatcher's safety nets, and scan_paths over folders."""

from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np
import pytest

from mlwarden.findings import Severity
from mlwarden.scan import _SCANNERS, scan_paths
from mlwarden.scan.detect import is_model_name, sniff
from mlwarden.scan.joblibscan import replay


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    ("head", "name", "fmt"),
    [
        (b"PK\x03\x04" + bytes(40), "x", "zip"),
        (b"\x93NUMPY\x01\x00", "x", "npy"),
        (b"GGUF\x03\x00\x00\x00", "x", "gguf"),
        (b"\x89HDF\r\n\x1a\n" + bytes(8), "x", "hdf5"),
        (b"\x1f\x8b\x08\x00", "x", "gzip"),
        (b"BZh91AY&SY", "x", "bz2"),
        (b"\xfd7zXZ\x00\x00", "x", "xz"),
        (b"7z\xbc\xaf\x27\x1c", "x", "7z"),
        (pickle.dumps({"a": 1}, protocol=2), "weights.bin", "pickle"),
        (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), "x", "pytorch-legacy"),
        (struct.pack("<Q", 20) + b'{"a":{"dtype":"F32"}}', "x", "safetensors"),
        (b"x\x9c" + bytes(10), "x", None),  # a zlib header that does not inflate
        (b"hello, world\n", "model.pkl", None),
    ],
)
def test_sniff_by_content(head, name, fmt):
    assert sniff(head, name, 10_000) == fmt


def test_protobuf_needs_the_name_as_tie_breaker():
    proto = b"\x08\x07\x12\x04test\x3a\x02\x08\x01"  # ir_version=7, producer, graph{…}
    assert sniff(proto, "model.onnx") == "onnx"
    assert sniff(proto, "variables/saved_model.pb") == "savedmodel"
    assert sniff(proto, "notes.dat") is None


def test_model_names():
    assert is_model_name("dir/Model.PKL") and is_model_name("w.safetensors")
    assert not is_model_name("README.md") and not is_model_name("archive/data/0")


def test_plain_files_are_not_issues_but_fake_models_are(tmp_path, policy):
    (tmp_path / "notes.txt").write_text("just text\n")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(256))
    (tmp_path / "model.pkl").write_bytes(b"\x13\x37" + os.urandom(512))
    results = {os.path.basename(r.path): r for r in scan_paths([tmp_path], policy=policy)}
    assert results["notes.txt"].issues == () and results["notes.txt"].format == "text"
    assert results["photo.jpg"].issues == ()
    fake = results["model.pkl"]
    assert fake.issues and all(i.severity.rank >= Severity.MEDIUM.rank for i in fake.issues)
    assert {i.kind for i in fake.issues} <= {"format.unknown", "pickle.parse_error"}


def test_scan_paths_order_symlinks_and_missing_files(tmp_path, policy):
    root = tmp_path / "models"
    (root / "b").mkdir(parents=True)
    (root / "b" / "z.pkl").write_bytes(pickle.dumps(Evil()))
    (root / "a.txt").write_text("x")
    outside = tmp_path / "secret.pkl"
    outside.write_bytes(pickle.dumps(Evil()))
    (root / "link.pkl").symlink_to(outside)
    (root / "inner.txt").symlink_to(root / "a.txt")
    results = scan_paths([root, tmp_path / "missing.pkl"], policy=policy)
    paths = [os.path.relpath(r.path, tmp_path) for r in results]
    assert paths == ["models/a.txt", "models/inner.txt", "models/link.pkl", "models/b/z.pkl", "missing.pkl"]
    by = dict(zip(paths, results))
    assert [i.kind for i in by["models/link.pkl"].issues] == ["path.symlink_outside"]  # not followed
    assert [i.kind for i in by["models/inner.txt"].issues] == ["path.symlink"]
    assert any(i.severity is Severity.CRITICAL for i in by["models/b/z.pkl"].issues)
    assert [i.kind for i in by["missing.pkl"].issues] == ["file.unreadable"]
    assert scan_paths([root], policy=policy) == results[:-1]  # deterministic


def test_a_scanner_crash_is_an_issue_not_clean(scan_file, monkeypatch):
    def boom(*args):
        raise RuntimeError("bug")

    monkeypatch.setitem(_SCANNERS, "npy", boom)
    np_bytes = io.BytesIO()
    np.save(np_bytes, np.arange(3))
    result = scan_file("a.npy", np_bytes.getvalue())
    assert [(i.kind, i.severity) for i in result.issues] == [("scan.internal_error", Severity.HIGH)]


def test_missing_format_module_is_reported(scan_file, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlwarden.scan.formats.gguf", None)  # import now fails
    result = scan_file("m.gguf", b"GGUF" + bytes(60))
    assert [i.kind for i in result.issues] == ["scan.unavailable"]


def test_replay_reads_genuine_joblib_without_desync(tmp_path):
    import joblib

    joblib.dump({"a": np.arange(7.0), "o": np.array([1, "x"], dtype=object), "s": np.array(["ab"])},
                tmp_path / "j.pkl")
    with open(tmp_path / "j.pkl", "rb") as fh:
        found = replay(fh, None, max_ops=10_000)
        assert fh.read() == b""  # it stopped exactly at the end
    assert found.arrays == 3 and len(found.nested) == 1 and found.desync == ()


def test_polyglot_pickle_then_zip_is_scanned_as_zip(scan_file):
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.pkl", pickle.dumps(Evil()))
    result = scan_file("blob.bin", b"MZ" + bytes(62) + buf.getvalue())
    assert "zip.prepended_data" in {i.kind for i in result.issues}
    assert any(i.severity is Severity.CRITICAL for i in result.issues)


# --- pickles recognised by walking them, whatever their first opcode ------------------------


def _no_proto(data: bytes) -> bytes:
    """A protocol-4 pickle without its PROTO and FRAME: every loader still reads it."""
    assert data[:2] == b"\x80\x04" and data[2:3] == b"\x95"
    return data[11:]


def test_a_pickle_opening_with_short_binunicode_is_a_pickle(tmp_path, policy):
    import json
    import subprocess
    import sys
    from pathlib import Path

    body = _no_proto(pickle.dumps(Evil(), protocol=4))
    assert body[:1] == b"\x8c"  # SHORT_BINUNICODE: not an opening the old sniffer knew
    for name in ("weights.dat", "model.pkl"):
        (tmp_path / name).write_bytes(body)
        [result] = scan_paths([tmp_path / name], policy=policy)
        assert result.format == "pickle", name
        assert any(i.severity is Severity.CRITICAL for i in result.issues), name
    oracle = Path(__file__).with_name("loader_oracle.py")
    seen = json.loads(subprocess.run([sys.executable, str(oracle), "pickle", str(tmp_path / "weights.dat")],
                                     capture_output=True, text=True, check=True, timeout=60).stdout)
    assert {"posix.system", "nt.system"} & set(seen["resolved"])  # pickle.load gets there too


@pytest.mark.parametrize("first", [
    b"K\x05" + b"0",  # BININT1 then POP
    b"X" + struct.pack("<I", 9000) + b"a" * 9000 + b"0",  # a long str first: past the sniffed head
    b"(" + b"0",  # MARK, then POP drops the mark
])
def test_any_opening_opcode_is_walked(tmp_path, policy, first):
    body = first + _no_proto(pickle.dumps(Evil(), protocol=4))
    (tmp_path / "x.bin").write_bytes(body)
    [result] = scan_paths([tmp_path / "x.bin"], policy=policy)
    assert any(i.severity is Severity.CRITICAL for i in result.issues)


def test_sniffing_accepts_what_the_unpickler_accepts():
    from mlwarden.scan.detect import looks_like_pickle

    body = _no_proto(pickle.dumps(Evil(), protocol=4))
    assert looks_like_pickle(b"I0x1\n0" + body)  # hex INT: int(x, 0) in pickle.py, strtol in _pickle
    assert looks_like_pickle(b"I010\n0" + body)  # octal INT: C strtol reads it
    assert not looks_like_pickle(b"Ix1\n0" + body)  # neither parses this
    assert not looks_like_pickle(b"h\x05" + body)  # a memo read of a key never written
    assert not looks_like_pickle(b"(a" + body)  # APPEND may not pop across a MARK


def test_a_pickle_stored_after_a_long_opening_in_a_deflated_zip_member(scan_file):
    import zipfile

    body = b"X" + struct.pack("<I", 9000) + b"a" * 9000 + b"0" + _no_proto(pickle.dumps(Evil(), protocol=4))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("blob", body)
    result = scan_file("m.zip", buf.getvalue())
    assert any(i.severity is Severity.CRITICAL for i in result.issues)


def _png() -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + bytes(range(16)) * 3 for _ in range(16))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _parquet(tmp_path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": list(range(100)), "b": ["x"] * 100}), tmp_path / "t.parquet")
    return (tmp_path / "t.parquet").read_bytes()


BENIGN = {
    "README.md": b"# Model card\n\nNothing to see. N.B. this model is a toy.\n",
    "notes.txt": b"N.B. trained on 2 GPUs\nI think it works.\n",
    "train.csv": b"age,income,label\n31,5000,1\n45,7000,0\n",
    "config.json": b'{"hidden": [64, 32], "dropout": 0.1, "name": "mlp"}',
    "params.yaml": b"lr: 0.01\nlayers:\n  - 64\n  - 32\n",
    "train.py": b"import torch\n\nclass Net(torch.nn.Module):\n    pass\n",
    "page.html": b"<!doctype html><html><body>(c) 2024</body></html>\n",
    "data.tsv": b"(a)\t(b)\n1\t2\n",
}


@pytest.mark.parametrize("name", sorted(BENIGN) + ["image.png", "table.parquet", "photo.jpg", "random.bin"])
def test_benign_files_are_not_taken_for_pickles(tmp_path, policy, name):
    data = {"image.png": _png, "photo.jpg": lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF" + os.urandom(2000),
            "random.bin": lambda: os.urandom(50_000)}.get(name, lambda: BENIGN.get(name))()
    if name == "table.parquet":
        data = _parquet(tmp_path)
    (tmp_path / name).write_bytes(data)
    [result] = scan_paths([tmp_path / name], policy=policy)
    assert result.format != "pickle"
    assert not [i for i in result.issues if i.severity.rank >= Severity.MEDIUM.rank and name != "random.bin"]


def test_a_tar_whose_header_is_also_a_pickle_is_a_polyglot(scan_file):
    import tarfile

    buf = io.BytesIO()
    payload = b"cos\nsystem\n(S'echo pwned'\ntR."  # protocol 0: fits in a tar member name
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(payload.decode())
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    result = scan_file("model.tar", buf.getvalue())
    kinds = {i.kind: i.severity for i in result.issues}
    assert kinds["format.polyglot"] is Severity.HIGH
    assert any(i.severity is Severity.CRITICAL for i in result.issues)
