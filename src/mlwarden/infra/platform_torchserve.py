"""TorchServe ``config.properties``: ShellTorch preconditions and friends.

Read with ``jproperties`` (Java properties: escapes, continuations, ``=``/``:``/space
separators). Rules, on the line of the key:

* ``infra.exposure.torchserve``: ``management_address``/``inference_address`` (and the gRPC
  addresses of 0.11+) beyond loopback while ``disable_token_authorization=true`` → critical
  (ShellTorch, CVE-2023-43654, needs nothing more); beyond loopback with token auth on → low.
  Unset addresses default to 127.0.0.1; the project's own docker/config.properties sets 0.0.0.0.
* ``infra.platform.torchserve.allowed_urls``: ``enable_model_api=true`` with ``allowed_urls``
  unset (default: any file or http(s) URL) or matching anything → high (register a model
  from an attacker's URL; CVE-2024-35198 bypassed the check below 0.11).
* ``infra.platform.torchserve.install_py_dep_per_model=true`` → medium (pip runs the model
  archive's requirements).
* ``model_store`` and ``load_models`` are returned as model references.
"""

from __future__ import annotations

import re

from ..findings import Severity
from .base import InfraIssue, ModelRef, parse_issue
from .launch import host_of, is_open_host

ADDRESSES = ("management_address", "inference_address", "grpc_management_address", "grpc_inference_address")
PERMISSIVE_URL = re.compile(r"^\s*(\.\*|\^?\.\*\$?|https?\?*://\.\*|.*\(\?:?https?\)\?*://\.\*.*|.*http\(s\)\?://\.\*.*)\s*$")


def _lines(text: str, base: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        m = re.match(r"^\s*([^#!\s=:][^\s=:]*)\s*[=:\s]", raw + " ")
        if m and m.group(1) not in out:
            out[m.group(1)] = base + n
    return out


def check_properties(text: str, path: str, base_line: int = 0, context: str = "config.properties"
                     ) -> tuple[list[InfraIssue], list[ModelRef]]:
    from jproperties import Properties

    props = Properties()
    try:
        props.load(text, "utf-8")
    except Exception as e:  # noqa: BLE001 - jproperties raises bare parse errors of several types
        return [parse_issue(path, f"TorchServe properties: {e}", base_line)], []
    values = {k: v.data for k, v in props.items()}
    lines = _lines(text, base_line)
    first = base_line + 1

    def issue(rule: str, sev: Severity, msg: str, key: str, fix: str, **ev: object) -> InfraIssue:
        return InfraIssue(rule=rule, severity=sev, path=path, line=lines.get(key, first),
                          message=f"{msg} ({context})", remediation=fix, evidence={"key": key, **ev})

    out: list[InfraIssue] = []
    no_auth = values.get("disable_token_authorization", "").strip().lower() == "true"
    for key in ADDRESSES:
        if key not in values or not is_open_host(host_of(values[key])):
            if no_auth and key == "management_address":
                out.append(issue("infra.exposure.torchserve", Severity.LOW, "TorchServe token authorization is "
                                 "disabled (management API on loopback today)", "disable_token_authorization",
                                 "Remove disable_token_authorization=true."))
            continue
        if no_auth:
            out.append(issue("infra.exposure.torchserve", Severity.CRITICAL,
                             f"TorchServe {key} {values[key]} listens beyond loopback with token authorization "
                             "disabled (ShellTorch, CVE-2023-43654)", key,
                             f"Bind {key} to http://127.0.0.1 and remove disable_token_authorization=true.",
                             address=values[key]))
        else:
            out.append(issue("infra.exposure.torchserve", Severity.LOW,
                             f"TorchServe {key} {values[key]} listens beyond loopback (token authorization on; "
                             "TorchServe < 0.11 ignores it)", key, "Bind to 127.0.0.1 unless a gateway needs it.",
                             address=values[key]))
    model_api = values.get("enable_model_api", "").strip().lower() == "true"
    urls = values.get("allowed_urls")
    permissive = urls is None or any(PERMISSIVE_URL.match(u) for u in urls.split(","))
    if model_api and permissive:
        out.append(issue("infra.platform.torchserve.allowed_urls", Severity.HIGH,
                         "TorchServe model-registration API is on and allowed_urls admits any URL "
                         f"({'unset' if urls is None else urls})", "allowed_urls" if urls is not None else
                         "enable_model_api", "Set allowed_urls to your own model bucket, e.g. "
                         "https://models\\.example\\.com/.*, or set enable_model_api=false."))
    if values.get("install_py_dep_per_model", "").strip().lower() == "true":
        out.append(issue("infra.platform.torchserve.install_py_dep_per_model", Severity.MEDIUM,
                         "TorchServe pip-installs each model archive's requirements", "install_py_dep_per_model",
                         "Set install_py_dep_per_model=false and bake dependencies into the image."))
    models: list[ModelRef] = []
    if values.get("model_store"):
        models.append(ModelRef(uri=values["model_store"], path=path, line=lines.get("model_store", first),
                               context=context))
    for item in (values.get("load_models") or "").split(","):
        target = item.split("=", 1)[-1].strip()
        if target and target not in ("all", "standalone"):
            models.append(ModelRef(uri=target, path=path, line=lines.get("load_models", first), context=context))
    return out, models
