"""The benchmark corpus (bench/scan_corpus.py) as a test: every technique is flagged, no benign file is.

A subset keeps it fast: each technique in one container (rotating, so every container is
used), three techniques in every container, and all the benign models. The generated
hostile files are only ever scanned. The regression tests below pin the bypasses the
benchmark found, each as the smallest pickle that shows it.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mlwarden.findings import Severity
from mlwarden.scan import FileScan, scan_path
from mlwarden.scan.base import ScanContext, Where
from mlwarden.scan.pickle import scan_pickle
from mlwarden.scan.policy import Policy

EVERY_CONTAINER = ("os.system", "builtins.exec via memo STACK_GLOBAL", "torch._utils._import_dotted_name resolver")
# Benign files mlwarden is known to get wrong: (technique, container) -> why.
KNOWN_FALSE_POSITIVES: dict[tuple[str, str], str] = {}


def _load_corpus_module() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "scan_corpus.py"
    spec = importlib.util.spec_from_file_location("scan_corpus", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["scan_corpus"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


corpus = _load_corpus_module()


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("corpus")
    names = list(corpus.CONTAINERS)
    built = corpus.build_corpus(root, techniques=EVERY_CONTAINER, blob_bytes=1 << 20)
    for i, t in enumerate(corpus.TECHNIQUES):
        if t.id in EVERY_CONTAINER:
            continue
        fits = [c for c in names[i % len(names):] + names[: i % len(names)]
                if (t.containers is None or c in t.containers)
                and not (c.startswith("pkl-p") and corpus.CONTAINERS[c][1] < t.min_proto)
                and not (t.stream is not None and c in ("npy-object", "npz") or
                         t.stream is not None and c.startswith("joblib"))]
        built += corpus.build_corpus(root, techniques=[t.id], containers=fits[:1], blob_bytes=1 << 20, benign=False)
    return built


def _worst(result: FileScan) -> int:
    return max((i.severity.rank for i in result.issues), default=-1)


def test_the_subset_covers_every_technique_and_container(cases: list) -> None:
    malicious = [c for c in cases if c.malicious]
    assert {c.technique for c in malicious} == {t.id for t in corpus.TECHNIQUES}
    assert {c.container for c in malicious} == set(corpus.CONTAINERS)
    assert sum(not c.malicious for c in cases) >= 15


def test_every_malicious_file_is_flagged_high_or_critical(cases: list) -> None:
    missed = []
    for case in (c for c in cases if c.malicious):
        result = scan_path(case.path, policy=Policy())
        if _worst(result) < Severity.HIGH.rank:
            missed.append((case.technique, case.container, [(i.kind, str(i.severity)) for i in result.issues]))
    assert missed == []


def test_no_benign_file_has_a_medium_or_worse_issue(cases: list) -> None:
    noisy = []
    for case in (c for c in cases if not c.malicious):
        if (case.technique, case.container) in KNOWN_FALSE_POSITIVES:
            continue
        result = scan_path(case.path, policy=Policy())
        noisy += [(case.name, i.kind, str(i.severity)) for i in result.issues if i.severity.rank >= Severity.MEDIUM.rank]
    assert noisy == []


def test_sparse_joblib_is_not_a_bomb(cases: list) -> None:
    """Mostly-zero weights compress past 200:1; below 1 GiB of output that is data, not a bomb."""
    case = next(c for c in cases if c.technique.startswith("L1-sparse") and c.container == "joblib-zlib")
    assert _worst(scan_path(case.path, policy=Policy())) < Severity.MEDIUM.rank


def scan(data: bytes, name: str = "m.pkl") -> ScanContext:
    ctx = ScanContext(policy=Policy())
    scan_pickle(io.BytesIO(data), ctx, Where(path=name))
    return ctx


def high(ctx: ScanContext) -> list[tuple[str, str | None]]:
    return [(i.kind, i.detail.get("global")) for i in ctx.issues if i.severity.rank >= Severity.HIGH.rank]


def u(s: str) -> bytes:  # SHORT_BINUNICODE
    return b"\x8c" + bytes([len(s)]) + s.encode()


def test_protocol_0_pickle_with_a_corrupt_tail_is_still_sniffed_as_a_pickle(scan_file) -> None:
    # Bypass: the head failed the protocol-0 sniff at the corrupt byte, so the file was
    # "unknown format" (medium), or nothing at all under a name that is not a model's.
    data = b"(dp0\nVconfig\np1\ncos\nsystem\np2\n(Vecho pwned\np3\ntp4\nRp5\ns" + b"\xff\xfe corrupt tail"
    for name in ("model.pkl", "notes"):
        result = scan_file(name, data)
        assert result.format == "pickle"
        assert any(i.kind == "pickle.global.dangerous" for i in result.issues)


def test_text_that_decodes_as_a_call_without_a_global_is_still_text(scan_file) -> None:
    # V… V… R… decodes as UNICODE, UNICODE, REDUCE: only a call of an imported global counts.
    assert scan_file("PKG-INFO", b"Version: 1.0\nVendor: ACME\nRelease notes follow.\n" * 3).format == "text"


def test_second_pickle_without_proto_header_is_walked() -> None:
    # Bypass: a second pickle opening with FRAME (its PROTO dropped) read as trailing data (low).
    import pickle

    first = pickle.dumps({"weights": [1.0]}, protocol=4)
    second = (b"\x80\x04" + u("os") + u("system") + b"\x93" + u("echo pwned") + b"\x85R.")[2:]
    framed = b"\x95" + len(second).to_bytes(8, "little") + second
    for tail in (second, framed, b"\x88" + b"0" + second):
        assert ("pickle.global.dangerous", "os.system") in high(scan(first + tail))


@pytest.mark.parametrize("target", ["torch._utils._import_dotted_name", "jinja2.utils.import_string",
                                    "sympy.sympify", "joblib.disk.delete_folder", "somepkg.run"])
def test_reduce_of_an_unlisted_third_party_callable_is_high(target: str) -> None:
    # Bypass: importing an unlisted third-party global is medium, and REDUCE of a resolver
    # such as torch._utils._import_dotted_name('os.system') then ran with nothing at high.
    mod, name = target.rsplit(".", 1)
    data = b"\x80\x04" + u(mod) + u(name) + b"\x93" + u("os.system") + b"\x85R" + u("echo pwned") + b"\x85R."
    assert ("pickle.call.unvetted", target) in high(scan(data))


def test_an_allowed_callable_and_a_rebuilt_object_of_an_unlisted_class_stay_below_high() -> None:
    reduce_it = b"\x80\x04" + u("somepkg") + u("run") + b"\x93" + u("x") + b"\x85R."
    ctx = ScanContext(policy=Policy(allow=["somepkg.run"]))
    scan_pickle(io.BytesIO(reduce_it), ctx, Where(path="m.pkl"))
    assert ctx.issues == []
    newobj = b"\x80\x04" + u("somepkg") + u("Model") + b"\x93)\x81}" + u("w") + b"K\x01sb."
    assert high(scan(newobj)) == []


@pytest.mark.parametrize("helper", ["numpy.random._pickle.__generator_ctor", "numpy.random._pickle.__randomstate_ctor"])
def test_an_allowlisted_helper_that_calls_its_argument_is_checked(helper: str) -> None:
    # Bypass: numpy's helper calls bit_generator_ctor(name): an unlisted callable passed
    # there ran without a call of its own in the pickle.
    mod, name = helper.rsplit(".", 1)
    data = (b"\x80\x04" + u(mod) + u(name) + b"\x93" + u("__import__('os').system('id')")
            + u("sympy") + u("sympify") + b"\x93\x86R.")
    assert ("pickle.call.unvetted", "sympy.sympify") in high(scan(data))
    ok = b"\x80\x04" + u(mod) + u(name) + b"\x93" + u("MT19937") + u(mod) + u("__bit_generator_ctor") + b"\x93\x86R."
    assert scan(ok).issues == []


def test_reconstructor_with_an_unlisted_base_is_high() -> None:
    # copyreg._reconstructor(cls, base, state) runs base.__init__(obj, state).
    data = (b"\x80\x02ccopyreg\n_reconstructor\ncsomepkg\nLauncher\ncsomepkg\nLauncher\n"
            + b"X\x02\x00\x00\x00id\x87R.")
    assert ("pickle.call.unvetted", "somepkg.Launcher") in high(scan(data))
    normal = b"\x80\x02ccopyreg\n_reconstructor\ncsomepkg\nModel\ncbuiltins\nobject\nN\x87R."
    assert high(scan(normal)) == []


def test_numpy_generators_and_pandas_intervals_stay_below_high() -> None:
    import pickle

    import numpy as np
    import pandas as pd

    for obj in (np.random.default_rng(0), np.random.RandomState(0), pd.Series(pd.interval_range(0, 3))):
        for protocol in (2, 5):
            assert high(scan(pickle.dumps(obj, protocol=protocol))) == []
