"""Keras: .h5 files written with h5py and .keras config.json dicts; bytecode is never loaded."""

from __future__ import annotations

import base64
import json
import marshal
import sys

import pytest

from mlwarden.scan.base import ScanContext, ScanIssue, Where
from mlwarden.scan.formats.keras import scan_keras_config, scan_keras_h5

from .conftest import kinds, worst

h5py = pytest.importorskip("h5py")

# The malicious function, as Keras' func_dump would store it. Compiled and marshalled here;
# the scanner only base64-decodes it and looks for names.
EVIL_CODE = base64.b64encode(
    marshal.dumps(compile("lambda x: __import__('os').system('id') or x", "<evil>", "eval").co_consts[0])
).decode()


def scan_config(config: bytes) -> list[ScanIssue]:
    ctx = ScanContext(policy=None)
    scan_keras_config(config, ctx, Where(path="m.keras", members=("config.json",)))
    return ctx.issues


def dense(name="dense"):
    return {"class_name": "Dense", "config": {"name": name, "units": 1, "activation": "relu"}}


def sequential(*layers):
    return {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "in"}}, *layers]}}


def keras2_lambda(name="lam"):
    return {"class_name": "Lambda", "config": {"name": name, "function": [EVIL_CODE, None, None],
                                               "function_type": "lambda", "module": "__main__"}}


def write_h5(path, config, where="root"):
    with h5py.File(path, "w") as f:
        target = f if where == "root" else f.create_group("model_weights")
        target.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        if where == "root":
            f.create_group("model_weights")


def test_benign_h5_is_clean(scan, tmp_path):
    write_h5(tmp_path / "m.h5", sequential(dense()))
    assert scan(scan_keras_h5, (tmp_path / "m.h5").read_bytes()) == []


@pytest.mark.parametrize("where", ["root", "model_weights"])
def test_h5_lambda_bytecode_is_critical(scan, tmp_path, where):
    write_h5(tmp_path / "m.h5", sequential(dense(), keras2_lambda()), where)
    issues = scan(scan_keras_h5, (tmp_path / "m.h5").read_bytes())
    lam = [i for i in issues if i.kind == "keras.lambda_layer"]
    assert len(lam) == 1 and lam[0].severity.value == "critical"
    assert {"__import__", "os", "system"} <= set(lam[0].detail["names"])
    assert "safe_mode" in lam[0].remediation and ".h5" in lam[0].remediation


def test_lambda_wrapped_in_timedistributed_inside_functional(scan):
    config = {"class_name": "Functional", "config": {"name": "f", "layers": [
        {"class_name": "TimeDistributed", "config": {"name": "td", "layer": keras2_lambda("inner")}}]}}
    issues = scan_config(json.dumps(config).encode())
    assert worst(issues) == "critical"
    assert "td/inner" in issues[0].message


def test_keras3_lambda_in_config_json_is_critical(scan):
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {"layers": [
        {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
         "config": {"name": "lam", "function": {"class_name": "__lambda__",
                                                "config": {"value": [EVIL_CODE, None, None]}}}}]}}
    issues = scan_config(json.dumps(config).encode())
    assert [(i.kind, i.severity.value) for i in issues] == [("keras.lambda_layer", "critical")]


def test_keras3_benign_config_is_clean(scan):
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {"layers": [
        {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
         "config": {"name": "d", "units": 2, "kernel_initializer": {
             "module": "keras.initializers", "class_name": "GlorotUniform", "registered_name": None}}}]}}
    assert scan_config(json.dumps(config).encode()) == []


def test_custom_objects_are_medium(scan):
    config = sequential({"module": "my_pkg.layers", "class_name": "MyLayer", "registered_name": "my_pkg>MyLayer",
                         "config": {"name": "mine"}})
    issues = scan_config(json.dumps(config).encode())
    assert kinds(issues) == {"keras.custom_object"} and worst(issues) == "medium"


@pytest.mark.parametrize(
    "obj",
    [
        {"module": "os", "class_name": "system", "config": {"name": "x"}},
        {"module": "builtins", "class_name": "function", "config": "eval"},
        {"class_name": "Lambda", "config": {"name": "l", "function": "system", "function_type": "function",
                                            "module": "os"}},
        {"class_name": "Lambda", "config": {"name": "l", "function": "eval", "function_type": "function",
                                            "module": "my_utils"}},
    ],
)
def test_dangerous_references_are_critical(scan, obj):
    issues = scan_config(json.dumps(sequential(obj)).encode())
    assert "keras.dangerous_reference" in kinds(issues) and worst(issues) == "critical"


def test_named_function_lambda_is_high(scan):
    obj = {"class_name": "Lambda", "config": {"name": "l", "function": "preprocess", "function_type": "function",
                                              "module": "my_utils"}}
    issues = scan_config(json.dumps(sequential(obj)).encode())
    assert [(i.kind, i.severity.value) for i in issues] == [("keras.lambda_layer", "high")]


@pytest.mark.parametrize("data", [b"{not json", b"\xff\xfe", b"[" * 50_000])
def test_bad_config_is_a_parse_error(scan, data):
    issues = scan_config(data)
    assert len(issues) == 1 and issues[0].kind == "keras.parse_error" and issues[0].severity.rank >= 2


def test_not_hdf5_is_unreadable(scan):
    issues = scan(scan_keras_h5, b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    assert [i.kind for i in issues] == ["keras.h5_unreadable"]


def test_missing_h5py_is_reported(scan, tmp_path, monkeypatch):
    write_h5(tmp_path / "m.h5", sequential(keras2_lambda()))
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    issues = scan(scan_keras_h5, (tmp_path / "m.h5").read_bytes())
    assert [(i.kind, i.severity.value) for i in issues] == [("keras.h5_unreadable", "high")]  # fails closed
