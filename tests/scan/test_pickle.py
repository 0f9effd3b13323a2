"""The pickle opcode walker against the opcode-level tricks of ARTIFACT_THREATS.md.

Every hostile pickle here is generated (hand-written opcodes or pickle.dumps of objects
with a malicious __reduce__) and only ever scanned, never loaded.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import struct
import warnings
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from mlwarden.findings import Severity
from mlwarden.scan.base import Limits, ScanContext, Where
from mlwarden.scan.pickle import looks_like_pickle, scan_pickle
from mlwarden.scan.policy import Policy


class Payload:
    def __reduce__(self) -> Any:
        return (os.system, ("echo pwned",))


def scan(data: bytes, stream: Any = None, **kw: Any) -> ScanContext:
    ctx = ScanContext(policy=Policy(), limits=kw.pop("limits", None))
    scan_pickle(stream if stream is not None else io.BytesIO(data), ctx,
                Where(path="m.pkl"), **kw)
    return ctx


def kinds(ctx: ScanContext) -> set[str]:
    return {i.kind for i in ctx.issues}


def dangerous(ctx: ScanContext) -> set[str]:
    return {i.detail["global"] for i in ctx.issues if i.kind == "pickle.global.dangerous"}


def u(s: str) -> bytes:  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def stack_global(mod: str, name: str) -> bytes:
    return b"\x80\x04" + u(mod) + u(name) + b"\x93" + u("x") + b"\x85R."


GADGETS = [
    "os.system", "posix.system", "nt.system", "os.popen", "os.execv", "os.spawnl",
    "subprocess.Popen", "subprocess.check_output", "_posixsubprocess.fork_exec", "pty.spawn",
    "asyncio.unix_events._UnixSubprocessTransport", "asyncio.subprocess.create_subprocess_shell",
    "multiprocessing.Process", "uuid._get_command_stdout", "_osx_support._read_output",
    "_aix_support._read_cmd_output", "imaplib.IMAP4_stream", "_pyrepl.pager.pipe_pager",
    "pydoc.pipepager", "mailcap.findmatch", "builtins.eval", "builtins.exec",
    "builtins.compile", "builtins.__import__", "builtins.getattr", "builtins.setattr",
    "builtins.globals", "builtins.breakpoint", "builtins.open", "code.InteractiveInterpreter",
    "codeop.compile_command", "runpy._run_code", "timeit.timeit", "cProfile.run",
    "profile.run", "pdb.run", "bdb.Bdb", "trace.Trace", "doctest.debug_script",
    "ensurepip._run_pip", "pip.main", "importlib.import_module", "pkgutil.resolve_name",
    "pydoc.locate", "operator.attrgetter", "_operator.methodcaller", "inspect.getattr_static",
    "functools.partial", "functools.reduce", "marshal.loads", "types.CodeType",
    "types.FunctionType", "cloudpickle.cloudpickle._make_function", "ctypes.CDLL",
    "_ctypes.dlopen", "numpy.ctypeslib.load_library", "pickle.loads", "_pickle.loads",
    "dill.loads", "joblib.load", "torch.load", "torch.serialization.load", "numpy.load",
    "shelve.open", "jsonpickle.decode", "io.FileIO", "_io.FileIO", "io.open", "codecs.open",
    "logging.FileHandler", "logging.config.fileConfig", "shutil.rmtree", "tempfile.mktemp",
    "socket.socket", "ssl.get_server_certificate", "linecache.getline",
    "urllib.request.urlopen", "http.client.HTTPConnection", "requests.api.get",
    "aiohttp.ClientSession", "xmlrpc.client.ServerProxy", "smtplib.SMTP", "ftplib.FTP",
    "webbrowser.open", "sys.modules", "site.main", "atexit.register", "signal.signal",
    "gc.get_objects", "threading.Thread", "torch._dynamo.guards.GuardBuilder.get",
    "torch._inductor.codecache.compile_file", "torch.jit.unsupported_tensor_ops.execWrapper",
    "torch.utils._config_module.ConfigModule.load_config", "torch.utils.collect_env.run",
    "torch.hub.load", "numpy.f2py.f2py2e.run_main", "numpy.testing._private.utils.runstring",
]


@pytest.mark.parametrize("gadget", GADGETS)
def test_each_gadget_is_critical_via_global_and_stack_global(gadget: str) -> None:
    mod, name = gadget.rsplit(".", 1)
    for data in (f"c{mod}\n{name}\n(S'x'\ntR.".encode(), stack_global(mod, name)):
        ctx = scan(data)
        hits = [i for i in ctx.issues if i.kind == "pickle.global.dangerous"]
        assert hits and hits[0].severity == Severity.CRITICAL
        assert hits[0].detail["global"] == gadget
        assert gadget in ctx.globals["m.pkl"]


@pytest.mark.parametrize("protocol", range(6))
def test_reduce_payload_found_in_every_protocol(protocol: int) -> None:
    ctx = scan(pickle.dumps({"model": [1, 2, Payload()]}, protocol=protocol))
    assert dangerous(ctx) == {f"{os.system.__module__}.system"}
    issue = next(i for i in ctx.issues if i.kind == "pickle.global.dangerous")
    assert issue.offset is not None and issue.offset > 0


def test_stack_global_operands_from_the_memo() -> None:
    data = (b"\x80\x04" + u("os") + b"\x94" + u("system") + b"\x94" + b"00"
            + b"h\x00h\x01\x93" + u("id") + b"\x85R.")
    assert dangerous(scan(data)) == {"os.system"}


def test_inst_opcode() -> None:
    assert dangerous(scan(b"(S'id'\nios\nsystem\n.")) == {"os.system"}


def test_obj_followed_by_pop_still_found() -> None:
    data = b"\x80\x02(cos\nsystem\nX\x02\x00\x00\x00ido0N."
    assert dangerous(scan(data)) == {"os.system"}


def test_newobj_ex() -> None:
    data = b"\x80\x04" + u("subprocess") + u("Popen") + b"\x93" + u("id") + b"\x85}\x92."
    assert dangerous(scan(data)) == {"subprocess.Popen"}


def test_build_state_of_unknown_class_and_gadget_in_state() -> None:
    data = b"\x80\x04" + u("evilpkg") + u("Thing") + b"\x93)\x81" + u("os") + u("system") + b"\x93b."
    ctx = scan(data)
    assert dangerous(ctx) == {"os.system"}
    unknown = [i for i in ctx.issues if i.kind == "pickle.global.unknown"]
    assert unknown[0].detail["global"] == "evilpkg.Thing"
    assert unknown[0].severity == Severity.MEDIUM


def test_ext_codes_resolve_through_the_copyreg_registry() -> None:
    mod = os.system.__module__
    copyreg.add_extension(mod, "system", 0xBEEF)
    try:
        data = pickle.dumps(os.system, protocol=2)
        assert data[2:3] == b"\x83"  # EXT2
        ctx = scan(data)
    finally:
        copyreg.remove_extension(mod, "system", 0xBEEF)
    assert dangerous(ctx) == {f"{os.system.__module__}.system"}


def test_unregistered_ext_code_is_unresolved_high() -> None:
    ctx = scan(b"\x80\x02\x82\x07)R.")
    issue = next(i for i in ctx.issues if i.kind == "pickle.global.unresolved")
    assert issue.severity == Severity.HIGH and issue.detail["ext_code"] == 7


@pytest.mark.parametrize("operands", [b"K\x01K\x02", b"C\x02osC\x06system", b"h\x09" + u("x")])
def test_non_string_stack_global_operands_are_unresolved_high(operands: bytes) -> None:
    ctx = scan(b"\x80\x04" + operands + b"\x93)R.")
    issue = next(i for i in ctx.issues if i.kind == "pickle.global.unresolved")
    assert issue.severity == Severity.HIGH


def test_invalid_memo_key_is_an_issue_and_scanning_goes_on() -> None:
    ctx = scan(b"\x80\x04h\x05" + b"j\x00\x01\x00\x000" + stack_global("os", "system")[2:])
    assert "pickle.memo.invalid" in kinds(ctx)
    assert dangerous(ctx) == {"os.system"}


def test_payload_in_a_second_concatenated_pickle() -> None:
    first = pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)
    ctx = scan(first + pickle.dumps(Payload(), protocol=4))
    hit = next(i for i in ctx.issues if i.kind == "pickle.global.dangerous")
    assert hit.offset is not None and hit.offset > len(first)


def test_broken_tail_after_payload_reports_both() -> None:
    data = pickle.dumps(Payload(), protocol=4)[:-1] + b"\xff\xfe junk"
    ctx = scan(data)
    assert dangerous(ctx)
    err = next(i for i in ctx.issues if i.kind == "pickle.parse_error")
    assert err.severity == Severity.HIGH and err.offset == len(data) - 7


def test_truncated_benign_pickle_is_a_medium_parse_error() -> None:
    data = pickle.dumps(list(range(100)), protocol=2)
    ctx = scan(data[: len(data) // 2])
    assert [(i.kind, i.severity) for i in ctx.issues] == [("pickle.parse_error", Severity.MEDIUM)]


def test_empty_stream_is_not_clean() -> None:
    assert kinds(scan(b"")) == {"pickle.parse_error"}


class CountingStream(io.RawIOBase):
    """A stream that counts the bytes handed out by read()."""

    def __init__(self, data: bytes, seekable: bool) -> None:
        self.inner, self._seekable, self.bytes_read, self.largest = io.BytesIO(data), seekable, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, off: int, whence: int = 0) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        return self.inner.seek(off, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def read(self, n: int = -1) -> bytes:
        out = self.inner.read(n)
        self.bytes_read += len(out)
        self.largest = max(self.largest, len(out))
        return out


BLOB = 40 << 20


@pytest.mark.parametrize("seekable", [True, False])
def test_payload_after_a_large_blob_without_reading_it_into_memory(seekable: bool) -> None:
    data = pickle.dumps((b"\x00" * BLOB, Payload()), protocol=4)
    stream = CountingStream(data, seekable)
    ctx = scan(b"", stream=stream)
    assert dangerous(ctx)
    if seekable:
        assert stream.bytes_read < 1 << 20
    assert stream.largest <= 1 << 20  # never one read of the whole blob


def test_resource_limit_is_a_high_issue() -> None:
    ctx = scan(pickle.dumps(list(range(1000)), protocol=0), limits=Limits(max_opcodes=50))
    assert [(i.kind, i.severity) for i in ctx.issues] == [("pickle.limit", Severity.HIGH)]


def test_trailing_non_pickle_bytes() -> None:
    data = pickle.dumps([1, 2], protocol=4) + b"\x00\x01\x02raw storage bytes"
    assert [(i.kind, i.severity) for i in scan(data).issues] == [("pickle.trailing_data",
                                                                  Severity.LOW)]
    assert scan(data, expect_trailing_data=True).issues == []


def test_legacy_torch_layout_scans_every_stacked_pickle() -> None:
    parts = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001}, Payload(), ["0", "1"]]
    data = b"".join(pickle.dumps(p, protocol=2) for p in parts) + struct.pack("<q", 4) + b"\x07" * 64
    ctx = scan(data, expect_trailing_data=True)
    assert dangerous(ctx) and "pickle.trailing_data" not in kinds(ctx)


def test_getattr_of_a_listed_class_attribute_is_accepted_but_not_others() -> None:
    ok = b"\x80\x04" + u("builtins") + u("getattr") + b"\x93" + u("zoneinfo") + u("ZoneInfo") \
        + b"\x93" + u("_unpickle") + b"\x86R" + u("UTC") + b"K\x01\x86R."
    assert scan(ok).issues == []
    bad = ok.replace(u("_unpickle"), u("__init__"))
    assert dangerous(scan(bad)) == {"builtins.getattr"}
    stray = b"\x80\x04" + u("builtins") + u("getattr") + b"\x93."
    assert dangerous(scan(stray)) == {"builtins.getattr"}


def test_partial_only_of_safe_functions() -> None:
    def partial_of(mod: str, name: str) -> bytes:
        return (b"\x80\x04" + u("functools") + u("partial") + b"\x93" + u(mod) + u(name)
                + b"\x93\x85R.")
    assert scan(partial_of("sklearn.utils.validation", "check_array")).issues == []
    assert dangerous(scan(partial_of("builtins", "eval"))) == {"builtins.eval",
                                                                "functools.partial"}


BENIGN = [
    {"a": [1, 2.5, "x", b"y", None, True], "t": (1, 2), "s": {1, 2}},
    np.arange(12, dtype="f4").reshape(3, 4), np.array(["a", "bc"]), np.random.default_rng(0),
    pd.DataFrame({"n": [1.0, 2.0], "s": ["a", "b"], "c": pd.Categorical(["u", "v"]),
                  "t": pd.date_range("2020", periods=2, tz="Europe/Paris")}),
]


@pytest.fixture(scope="module")
def fitted_models() -> list[Any]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(120, 5, random_state=0)
    X[:, 0] = np.arange(120) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
                RandomForestClassifier(4, random_state=0).fit(X, y),
                HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(X, y)]


def test_benign_objects_and_models_are_clean(fitted_models: list[Any]) -> None:
    for obj in [*BENIGN, *fitted_models]:
        for protocol in range(6):
            ctx = scan(pickle.dumps(obj, protocol=protocol))
            assert ctx.issues == [], (type(obj), protocol, ctx.issues)
        buf = io.BytesIO()
        joblib.dump(obj, buf)
        assert scan(buf.getvalue()).issues == [], type(obj)


def test_joblib_arrays_are_skipped_and_payload_after_them_found() -> None:
    buf = io.BytesIO()
    joblib.dump({"w": np.ones((256, 256)), "o": np.array([1, "a"], dtype=object),
                 "e": Payload()}, buf)
    ctx = scan(buf.getvalue())
    assert dangerous(ctx) and "pickle.parse_error" not in kinds(ctx)
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in ctx.globals["m.pkl"]


def test_payload_inside_a_joblib_object_array_nested_pickle() -> None:
    buf = io.BytesIO()
    joblib.dump(np.array([Payload(), 1], dtype=object), buf)
    assert dangerous(scan(buf.getvalue()))


@pytest.mark.parametrize(("head", "expected"), [
    (b"\x80\x05\x95", True), (b"\x80\x02", True), (b"\x80\x09", False),
    (pickle.dumps([1, "a"], protocol=0), True), (pickle.dumps({"a": 1}, protocol=1), True),
    (b"cos\nsystem\n(S'ls'\ntR.", True), (b"Name,Age\n1,2\n", False),
    (b"I am a text file\n", False), (b'{"a": 1}', False), (b"PK\x03\x04", False), (b"", False),
])
def test_looks_like_pickle(head: bytes, expected: bool) -> None:
    assert looks_like_pickle(head) is expected
