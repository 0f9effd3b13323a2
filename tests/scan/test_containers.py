"""Containers: zip tricks, tar, compressed streams, PyTorch, numpy and joblib files.

Every archive is built in the test (zipfile, tarfile, numpy, joblib, torch when installed)
and every malicious payload is a pickle that would call os.system: it is only dumped.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import tarfile
import zipfile
import zlib

import numpy as np
import pytest

from mlwarden.findings import Severity
from mlwarden.scan import FileScan
from mlwarden.scan.base import Limits


class Evil:
    """Pickles to a call of os.system; only ever dumped, never loaded."""

    def __reduce__(self):  # noqa: D105
        return (os.system, ("echo pwned",))


def evil_pickle(protocol: int = 4) -> bytes:
    return pickle.dumps({"weights": [1.0, 2.0], "x": Evil()}, protocol=protocol)


def kinds(result: FileScan) -> set[str]:
    return {i.kind for i in result.issues}


def critical(result: FileScan) -> list[str]:
    """Where each critical issue was found (str of its Where)."""
    return [str(i.where) for i in result.issues if i.severity is Severity.CRITICAL]


def serious(result: FileScan) -> list[tuple[str, str]]:
    """Issues at medium or worse, as (kind, where) pairs: a benign file has none."""
    return [(i.kind, str(i.where)) for i in result.issues if i.severity.rank >= Severity.MEDIUM.rank]


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def patch_zip(data: bytes, name: str, *, flags: int = 0, crc: int | None = None,
              local_name: bytes | None = None) -> bytes:
    """Set flag bits / a CRC in both headers of a member, or rename it in the local header only."""
    out = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    local = info.header_offset
    entries = [i for i in range(len(out)) if out[i : i + 4] == b"PK\x01\x02"]
    central = next(i for i in entries if out[i + 46 : i + 46 + len(name)] == name.encode())
    for base, flag_at, crc_at in ((local, 6, 14), (central, 8, 16)):
        struct.pack_into("<H", out, base + flag_at, struct.unpack_from("<H", out, base + flag_at)[0] | flags)
        if crc is not None:
            struct.pack_into("<I", out, base + crc_at, crc)
    if local_name is not None:
        out[local + 30 : local + 30 + len(local_name)] = local_name
    return bytes(out)


@pytest.mark.parametrize("member", ["pytorch_model.bin", "archive/weights", "x.pt", "noext"])
def test_malicious_pickle_in_zip_is_found_whatever_the_member_name(scan_file, member):
    result = scan_file("model.zip", make_zip({member: evil_pickle(), "readme.txt": b"hello"}))
    assert critical(result) and all(w.endswith(f"!/{member}") for w in critical(result))


def test_flag_bit_0x1_member_is_still_scanned(scan_file):
    data = patch_zip(make_zip({"archive/data.pkl": evil_pickle()}), "archive/data.pkl", flags=0x1)
    with pytest.raises(Exception):  # the case that matters: Python's zipfile refuses it
        zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")
    result = scan_file("model.pt", data)
    assert "zip.flag_bits" in kinds(result)
    assert critical(result)


def test_bad_crc_does_not_abort_the_scan(scan_file):
    data = make_zip({"a.pkl": evil_pickle(), "b.pkl": evil_pickle(2)}, zipfile.ZIP_DEFLATED)
    data = patch_zip(data, "a.pkl", crc=0xDEADBEEF)
    result = scan_file("model.zip", data)
    assert "zip.bad_crc" in kinds(result)
    assert {w.rsplit("!/", 1)[1] for w in critical(result)} == {"a.pkl", "b.pkl"}


def test_local_and_central_names_disagree(scan_file):
    data = patch_zip(make_zip({"benign.txt": evil_pickle()}), "benign.txt", local_name=b"payload.p")
    result = scan_file("model.zip", data)
    assert "zip.header_mismatch" in kinds(result)
    assert critical(result)


def test_member_only_in_local_headers_is_reported_and_scanned(scan_file):
    hidden = make_zip({"hidden.pkl": evil_pickle()})
    local_only = hidden[: hidden.find(b"PK\x01\x02")]  # local header + data, no central entry
    result = scan_file("model.zip", local_only + make_zip({"ok.txt": b"fine"}))
    assert "zip.local_only" in kinds(result)
    assert any(w.endswith("!/hidden.pkl") for w in critical(result))


def test_nested_zip_in_tar_gz_in_zip(scan_file):
    inner = make_zip({"evil.pkl": evil_pickle()}, zipfile.ZIP_DEFLATED)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("models/inner.zip")
        info.size = len(inner)
        tf.addfile(info, io.BytesIO(inner))
    result = scan_file("outer.zip", make_zip({"bundle.tar.gz": tar_buf.getvalue()}))
    [where] = critical(result)
    assert where.endswith("outer.zip!/bundle.tar.gz!/<gzip>!/models/inner.zip!/evil.pkl")


def test_depth_limit(scan_file):
    data = evil_pickle()
    for level in range(4):
        data = make_zip({f"level{level}.zip" if level else "evil.pkl": data})
    result = scan_file("deep.zip", data, limits=Limits(max_depth=2))
    assert "archive.depth_limit" in kinds(result)
    assert not critical(result)  # it lies below the limit; the limit itself is the finding


def test_zip_traversal_and_symlink_members(scan_file):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../etc/cron.d/job", b"* * * * * root true\n")
        zf.writestr("C:/Windows/evil.dll", b"MZ")
        link = zipfile.ZipInfo("link")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("dup.txt", b"1")
        zf.writestr("dup.txt", b"2")
    result = scan_file("model.zip", buf.getvalue())
    traversal = {str(i.where).rsplit("!/", 1)[1] for i in result.issues if i.kind == "archive.path_traversal"}
    assert traversal == {"../../etc/cron.d/job", "C:/Windows/evil.dll"}
    assert {"archive.symlink", "zip.duplicate_name"} <= kinds(result)


def test_tar_links_devices_and_traversal(scan_file):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, target in (("sym", tarfile.SYMTYPE, "/etc/passwd"), ("hard", tarfile.LNKTYPE, "x"),
                                   ("dev", tarfile.CHRTYPE, ""), ("../up.txt", tarfile.REGTYPE, "")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info, io.BytesIO(b""))
        evil = evil_pickle()
        info = tarfile.TarInfo("weights.bin")
        info.size = len(evil)
        tf.addfile(info, io.BytesIO(evil))
    result = scan_file("model.tar", buf.getvalue())
    assert {"archive.symlink", "archive.hardlink", "archive.device_member", "archive.path_traversal"} <= kinds(result)
    assert critical(result) == [f"{result.path}!/weights.bin"] * len(critical(result))


def test_zip_bomb_is_stopped_early(scan_file):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.pkl", "w") as member:
            block = bytes(1 << 20)
            for _ in range(64):  # 64 MiB of zeros in about 64 KiB
                member.write(block)
    data = buf.getvalue()
    assert len(data) < 200_000
    # the default threshold is 1 GiB of output (sparse weights reach 1000:1 legitimately);
    # a lower one keeps the test small and proves the mechanism
    result = scan_file("bomb.zip", data, Limits(bomb_min_bytes=4 << 20))
    assert "archive.bomb" in kinds(result)
    assert result.bytes_inspected < 32 << 20  # decompression stopped well before the end
    assert "archive.bomb" not in kinds(scan_file("sparse.zip", data))  # 64 MiB of zeros: scanned, not a bomb


def test_gzip_bomb_is_stopped(scan_file):
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = b"".join(comp.compress(bytes(1 << 20)) for _ in range(40)) + comp.flush()
    result = scan_file("model.pkl.gz", data, Limits(bomb_min_bytes=4 << 20))
    assert "archive.bomb" in kinds(result)


def torch_like_zip(payload: bytes) -> bytes:
    return make_zip({
        "archive/data.pkl": payload,
        "archive/version": b"3\n",
        "archive/byteorder": b"little",
        "archive/data/0": np.arange(64, dtype=np.float32).tobytes(),
        "archive/.data/serialization_id": b"1234567890",
    })


def test_hand_built_torch_zip(scan_file):
    result = scan_file("model.pt", torch_like_zip(evil_pickle(2)))
    assert result.format == "pytorch-zip"
    assert critical(result) == [f"{result.path}!/archive/data.pkl"] * len(critical(result))
    assert critical(result)
    benign = scan_file("benign.pt", torch_like_zip(pickle.dumps({"a": 1, "b": [1.5]}, protocol=2)))
    assert serious(benign) == []


TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def legacy_torch(model: bytes) -> bytes:
    head = b"".join(pickle.dumps(x, protocol=2) for x in (TORCH_MAGIC, 1001, {"little_endian": True}))
    keys = pickle.dumps(["0"], protocol=2)
    storage = struct.pack("<q", 128) + bytes(512)  # 128 elements: the count's first byte is 0x80
    return head + model + keys + storage


def test_legacy_torch_payload_in_fourth_pickle(scan_file):
    result = scan_file("old.pt", legacy_torch(pickle.dumps(Evil(), protocol=2)))
    assert result.format == "pytorch-legacy"
    assert critical(result)
    benign = scan_file("old_ok.pt", legacy_torch(pickle.dumps({"w": 1}, protocol=2)))
    assert serious(benign) == []


def test_npy_object_array_payload(scan_file):
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }".ljust(117) + "\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + evil_pickle(3)
    result = scan_file("arr.npy", data)
    assert result.format == "npy"
    assert critical(result)


def test_npy_numeric_and_npz(scan_file, tmp_path):
    np.save(tmp_path / "ok.npy", np.arange(10.0))
    assert serious(scan_file("ok.npy")) == []
    np.savez_compressed(tmp_path / "ok.npz", a=np.arange(1000), b=np.ones((3, 3)))
    ok = scan_file("ok.npz")
    assert ok.format == "npz" and serious(ok) == []
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(117) + "\n"
    evil_npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + evil_pickle()
    bad = scan_file("bad.npz", make_zip({"a.npy": evil_npy}))
    assert any(w.endswith("!/a.npy") for w in critical(bad))


def test_truncated_npy_is_reported(scan_file, tmp_path):
    np.save(tmp_path / "t.npy", np.arange(100.0))
    data = (tmp_path / "t.npy").read_bytes()[:-40]
    assert "numpy.truncated" in kinds(scan_file("t2.npy", data))


COMPRESSORS = [0, "zlib", "gzip", "bz2", "lzma", "xz"]


@pytest.fixture(scope="module")
def sk_model():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    return LogisticRegression().fit(rng.random((30, 4)), np.arange(30) % 2)


@pytest.mark.parametrize("compress", COMPRESSORS)
def test_joblib_benign(scan_file, tmp_path, sk_model, compress):
    import joblib

    joblib.dump({"model": sk_model, "table": np.arange(12.0).reshape(3, 4), "names": np.array(["a", "b"])},
                tmp_path / "m.joblib", compress=compress)
    result = scan_file("m.joblib")
    assert serious(result) == []
    assert any("sklearn" in g for gs in result.globals.values() for g in gs)  # the pickle was walked


@pytest.mark.parametrize("compress", COMPRESSORS)
def test_joblib_malicious(scan_file, tmp_path, compress):
    import joblib

    joblib.dump({"w": np.arange(100.0), "x": Evil()}, tmp_path / "a.joblib", compress=compress)
    assert critical(scan_file("a.joblib"))
    joblib.dump({"w": np.arange(5.0), "o": np.array([Evil(), 1], dtype=object)}, tmp_path / "b.joblib",
                compress=compress)
    assert critical(scan_file("b.joblib"))


def test_joblib_mid_frame_array_desync(scan_file):
    from joblib.numpy_pickle import NumpyArrayWrapper

    wrapper = NumpyArrayWrapper(np.ndarray, (1,), "C", np.dtype("f8"), numpy_array_alignment_bytes=None)
    wrapper_ops = pickle.dumps(wrapper, protocol=2)[2:-1]
    evil_ops = pickle.dumps(Evil(), protocol=2)[2:-1] + b"0"  # ... REDUCE POP
    frame = wrapper_ops + evil_ops
    data = b"\x80\x04\x95" + struct.pack("<Q", len(frame)) + frame + bytes(8) + b"."
    result = scan_file("crafted.joblib", data)
    assert "joblib.desync" in kinds(result)
    assert any(i.severity.rank >= Severity.HIGH.rank for i in result.issues)


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "lzma", "zlib"])
def test_compressed_single_streams(scan_file, kind):
    pack = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress, "zlib": zlib.compress,
            "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE)}[kind]
    result = scan_file("payload.dat", pack(evil_pickle()))
    assert result.format == kind
    assert critical(result) == [f"{result.path}!/<{kind}>"] * len(critical(result)) and critical(result)


def test_torch_checkpoints_when_installed(scan_file, tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    torch.save(net.state_dict(), tmp_path / "ok.pt")
    ok = scan_file("ok.pt")
    assert ok.format == "pytorch-zip" and serious(ok) == []
    torch.save({"state": net.state_dict(), "x": Evil()}, tmp_path / "bad.pt")
    assert critical(scan_file("bad.pt"))
    torch.save(net.state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    old = scan_file("old.pt")
    assert old.format == "pytorch-legacy" and serious(old) == []
    torch.jit.script(net).save(str(tmp_path / "ts.pt"))
    ts = scan_file("ts.pt")
    assert ts.format == "torchscript" and "torch.torchscript_code" in kinds(ts)
