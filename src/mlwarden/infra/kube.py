"""Kubernetes and Helm-rendered YAML: every object of every file, checked as one set.

Exposure needs the whole set: a Deployment is public because some Service of type
LoadBalancer/NodePort selects it, or an Ingress routes to such a Service; a namespace lacks
a NetworkPolicy only if no file declares one. :class:`KubeSet` gathers objects from all
files first, then :meth:`KubeSet.check` runs the pod-spec rules (built-in kinds and custom
resources alike, see :mod:`.kube_workloads`), the ML-platform rules on each container
(:mod:`.platform_rules`) and the resource-level ML rules (:mod:`.kube_ml`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..findings import Severity
from .base import InfraIssue, ModelRef
from .kube_hygiene import (
    PodSite,
    check_container,
    check_pod,
    container_launch,
    metadata_secrets,
    secret_issues,
)
from .kube_ml import resource_rules
from .kube_workloads import BATCH_KINDS, pod_specs
from .platform_rules import check_launch, is_model_server
from .yamldoc import as_list, as_map, dig, line_of

EXTERNAL_SERVICE_TYPES = frozenset({"LoadBalancer", "NodePort"})


@dataclass(frozen=True, kw_only=True)
class KObj:
    path: str
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(dig(self.obj, "metadata", "name") or "?")

    @property
    def namespace(self) -> str:
        return str(dig(self.obj, "metadata", "namespace") or "default")

    @property
    def line(self) -> int:
        return line_of(self.obj)

    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def objects_in(path: str, docs: list[Any]) -> list[KObj]:
    """Kubernetes objects among YAML documents (``kind: List`` unpacked)."""
    out: list[KObj] = []
    for d in docs:
        if isinstance(d, Mapping) and d.get("kind") == "List":
            out += [KObj(path=path, obj=i) for i in as_list(d.get("items")) if isinstance(i, Mapping)]
        elif isinstance(d, Mapping) and "kind" in d and "apiVersion" in d:
            out.append(KObj(path=path, obj=d))
    return out


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return bool(selector) and all(str(labels.get(k)) == str(v) for k, v in selector.items())


@dataclass
class KubeSet:
    objects: list[KObj] = field(default_factory=list)
    models: list[ModelRef] = field(default_factory=list)

    def add(self, path: str, docs: list[Any]) -> None:
        self.objects += objects_in(path, docs)

    def _of(self, *kinds: str) -> list[KObj]:
        return [o for o in self.objects if o.kind in kinds]

    def _public_services(self) -> list[KObj]:
        ingress_backends = set()
        for ing in self._of("Ingress"):
            for rule in as_list(dig(ing.obj, "spec", "rules")):
                for p in as_list(dig(rule, "http", "paths")):
                    svc = dig(p, "backend", "service", "name") or dig(p, "backend", "serviceName")
                    if svc:
                        ingress_backends.add((ing.namespace, str(svc)))
            default = dig(ing.obj, "spec", "defaultBackend", "service", "name")
            if default:
                ingress_backends.add((ing.namespace, str(default)))
        return [s for s in self._of("Service")
                if dig(s.obj, "spec", "type") in EXTERNAL_SERVICE_TYPES or (s.namespace, s.name) in ingress_backends]

    def _published(self, o: KObj, labels: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[bool | None, str]:
        if pod.get("hostNetwork") is True:
            return True, "hostNetwork"
        for s in self._public:
            if s.namespace == o.namespace and _selects(as_map(dig(s.obj, "spec", "selector")), labels):
                return True, f"Service {s.name} ({dig(s.obj, 'spec', 'type') or 'Ingress backend'})"
        return None, ""

    def check(self) -> list[InfraIssue]:
        self._public = self._public_services()
        out: list[InfraIssue] = []
        server_ns: dict[str, KObj] = {}
        for o in self.objects:
            out += metadata_secrets(o.path, o.label(), as_map(o.obj.get("metadata")))
            issues, models = resource_rules(o.path, o.label(), o.obj, self)
            out += issues
            self.models += models
            for ref in pod_specs(o.obj):
                published, why = self._published(o, ref.labels, ref.pod)
                extra = dict(ref.extra)
                if why:
                    extra["published_by"] = why
                if ref.extra.get("ray_head") and dig(o.obj, "spec", "headGroupSpec", "serviceType") in \
                        EXTERNAL_SERVICE_TYPES:
                    published = True
                site = PodSite(path=o.path, context=f"{o.label()} {ref.role}", extra=extra,
                               probes_expected=o.kind not in BATCH_KINDS and "worker" not in ref.role)
                out += check_pod(site, ref.pod)
                containers = [(str(as_map(c).get("name", i)), as_map(c))
                              for key in ("initContainers", "containers")
                              for i, c in enumerate(as_list(ref.pod.get(key)))]
                for name, c in [*containers, *ref.extra_containers]:
                    out += check_container(site, ref.pod, c, name)
                    launch = container_launch(site, c, name, published)
                    out += check_launch(launch) + secret_issues(launch)
                    if is_model_server(launch):
                        server_ns.setdefault(o.namespace, o)
        covered = {p.namespace for p in self._of("NetworkPolicy")}
        for ns, o in sorted(server_ns.items()):
            if ns not in covered:
                out.append(InfraIssue(rule="infra.network.no_policy", severity=Severity.MEDIUM, path=o.path,
                                      line=o.line, evidence={"namespace": ns},
                                      message=f"namespace {ns} runs an ML server ({o.label()}) and no NetworkPolicy "
                                              "in these manifests limits who reaches it",
                                      remediation="Add a default-deny NetworkPolicy for the namespace and allow "
                                                  "only the gateway and known clients."))
        return out
