"""Pod specs inside Kubernetes objects: built-in workloads *and* ML custom resources.

General scanners read pod templates only from the built-in kinds; the ML platforms wrap
theirs in custom resources, where privileged, root and hostPath go unseen. :func:`pod_specs`
knows where each kind keeps its pods (RayCluster head/worker groups, RayJob/RayService's
cluster spec, InferenceService predictor/transformer/explainer with their framework
containers, ServingRuntime, SeldonDeployment, Notebook, PyTorchJob/TFJob/MPIJob/any
``*ReplicaSpecs``, TrainJob's trainer, JobSet-based TrainingRuntimes) and, for any other
kind, finds every mapping that holds a ``containers`` list, so new CRDs are not skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .yamldoc import as_list, as_map, dig, line_of

BUILTIN_TEMPLATE = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"})
BATCH_KINDS = frozenset({"Job", "CronJob", "PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob", "JAXJob",
                         "TrainJob", "TrainingRuntime", "ClusterTrainingRuntime", "RayJob", "Notebook", "Workflow",
                         "JobSet", "InferenceService"})
"""Kinds whose pods finish, or whose controller adds its own probes: the probe rule skips them."""
KSERVE_FRAMEWORKS = ("model", "sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "onnx", "triton", "pmml",
                     "paddle", "huggingface", "alibi", "art")


@dataclass(frozen=True, kw_only=True)
class PodRef:
    role: str
    """Where the pod sits in the resource: ``template``, ``head``, ``worker small-group``, ``predictor``…"""
    pod: Mapping[str, Any]
    labels: Mapping[str, Any] = field(default_factory=dict)
    extra_containers: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    """Container-shaped maps outside ``containers`` (KServe ``sklearn:``/``model:``, TrainJob ``trainer``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)


def _template(t: Any, role: str, **extra: Any) -> Iterator[PodRef]:
    spec = dig(t, "spec")
    if isinstance(spec, Mapping):
        yield PodRef(role=role, pod=spec, labels=as_map(dig(t, "metadata", "labels")), extra=extra)


def _ray_cluster(spec: Any, prefix: str = "") -> Iterator[PodRef]:
    head = as_map(dig(spec, "headGroupSpec"))
    params = as_map(head.get("rayStartParams"))
    host = params.get("dashboard-host")
    # KubeRay injects dashboard-host=0.0.0.0 when the head group leaves it unset
    injected = (str(host) if host is not None else "0.0.0.0", line_of(head, "rayStartParams"))
    auth = str(dig(spec, "authOptions", "mode") or "").lower() == "token"
    yield from _template(head.get("template"), f"{prefix}head", ray_head=True, ray_dashboard_host=injected,
                         ray_auth=auth, model_server=True)
    for g in as_list(dig(spec, "workerGroupSpecs")):
        yield from _template(as_map(g).get("template"), f"{prefix}worker {as_map(g).get('groupName', '?')}",
                             ray_auth=auth)


def _kserve_component(comp: Any, role: str) -> Iterator[PodRef]:
    comp = as_map(comp)
    if not comp:
        return
    frameworks = tuple((k, as_map(comp[k])) for k in KSERVE_FRAMEWORKS if isinstance(comp.get(k), Mapping))
    yield PodRef(role=role, pod=comp, extra_containers=frameworks, extra={"model_server": True})


def _generic(node: Any, role: str, depth: int = 0) -> Iterator[PodRef]:
    if depth > 12:
        return
    if isinstance(node, Mapping):
        if any(isinstance(c, Mapping) and "image" in c for c in as_list(node.get("containers"))):
            yield PodRef(role=role, pod=node)
            return
        for k, v in node.items():
            yield from _generic(v, f"{role}.{k}" if role else str(k), depth + 1)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _generic(v, f"{role}[{i}]", depth + 1)


def pod_specs(obj: Mapping[str, Any]) -> Iterator[PodRef]:
    """Every pod spec ``obj`` holds, with its role."""
    kind = str(obj.get("kind", ""))
    spec = as_map(obj.get("spec"))
    if kind == "Pod":
        yield PodRef(role="pod", pod=spec, labels=as_map(dig(obj, "metadata", "labels")))
    elif kind in BUILTIN_TEMPLATE:
        yield from _template(spec.get("template"), "template")
    elif kind == "CronJob":
        yield from _template(dig(spec, "jobTemplate", "spec", "template"), "job template")
    elif kind == "RayCluster":
        yield from _ray_cluster(spec)
    elif kind == "RayJob":
        yield from _ray_cluster(spec.get("rayClusterSpec"), "cluster ")
        yield from _template(spec.get("submitterPodTemplate"), "submitter")
    elif kind == "RayService":
        yield from _ray_cluster(spec.get("rayClusterConfig"), "cluster ")
    elif kind == "InferenceService":
        for role in ("predictor", "transformer", "explainer"):
            yield from _kserve_component(spec.get(role), role)
    elif kind in ("ServingRuntime", "ClusterServingRuntime"):
        yield PodRef(role="runtime", pod=spec, extra={"model_server": True})
    elif kind == "SeldonDeployment":
        for p in as_list(spec.get("predictors")):
            for j, cs in enumerate(as_list(as_map(p).get("componentSpecs"))):
                yield from _template(cs, f"predictor {as_map(p).get('name', '?')} component {j}", model_server=True)
    elif kind == "Notebook":
        yield from _template(spec.get("template"), "notebook")
    elif kind == "TrainJob":
        trainer = as_map(spec.get("trainer"))
        if trainer:
            yield PodRef(role="trainer", pod={}, extra_containers=(("trainer", trainer),))
    elif any(k.endswith("ReplicaSpecs") for k in spec):
        for k, reps in spec.items():
            if str(k).endswith("ReplicaSpecs"):
                for rname, rep in as_map(reps).items():
                    yield from _template(as_map(rep).get("template"), f"{rname} replicas")
    else:
        yield from _generic(spec, "")
