"""Keras models: Lambda layers (marshalled bytecode) and custom objects in the model config.

Keras rebuilds a model from its JSON config, and two things in that config become code on
load: a ``Lambda`` layer, whose function is stored as base64 ``marshal`` bytecode and runs
as soon as the layer is built, and objects named by module (``module``/``registered_name``)
that Keras imports. Legacy ``.h5`` files keep the config in the root attribute
``model_config``; ``.keras`` zips keep it in ``config.json`` (the dispatcher passes it to
:func:`scan_keras_config`). The config is parsed as JSON and walked; bytecode is only
searched for names, never unmarshalled.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, BinaryIO

from ...findings import Severity
from ..base import NOT_FULLY_SCANNED, ScanContext, ScanIssue, Where

_SAFE_ROOTS = {"keras", "tensorflow", "tf_keras"}
_DANGEROUS_ROOTS = {"os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "importlib",
                    "shutil", "socket", "pty", "runpy", "code", "ctypes", "pickle", "marshal",
                    "commands", "webbrowser", "urllib", "requests", "pdb", "timeit"}
_DANGEROUS_NAMES = {"eval", "exec", "system", "popen", "__import__", "compile", "getattr",
                    "open", "spawn", "check_output", "run", "call", "Popen", "execfile", "input",
                    "import_module", "load", "loads"}
# Identifiers worth naming when they appear as strings inside marshalled bytecode.
_BYTECODE_NAMES = {b"os", b"posix", b"subprocess", b"system", b"popen", b"eval", b"exec", b"__import__",
                   b"builtins", b"socket", b"urllib", b"requests", b"open", b"compile", b"getattr",
                   b"marshal", b"pickle", b"ctypes", b"importlib", b"shutil", b"pty", b"check_output"}
# marshal writes short ASCII strings as a type byte ('z'/'Z', plus 0x80 when referenced),
# a one-byte length, then the bytes.
_SHORT_STRING = re.compile(rb"[zZ\xda\xfa](.)", re.DOTALL)
_REMEDIATION = (
    "Do not load this model with keras. keras.saving.load_model(path, safe_mode=True) — the default "
    "in Keras 3 — refuses lambda bytecode in .keras files, but safe_mode does not cover legacy .h5 "
    "files, which run it on load. Rebuild the architecture in code and load only the weights."
)


def scan_keras_h5(stream: BinaryIO, ctx: ScanContext, where: Where) -> None:
    """Read the model config of a legacy HDF5 Keras file and walk it for code."""
    ctx.formats[str(where)] = "keras-h5"
    try:
        import h5py  # optional: reading attributes executes nothing, but it is a C parser
    except ImportError:
        ctx.add(ScanIssue(kind="keras.h5_unreadable", severity=Severity.HIGH, where=where,
                          message="h5py is not installed, so this HDF5 Keras file was not inspected",
                          remediation="pip install h5py, then scan again."))
        return
    try:
        with h5py.File(stream, "r") as h5:
            configs = []
            for group in (h5, h5.get("model_weights")):
                if not isinstance(group, h5py.Group):
                    continue
                for name in ("model_config", "training_config"):
                    if name in group.attrs:
                        size = group.attrs.get_id(name).get_storage_size()
                        if size > ctx.limits.max_header_bytes:
                            _add(ctx, where, "keras.config_too_large", Severity.HIGH,
                                 f"{name} is {size} bytes, over the limit; not inspected")
                            continue
                        configs.append((f"{group.name}:{name}", group.attrs[name]))
    except Exception as e:  # h5py raises OSError, KeyError, ValueError… on hostile files
        _add(ctx, where, "keras.h5_unreadable", Severity.HIGH,
             f"cannot read as HDF5: {type(e).__name__}: {str(e)[:200]}",
             "A file no parser accepts cannot be reviewed; re-export the model.")
        return
    for label, raw in configs:
        data = raw.encode() if isinstance(raw, str) else bytes(raw) if isinstance(raw, (bytes, bytearray)) else None
        if data is None:
            _add(ctx, where, "keras.parse_error", Severity.HIGH, f"{label} is not a string attribute")
            continue
        scan_keras_config(data, ctx, where, label=label)


def scan_keras_config(config: bytes, ctx: ScanContext, where: Where, *, label: str = "config.json") -> None:
    """Walk a Keras model config (config.json of a .keras zip, or an .h5 model_config)."""
    ctx.formats.setdefault(str(where), "keras")
    if len(config) > ctx.limits.max_header_bytes:
        _add(ctx, where, "keras.config_too_large", Severity.HIGH, f"{label} is {len(config)} bytes; not inspected")
        return
    tokens = config.count(b"[") + config.count(b"{") + config.count(b",")
    if tokens > ctx.limits.max_json_tokens:  # json.loads would spend gigabytes on it (see jsonguard)
        _add(ctx, where, "keras.config_too_large", Severity.HIGH,
             f"{label} holds {tokens} JSON containers and items, over the {ctx.limits.max_json_tokens} limit; "
             f"not inspected ({NOT_FULLY_SCANNED})")
        return
    try:
        tree = json.loads(config)
    except (ValueError, RecursionError) as e:
        _add(ctx, where, "keras.parse_error", Severity.HIGH, f"{label} is not valid JSON: {str(e)[:200]}",
             "A config no parser accepts cannot be reviewed; re-export the model.")
        return
    _walk(tree, "", ctx, where, 0)


def _walk(node: Any, path: str, ctx: ScanContext, where: Where, depth: int) -> None:
    if depth > 200:
        _add(ctx, where, "keras.parse_error", Severity.HIGH, f"config nested deeper than 200 levels at {path}")
        return
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]", ctx, where, depth + 1)
        return
    if not isinstance(node, dict):
        return
    class_name = node.get("class_name")
    if isinstance(class_name, str):
        raw = node.get("config")
        config: dict[str, Any] = raw if isinstance(raw, dict) else {}
        name = config.get("name", class_name) if isinstance(config, dict) else class_name
        here = f"{path}/{name}" if path else str(name)
        _check_object(node, class_name, config, here, ctx, where)
        path = here
    for value in node.values():
        if isinstance(value, (dict, list)):
            _walk(value, path, ctx, where, depth + 1)


def _check_object(node: dict[str, Any], class_name: str, config: dict[str, Any], here: str,
                  ctx: ScanContext, where: Where) -> None:
    if class_name == "__lambda__":  # Keras 3: {"class_name": "__lambda__", "config": {"value": ...}}
        _lambda(here, config.get("value", config.get("code")), "lambda", None, ctx, where)
    elif class_name == "Lambda":
        _lambda(here, config.get("function"), config.get("function_type"), config.get("module"), ctx, where)
    module = node.get("module")
    registered = node.get("registered_name")
    if isinstance(module, str) and module:
        root = module.split(".")[0]
        if root in _DANGEROUS_ROOTS:
            _add(ctx, where, "keras.dangerous_reference", Severity.CRITICAL,
                 f"{here}: object {class_name!r} is imported from module {module!r}", _REMEDIATION,
                 module=module, class_name=class_name)
        elif root not in _SAFE_ROOTS:
            _add(ctx, where, "keras.custom_object", Severity.MEDIUM,
                 f"{here}: custom object {class_name!r} from module {module!r} is imported by name on load",
                 "Load only with custom objects you wrote, via custom_objects=…, in safe_mode.",
                 module=module, class_name=class_name)
    if isinstance(registered, str) and ">" in registered:
        _add(ctx, where, "keras.custom_object", Severity.MEDIUM,
             f"{here}: registered custom object {registered!r} must be supplied by the loading code",
             "Load only with custom objects you wrote, via custom_objects=…, in safe_mode.",
             registered_name=registered)


def _lambda(here: str, function: Any, function_type: Any, module: Any, ctx: ScanContext, where: Where) -> None:
    if isinstance(function, dict):  # Keras 3 Lambda: function is itself a serialized object
        return  # the walker reaches it and checks __lambda__ / module there
    if function_type == "lambda" or isinstance(function, list):
        code = function[0] if isinstance(function, list) and function else function
        names = _bytecode_names(code)
        _add(ctx, where, "keras.lambda_layer", Severity.CRITICAL,
             f"{here}: Lambda layer carries marshalled Python bytecode that runs when the model loads"
             + (f" (names {', '.join(names)})" if names else ""), _REMEDIATION,
             names=names, bytecode_chars=len(code) if isinstance(code, str) else None)
        return
    func = str(function)
    dangerous_module = isinstance(module, str) and module.split(".")[0] in _DANGEROUS_ROOTS
    if dangerous_module or func.split(".")[-1] in _DANGEROUS_NAMES:
        _add(ctx, where, "keras.dangerous_reference", Severity.CRITICAL,
             f"{here}: Lambda layer calls {module}.{func}", _REMEDIATION, module=module, function=func)
    else:
        _add(ctx, where, "keras.lambda_layer", Severity.HIGH,
             f"{here}: Lambda layer calls the function {func[:100]!r} from {module!r}, imported on load",
             _REMEDIATION, module=module, function=func[:200])


def _bytecode_names(code: Any) -> list[str]:
    """Identifiers of interest inside base64 marshal data: a search, never marshal.loads."""
    if not isinstance(code, str):
        return []
    try:
        raw = base64.b64decode(code.encode("ascii", errors="ignore")[: 16 << 20], validate=False)
    except (binascii.Error, ValueError):
        return []
    found = set()
    for m in _SHORT_STRING.finditer(raw):
        text = raw[m.end(): m.end() + m.group(1)[0]]
        if text in _BYTECODE_NAMES:
            found.add(text.decode())
    return sorted(found)


def _add(ctx: ScanContext, where: Where, kind: str, severity: Severity, message: str,
         remediation: str = "", **detail: Any) -> None:
    ctx.add(ScanIssue(kind=kind, severity=severity, message=message, where=where,
                      remediation=remediation, detail=detail))
