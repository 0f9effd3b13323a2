"""A small, dated table of ML-platform versions with known critical flaws, and the lookups.

No network at run time: the table is the data. Each entry names its source (the advisory,
or the issue that listed it) and the date it was last checked; the first-fixed version is
the one the advisory gives. Versions come from image tags (``rayproject/ray:2.8.0``,
``nvcr.io/nvidia/tritonserver:24.01-py3``), pins (``pip install mlflow==2.9.0``,
requirements files) and, for image tarballs, dist-info (:func:`advisories_for_package`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..findings import Severity

CHECKED = "2026-03"


@dataclass(frozen=True, kw_only=True)
class Advisory:
    product: str
    cve: str
    fixed: tuple[int, ...]
    """First version without the flaw; versions below it are affected."""
    since: tuple[int, ...] = ()
    """First affected version (empty: every earlier version)."""
    severity: Severity
    summary: str
    source: str
    packages: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    checked: str = CHECKED


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


TABLE: tuple[Advisory, ...] = (
    Advisory(product="TorchServe", cve="CVE-2023-43654", fixed=_v("0.8.2"), severity=Severity.CRITICAL,
             summary="ShellTorch: SSRF in model registration (allowed_urls) leading to remote code execution",
             source="pytorch/serve security advisory; listed in issue 12",
             packages=("torchserve",), images=("pytorch/torchserve",)),
    Advisory(product="TorchServe", cve="CVE-2024-35198", fixed=_v("0.11.0"), severity=Severity.HIGH,
             summary="allowed_urls check bypassed with '..' in model URLs",
             source="pytorch/serve security advisory; listed in issue 12",
             packages=("torchserve",), images=("pytorch/torchserve",)),
    Advisory(product="TorchServe", cve="CVE-2024-35199", fixed=_v("0.11.0"), severity=Severity.HIGH,
             summary="gRPC inference and management ports bound to all interfaces whatever the config says",
             source="pytorch/serve security advisory; listed in issue 12",
             packages=("torchserve",), images=("pytorch/torchserve",)),
    Advisory(product="Triton Inference Server", cve="CVE-2025-23319", fixed=(25, 7), severity=Severity.CRITICAL,
             summary="Python-backend shared-memory chain (with CVE-2025-23320/23334) to unauthenticated code execution",
             source="NVIDIA security bulletin Aug 2025; issue 12 ('images older than 25.07')",
             images=("nvcr.io/nvidia/tritonserver",)),
    Advisory(product="Ray", cve="CVE-2023-6019", fixed=_v("2.8.1"), severity=Severity.CRITICAL,
             summary="command injection in the dashboard's cpu_profile endpoint (unauthenticated)",
             source="NVD CVE-2023-6019 (huntr); issue 12 example tag rayproject/ray:2.8.0",
             packages=("ray",), images=("rayproject/ray", "rayproject/ray-ml")),
    Advisory(product="MLflow", cve="CVE-2023-6831", fixed=_v("2.9.2"), severity=Severity.HIGH,
             summary="path traversal in artifact handling (one of the 2023-2024 file read/write CVEs)",
             source="NVD CVE-2023-6831 (huntr); issue 12 ('path-traversal/file-write CVEs 2023-2024')",
             packages=("mlflow",), images=("ghcr.io/mlflow/mlflow",)),
    Advisory(product="BentoML", cve="CVE-2024-2912", fixed=_v("1.2.5"), severity=Severity.CRITICAL,
             summary="pickle deserialization of request bodies (application/vnd.bentoml+pickle) - remote code execution",
             source="bentoml security advisory; listed in issue 12",
             packages=("bentoml",), images=("bentoml/bento-server",)),
    Advisory(product="BentoML", cve="CVE-2025-27520", fixed=_v("1.4.3"), since=_v("1.3.4"), severity=Severity.CRITICAL,
             summary="pickle.loads of request payloads in serde.deserialize_value - remote code execution",
             source="bentoml security advisory; listed in issue 12",
             packages=("bentoml",), images=("bentoml/bento-server",)),
    Advisory(product="vLLM", cve="CVE-2025-47277", fixed=_v("0.8.5"), since=_v("0.6.5"), severity=Severity.CRITICAL,
             summary="PyNcclPipe KV-cache transfer unpickles data received over TCP - remote code execution",
             source="vllm security advisory; issue 12 ('pickle-over-ZeroMQ connectors')",
             packages=("vllm",), images=("vllm/vllm-openai",)),
    Advisory(product="NVIDIA Container Toolkit", cve="CVE-2025-23266", fixed=_v("1.17.8"), severity=Severity.CRITICAL,
             summary="container escape through LD_PRELOAD in an image's environment (createContainer hook)",
             source="NVIDIA security bulletin Jul 2025; listed in issue 12",
             packages=(), images=("nvcr.io/nvidia/k8s/container-toolkit", "nvidia/container-toolkit")),
)


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """Leading numeric version of a tag or pin: ``v2.9.0`` → (2,9,0), ``24.01-py3`` → (24,1), ``latest`` → None."""
    m = re.match(r"^[vV]?(\d+(?:\.\d+){0,3})", (text or "").strip())
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def _affected(a: Advisory, version: tuple[int, ...]) -> bool:
    width = max(len(a.fixed), len(version))
    pad = lambda t: t + (0,) * (width - len(t))
    return pad(version) < pad(a.fixed) and (not a.since or pad(version) >= pad(a.since))


def advisories_for_image(repo_name: str, tag: str | None) -> list[Advisory]:
    """Advisories for an image ``repo_name`` (registry-qualified unless Docker Hub) at ``tag``."""
    version = parse_version(tag)
    if version is None:
        return []
    name = repo_name.lower()
    return [a for a in TABLE if any(name == i or name.endswith("/" + i) for i in a.images) and _affected(a, version)]


def advisories_for_package(package: str, version_text: str | None) -> list[Advisory]:
    """Advisories for a Python distribution ``package`` at ``version_text`` (a pin or a dist-info version)."""
    version = parse_version(version_text)
    if version is None:
        return []
    name = re.sub(r"[-_.]+", "-", package).lower()
    return [a for a in TABLE if name in a.packages and _affected(a, version)]


PIN = re.compile(r"(?<![\w.-])([A-Za-z][A-Za-z0-9_.-]*)(?:\[[^\]]*\])?\s*==\s*([0-9][0-9A-Za-z.+!-]*)")


def pins_in(text: str) -> list[tuple[str, str]]:
    """``name==version`` pins in a requirements line or a ``pip install`` command."""
    return [(m.group(1), m.group(2)) for m in PIN.finditer(text)]
