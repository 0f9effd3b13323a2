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
