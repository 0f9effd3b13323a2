"""infra.* checks: one per family of :mod:`mlwarden.infra` rules, over the spec's ``infra:`` paths.

The infra files are scanned once per audit (shared through the audit context); each check
reports the issues of its family, with file and line. Checks are made from a table: they
differ only in which rule prefixes they own and what their documentation says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...findings import Location
from ...registry import AuditContext, Check, Outcome
from ..common import Family, family_check

FAMILIES = (
    Family("infra.exposure", "ML servers are not reachable without authentication",
           "Ray dashboards/Jobs APIs, MLflow, TorchServe management, Triton model control, vLLM, Ollama, Jupyter, "
           "BentoML, KServe InferenceServices and the Kubeflow gateway that listen beyond loopback (non-loopback "
           "bind, published port, LoadBalancer/NodePort Service, Ingress, public InferenceService) without "
           "authentication. Exposed and unauthenticated is critical; either alone is low.",
           "ShadowRay (CVE-2023-48022) and ShellTorch (CVE-2023-43654) were exploited exactly this way: an open "
           "port on an ML server is remote code execution.",
           "Turn on the product's authentication (Ray token auth, MLflow basic-auth, Triton restricted APIs, "
           "vLLM --api-key, Jupyter token) and bind to 127.0.0.1 or keep the Service ClusterIP/cluster-local.",
           ("OWASP-ML06", "AML.T0049", "NIST-MANAGE"), ("infra.exposure.",)),
    Family("infra.platform", "ML platforms run with their hardening on",
           "Product settings that open code paths: Triton logging/trace APIs unrestricted, TorchServe allowed_urls "
           "admitting any URL, per-model pip installs, MLflow security middleware off, --trust-remote-code, "
           "vLLM connectors that unpickle peer data, Jupyter --allow-root.",
           "Each turns a management or data API into file writes, downloads or code execution.",
           "Apply the fix each finding names; keep the product's secure defaults.",
           ("OWASP-ML06", "AML.T0010.003", "NIST-MANAGE"), ("infra.platform.",)),
    Family("infra.containers", "Containers run with least privilege, custom resources included",
           "Pod specs of built-in workloads and of ML custom resources (RayCluster, InferenceService, "
           "ServingRuntime, SeldonDeployment, Notebook, PyTorchJob, TrainJob…), compose services and Dockerfiles: "
           "privileged, root, privilege escalation, added capabilities, host namespaces, hostPath and runtime "
           "sockets, writable root filesystems, missing limits and probes, unpinned images, LD_PRELOAD, "
           "curl | sh and ADD from URLs, published ports.",
           "A compromised model server (a malicious pickle is enough) owns whatever its container may touch; "
           "general scanners skip the pod templates inside ML custom resources.",
           "Run as non-root with allowPrivilegeEscalation: false, a read-only root, no added capabilities, no host "
           "namespaces or hostPath, resource limits, probes and images pinned by digest.",
           ("OWASP-ML06", "AML.T0011.000", "NIST-MANAGE"),
           ("infra.container.", "infra.compose.", "infra.dockerfile.")),
    Family("infra.secrets", "No credentials in manifests, command lines or images",
           "Literal credentials in env values, argv (Triton's restricted-API key), labels/annotations, Dockerfile "
           "ENV/ARG and compose environment: secret-named keys and known token formats (hf_, AKIA, ghp_, sk-, "
           "nvapi-).",
           "Manifests and image histories are read by many; a leaked hub or cloud token is model and data theft.",
           "Move them to Secrets (secretKeyRef, $(VAR) in args) or BuildKit secret mounts, and rotate them.",
           ("OWASP-ML06", "AML.T0055", "NIST-MANAGE"), ("infra.secrets.",)),
    Family("infra.versions", "ML platforms are not on versions with known critical flaws",
           "Image tags and pins (Dockerfile pip install, requirements) of TorchServe, Triton, Ray, MLflow, BentoML, "
           "vLLM and the NVIDIA Container Toolkit below the first fixed version of a listed CVE "
           "(mlwarden.infra.versions: a dated table with its sources; no network at run time).",
           "These CVEs are remote code execution or file write on the serving host; several were exploited.",
           "Upgrade to the fixed version the finding names.",
           ("OWASP-ML06", "AML.T0010.001", "NIST-MANAGE"), ("infra.versions.",)),
    Family("infra.storage", "Models are fetched safely and cannot be swapped",
           "storageUri/modelUri over plain http, and runtimes that unpickle the model file they fetch (KServe "
           "sklearn/xgboost/lightgbm, Seldon SKLEARN_SERVER/XGBOOST_SERVER).",
           "Whoever can change the model file runs code in the server.",
           "Fetch over https or an authenticated bucket, scan the model with `mlwarden scan`, prefer formats "
           "that cannot carry code.",
           ("OWASP-ML06", "AML.T0010.003", "NIST-MANAGE"), ("infra.storage.",)),
    Family("infra.network", "Model servers sit behind a NetworkPolicy",
           "Namespaces that run an ML server while no NetworkPolicy in the manifest set covers them.",
           "Without one, every pod in the cluster reaches the server's management APIs.",
           "Add a default-deny NetworkPolicy and allow only the gateway and known clients.",
           ("OWASP-ML06", "NIST-MANAGE"), ("infra.network.",)),
    Family("infra.images", "Container images are free of models, secrets and escapes that nobody scanned",
           "Findings from image tarballs and OCI layouts read without a daemon (mlwarden.infra.image).",
           "An image ships its model files, credentials and runtime settings to every node that pulls it.",
           "Apply the fix each finding names and rebuild the image.",
           ("OWASP-ML06", "AML.T0010.003", "NIST-MANAGE"), ("infra.image.",)),
    Family("infra.unscannable", "All infra files could be read",
           "Infra files that do not parse: malformed YAML, binary content, YAML bombs, files over the size limit.",
           "A config nobody could read is a config nobody checked.",
           "Fix the file, or render Helm charts (`helm template`) before scanning.",
           ("OWASP-ML06",), ("infra.parse",)),
)


def family_of(rule: str) -> str:
    for f in FAMILIES:
        if rule.startswith(f.prefixes):
            return f.id
    return "infra.unscannable"


def scan_once(ctx: AuditContext) -> Any:
    if "infra.scan" not in ctx.cache:
        from ...infra.scan import scan_infra_full

        ctx.cache["infra.scan"] = scan_infra_full([ctx.spec.resolve(p) for p in ctx.spec.infra])
    return ctx.cache["infra.scan"]


class InfraCheck(Check):
    needs = ("infra",)
    stage = "serving"
    family: Family

    def run(self, ctx: AuditContext) -> Outcome:
        return self.outcome(scan_once(ctx), self.spec.display)

    def outcome(self, result: Any, display: Callable[[str], str]) -> Outcome:
        """This family's findings and counts from one infra scan (the audit's, or `mlwarden scan`'s)."""
        mine = [i for i in result.issues if family_of(i.rule) == self.id]
        by_rule: dict[str, int] = {}
        for i in mine:
            by_rule[i.rule] = by_rule.get(i.rule, 0) + 1
        return Outcome(findings=[self._finding(i, display) for i in mine],
                       metrics={"files_scanned": len(result.files), "issues_by_rule": dict(sorted(by_rule.items()))})

    def _finding(self, i: Any, display: Callable[[str], str]) -> Any:
        path = display(i.path)
        return self.finding(
            key=(i.rule, path, i.line, i.message), severity=i.severity,
            title=f"{i.message.split(' (', 1)[0][:120]} at {path}:{i.line}",
            description=i.message, remediation=i.remediation,
            evidence={"rule": i.rule, **{k: v for k, v in i.evidence.items() if isinstance(v, (str, int, float, bool,
                                                                                                list, type(None)))}},
            location=Location(artifact=path, line=i.line or None),
        )


CHECKS = [family_check(InfraCheck, f, __name__) for f in FAMILIES]
