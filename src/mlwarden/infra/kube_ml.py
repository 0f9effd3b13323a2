"""Resource-level ML rules for Kubernetes objects: KServe, Seldon, Kubeflow, embedded configs.

* ``infra.exposure.kserve``: an InferenceService is public through the cluster gateway unless
  labelled ``networking.knative.dev/visibility`` (or ``networking.kserve.io/visibility``)
  ``cluster-local``; authentication is an ``*enable-auth: "true"`` annotation. Public and no
  auth → critical; otherwise low (see :mod:`.platform_rules` for the shared scale).
* ``infra.storage.plain_http``: ``storageUri``/``modelUri`` over http:// → high (anyone on the
  path swaps the model, which the sklearn/xgboost runtimes then unpickle).
* ``infra.storage.pickle_runtime``: a runtime that unpickles the model file → medium; the
  file is returned by :func:`referenced_models` for the artifact scanner.
* ``infra.exposure.kubeflow``: the Istio ingress gateway as LoadBalancer/NodePort with no
  RequestAuthentication/AuthorizationPolicy/oauth2-proxy/authservice in the set → critical.
* ConfigMaps that embed a TorchServe ``config.properties`` get the TorchServe rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..findings import Severity
from .base import InfraIssue, ModelRef
from .kube_workloads import KSERVE_FRAMEWORKS
from .yamldoc import as_list, as_map, dig, line_of

if TYPE_CHECKING:
    from .kube import KubeSet

VISIBILITY_KEYS = ("networking.knative.dev/visibility", "networking.kserve.io/visibility",
                   "serving.knative.dev/visibility")
AUTH_KEYS = ("security.opendatahub.io/enable-auth", "serving.kserve.io/enable-auth")
PICKLE_FORMATS = frozenset({"sklearn", "xgboost", "lightgbm", "SKLEARN_SERVER", "XGBOOST_SERVER"})
AUTH_KINDS = frozenset({"RequestAuthentication", "AuthorizationPolicy"})
AUTH_DEPLOYMENTS = ("oauth2-proxy", "authservice", "dex")


def _issue(path: str, rule: str, sev: Severity, msg: str, line: int, fix: str, **ev: Any) -> InfraIssue:
    return InfraIssue(rule=rule, severity=sev, path=path, line=line, message=msg, remediation=fix, evidence=ev)


def _storage(path: str, label: str, node: Mapping[str, Any], key: str, fmt: str | None,
             issues: list[InfraIssue], models: list[ModelRef]) -> None:
    uri = node.get(key)
    if not isinstance(uri, str) or not uri:
        return
    line = line_of(node, key)
    models.append(ModelRef(uri=uri, path=path, line=line, context=label))
    if uri.lower().startswith("http://"):
        issues.append(_issue(path, "infra.storage.plain_http", Severity.HIGH,
                             f"model fetched over plain http: {uri} ({label})", line,
                             "Serve models from https:// or an authenticated bucket (s3://, gs://) and pin a digest.",
                             uri=uri))
    if fmt in PICKLE_FORMATS:
        issues.append(_issue(path, "infra.storage.pickle_runtime", Severity.MEDIUM,
                             f"the {fmt} runtime unpickles {uri}: whoever writes there runs code in the server "
                             f"({label})", line, "Scan the model with `mlwarden scan`, keep the bucket write-protected "
                             "and prefer a format that cannot carry code (ONNX, safetensors, skops).", uri=uri))


def _isvc(path: str, label: str, obj: Mapping[str, Any], issues: list[InfraIssue], models: list[ModelRef]) -> None:
    meta = as_map(obj.get("metadata"))
    tags = {**as_map(meta.get("annotations")), **as_map(meta.get("labels"))}
    local = any(str(tags.get(k, "")) == "cluster-local" for k in VISIBILITY_KEYS)
    auth = any(str(tags.get(k, "")).lower() == "true" for k in AUTH_KEYS)
    line = line_of(obj, "metadata")
    ev = {"cluster_local": local, "auth": auth}
    if not local and not auth:
        issues.append(_issue(path, "infra.exposure.kserve", Severity.CRITICAL,
                             f"InferenceService is public through the ingress gateway without authentication ({label})",
                             line, "Label it networking.knative.dev/visibility: cluster-local, or enable auth "
                             "(serving.kserve.io/enable-auth: \"true\") behind an authenticating gateway.", **ev))
    elif not auth or not local:
        issues.append(_issue(path, "infra.exposure.kserve", Severity.LOW,
                             f"InferenceService is {'cluster-local' if local else 'public'} and authentication is "
                             f"{'on' if auth else 'off'} ({label})", line, "Keep it cluster-local or authenticated.",
                             **ev))
    spec = as_map(obj.get("spec"))
    for role in ("predictor", "transformer", "explainer"):
        comp = as_map(spec.get(role))
        _storage(path, f"{label} {role}", comp, "storageUri", None, issues, models)
        for fw in KSERVE_FRAMEWORKS:
            node = as_map(comp.get(fw))
            fmt = str(dig(node, "modelFormat", "name") or "") if fw == "model" else fw
            _storage(path, f"{label} {role}", node, "storageUri", fmt, issues, models)


def _seldon_graph(path: str, label: str, node: Any, issues: list[InfraIssue], models: list[ModelRef],
                  depth: int = 0) -> None:
    node = as_map(node)
    if not node or depth > 32:
        return
    _storage(path, label, node, "modelUri", str(node.get("implementation") or ""), issues, models)
    for child in as_list(node.get("children")):
        _seldon_graph(path, label, child, issues, models, depth + 1)


def _gateway(path: str, label: str, obj: Mapping[str, Any], kset: KubeSet, issues: list[InfraIssue]) -> None:
    if dig(obj, "spec", "type") not in ("LoadBalancer", "NodePort"):
        return
    auth = any(o.kind in AUTH_KINDS for o in kset.objects) or \
        any(o.kind == "Deployment" and any(a in o.name for a in AUTH_DEPLOYMENTS) for o in kset.objects)
    sev = Severity.LOW if auth else Severity.CRITICAL
    issues.append(_issue(path, "infra.exposure.kubeflow", sev,
                         f"Kubeflow/Istio ingress gateway is a {dig(obj, 'spec', 'type')} "
                         f"{'behind' if auth else 'without'} an authentication policy in these manifests ({label})",
                         line_of(as_map(obj.get("spec")), "type"), "Keep the gateway ClusterIP behind an "
                         "authenticating proxy (oauth2-proxy/dex) and add a RequestAuthentication + AuthorizationPolicy.",
                         auth=auth))


def resource_rules(path: str, label: str, obj: Mapping[str, Any], kset: KubeSet) -> tuple[list[InfraIssue],
                                                                                           list[ModelRef]]:
    issues: list[InfraIssue] = []
    models: list[ModelRef] = []
    kind = str(obj.get("kind", ""))
    spec = as_map(obj.get("spec"))
    if kind == "InferenceService":
        _isvc(path, label, obj, issues, models)
    elif kind == "SeldonDeployment":
        for p in as_list(spec.get("predictors")):
            _seldon_graph(path, label, as_map(p).get("graph"), issues, models)
    elif kind == "Model" and "seldon" in str(obj.get("apiVersion", "")):
        _storage(path, label, spec, "storageUri", None, issues, models)
    elif kind == "Service" and (dig(obj, "metadata", "name") == "istio-ingressgateway"
                                or "kubeflow" in str(dig(obj, "metadata", "namespace") or "")):
        _gateway(path, label, obj, kset, issues)
    elif kind == "ConfigMap":
        from .platform_torchserve import check_properties

        data = obj.get("data")
        for k, v in as_map(data).items():
            if isinstance(v, str) and ("management_address" in v or "inference_address" in v):
                found, refs = check_properties(v, path, line_of(data, k), f"{label} data {k}")
                issues += found
                models += refs
    return issues, models
