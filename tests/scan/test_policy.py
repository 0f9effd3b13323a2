"""The allowlist-first policy: safe, dangerous and unknown globals, and what allow can change."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.findings import Severity
from mlwarden.scan.policy import Policy, Verdict

SAFE = [
    ("builtins", "dict"), ("builtins", "frozenset"), ("collections", "OrderedDict"),
    ("copyreg", "_reconstructor"), ("copyreg", "__newobj__"), ("datetime", "datetime"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "dtype"), ("numpy.random._pickle", "__randomstate_ctor"),
    ("pandas.core.internals.managers", "BlockManager"), ("sklearn.tree._tree", "Tree"),
    ("sklearn.linear_model._logistic", "LogisticRegression"),  # via all_estimators()
    ("sklearn.ensemble._forest", "RandomForestClassifier"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"), ("torch._utils", "_rebuild_tensor_v2"),
    ("__builtin__", "set"), ("copy_reg", "_reconstructor"), ("uuid", "UUID"),
    ("zoneinfo", "ZoneInfo._unpickle"),
]

DANGEROUS = [
    ("os", "system"), ("posix", "system"), ("nt", "system"), ("subprocess", "Popen"),
    ("asyncio.unix_events", "_UnixSubprocessTransport"), ("builtins", "eval"),
    ("builtins", "getattr"), ("__builtin__", "exec"), ("os.path", "join"),
    ("collections", "os.system"), ("numpy", "__builtins__"), ("numpy", "__builtins__.eval"),
    ("subprocess", "Popen.__init__"), ("uuid", "_get_command_stdout"), ("numpy", "load"),
    ("torch.storage", "_load_from_bytes"), ("torch", "load"), ("pandas", "read_pickle"),
    ("sklearn.datasets", "fetch_openml"), ("mypkg.utils", "system"), ("", "system"),
]


@pytest.mark.parametrize(("module", "name"), SAFE)
def test_known_safe_globals_are_safe(module: str, name: str) -> None:
    assert Policy().classify(module, name).level == "safe"


@pytest.mark.parametrize(("module", "name"), DANGEROUS)
def test_gadgets_are_dangerous_and_critical(module: str, name: str) -> None:
    v = Policy().classify(module, name)
    assert (v.level, v.severity) == ("dangerous", Severity.CRITICAL)


def test_unknown_stdlib_is_high_and_third_party_is_medium_with_a_hint() -> None:
    std = Policy().classify("builtins", "type")
    third = Policy().classify("somepkg.models", "MyModel")
    assert (std.level, std.severity) == ("unknown", Severity.HIGH)
    assert (third.level, third.severity) == ("unknown", Severity.MEDIUM)
    assert "--allow somepkg.models.MyModel" in third.reason


def test_main_module_and_dotted_names_are_at_least_high() -> None:
    assert Policy().classify("__main__", "Net").severity == Severity.HIGH
    dotted = Policy().classify("collections", "OrderedDict.fromkeys")
    assert (dotted.level, dotted.severity) == ("unknown", Severity.HIGH)


def test_allow_upgrades_unknown_exactly_and_by_module_wildcard() -> None:
    p = Policy(["somepkg.models.MyModel", "otherpkg.*"])
    assert p.classify("somepkg.models", "MyModel").level == "safe"
    assert p.classify("somepkg.models", "Other").level == "unknown"
    assert p.classify("otherpkg.sub", "Thing").level == "safe"


def test_allow_never_upgrades_a_gadget_and_says_so() -> None:
    p = Policy(["os.system", "subprocess.*", "builtins.eval"])
    for module, name in [("os", "system"), ("subprocess", "run"), ("builtins", "eval")]:
        v = p.classify(module, name)
        assert v.level == "dangerous"
        assert "on the allowlist but is a known code-execution gadget" in v.reason


def test_wildcard_allow_does_not_admit_reexported_gadgets() -> None:
    p = Policy(["mypkg.*"])
    assert p.classify("mypkg", "os").level == "dangerous"
    assert p.classify("mypkg", "loads").level == "dangerous"


def test_old_joblib_wrappers_are_nested_deserialization() -> None:
    v = Policy().classify("joblib.numpy_pickle_compat", "NDArrayWrapper")
    assert (v.level, v.severity) == ("dangerous", Severity.HIGH)


def test_verdict_is_frozen() -> None:
    v = Verdict("safe", Severity.INFO, "x")
    with pytest.raises(AttributeError):
        v.level = "dangerous"  # type: ignore[misc]


def test_standard_torch_layers_are_safe_and_a_custom_module_is_medium() -> None:
    for module, name in [("torch.nn.modules.linear", "Linear"), ("torch.nn.modules.rnn", "LSTM"),
                         ("torch.nn.modules.container", "Sequential"),
                         ("torch._utils", "_rebuild_parameter")]:
        assert Policy().classify(module, name).level == "safe", (module, name)
    custom = Policy().classify("mypkg.nets", "MyNet")
    assert (custom.level, custom.severity) == ("unknown", Severity.MEDIUM)
    # the list is of classes under torch.nn.modules, not every torch global
    assert Policy().classify("torch.nn.functional", "relu").level == "unknown"


def _tiny_net() -> object:
    """A user-defined module (made lazily, so the other tests need no torch): the scanner
    cannot vouch for its code. It is published as a module global so pickle finds it."""
    import torch

    class TinyNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

    TinyNet.__qualname__ = "TinyNet"
    globals()["TinyNet"] = TinyNet
    return TinyNet()


def test_full_module_torch_save_of_standard_layers_scans_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    from mlwarden.scan import scan_path

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Conv2d(2, 2, 3),
                          nn.BatchNorm2d(2), nn.LayerNorm(4), nn.Dropout(), nn.Embedding(5, 2),
                          nn.LSTM(2, 2), nn.GRU(2, 2), nn.GELU(), nn.ModuleList([nn.Tanh()]))
    path = tmp_path / "model.pt"
    torch.save(model, path)
    result = scan_path(path, policy=Policy())
    assert result.format == "pytorch-zip"
    assert [i for i in result.issues if i.severity.rank >= Severity.MEDIUM.rank] == []


def test_custom_module_in_a_torch_save_stays_medium(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from mlwarden.scan import scan_path

    path = tmp_path / "custom.pt"
    torch.save(_tiny_net(), path)
    issues = scan_path(path, policy=Policy()).issues
    worst = max(issues, key=lambda i: i.severity.rank)
    assert worst.severity == Severity.MEDIUM
    assert f"{__name__}.TinyNet" in worst.message
