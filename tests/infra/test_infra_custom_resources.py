"""A pod spec with privileged + hostPath + root is flagged the same inside every custom resource as in a Deployment."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.findings import Severity
from mlwarden.infra.scan import scan_infra

POD = """\
securityContext:
  runAsUser: 0
containers:
- name: main
  image: registry.example.com/ml/server:1.0
  securityContext:
    privileged: true
    allowPrivilegeEscalation: true
    capabilities:
      add: [SYS_ADMIN]
  env:
  - name: HF_TOKEN
    value: hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789
volumes:
- name: host
  hostPath:
    path: /var/run/docker.sock
"""


def indent(text: str, n: int) -> str:
    return "".join(" " * n + line if line.strip() else line for line in text.splitlines(keepends=True))


def wrap(kind: str) -> str:
    pod = indent(POD, 0)
    head = {"Deployment": ("apiVersion: apps/v1", "spec:\n  template:\n    spec:\n", 6),
            "RayCluster": ("apiVersion: ray.io/v1", ("spec:\n  headGroupSpec:\n    rayStartParams: {}\n"
                           "    template:\n      spec:\n"), 8),
            "InferenceService": ("apiVersion: serving.kserve.io/v1beta1", "spec:\n  predictor:\n", 4),
            "Notebook": ("apiVersion: kubeflow.org/v1", "spec:\n  template:\n    spec:\n", 6),
            "PyTorchJob": ("apiVersion: kubeflow.org/v1", ("spec:\n  pytorchReplicaSpecs:\n    Master:\n"
                           "      template:\n        spec:\n"), 10),
            "ServingRuntime": ("apiVersion: serving.kserve.io/v1alpha1", "spec:\n", 2),
            "SeldonDeployment": ("apiVersion: machinelearning.seldon.io/v1", ("spec:\n  predictors:\n  - name: p\n"
                                 "    componentSpecs:\n    - spec:\n"), 8),
            "Workflow": ("apiVersion: argoproj.io/v1alpha1", ("spec:\n  templates:\n  - name: t\n    podSpecPatch: x\n"
                         "    inline:\n"), 6)}[kind]
    api, prefix, n = head
    return f"{api}\nkind: {kind}\nmetadata:\n  name: x\n  namespace: ml\n{prefix}{indent(pod, n)}"


def container_rules(path: Path) -> set[tuple[str, Severity]]:
    return {(i.rule, i.severity) for i in scan_infra([path])
            if i.rule.startswith(("infra.container.", "infra.secrets.")) and i.rule != "infra.container.probes"}


KINDS = ["RayCluster", "InferenceService", "Notebook", "PyTorchJob", "ServingRuntime", "SeldonDeployment", "Workflow"]


@pytest.mark.parametrize("kind", KINDS)
def test_custom_resource_flagged_like_a_deployment(kind: str, tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(wrap("Deployment"))
    (tmp_path / "cr.yaml").write_text(wrap(kind))
    expected = container_rules(tmp_path / "deploy.yaml")
    assert {("infra.container.privileged", Severity.HIGH), ("infra.container.root", Severity.HIGH),
            ("infra.container.host_path", Severity.CRITICAL), ("infra.container.capabilities", Severity.HIGH),
            ("infra.container.privilege_escalation", Severity.HIGH), ("infra.secrets.env", Severity.HIGH)} <= expected
    assert container_rules(tmp_path / "cr.yaml") == expected


@pytest.mark.parametrize("kind", KINDS)
def test_lines_point_into_the_custom_resource(kind: str, tmp_path: Path) -> None:
    (tmp_path / "cr.yaml").write_text(wrap(kind))
    lines = (tmp_path / "cr.yaml").read_text().splitlines()
    for i in scan_infra([tmp_path / "cr.yaml"]):
        if i.rule == "infra.container.privileged":
            assert "privileged: true" in lines[i.line - 1]
        if i.rule == "infra.container.host_path":
            assert "- name: host" in lines[i.line - 1]


def test_kserve_framework_container_is_checked(tmp_path: Path) -> None:
    (tmp_path / "isvc.yaml").write_text(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: s\n"
        "spec:\n  predictor:\n    sklearn:\n      storageUri: gs://b/m\n      securityContext:\n"
        "        privileged: true\n")
    assert ("infra.container.privileged", 10) in {(i.rule, i.line) for i in scan_infra([tmp_path / "isvc.yaml"])}


def test_trainjob_trainer_is_checked(tmp_path: Path) -> None:
    (tmp_path / "tj.yaml").write_text(
        "apiVersion: trainer.kubeflow.org/v1alpha1\nkind: TrainJob\nmetadata:\n  name: t\nspec:\n  trainer:\n"
        "    image: pytorch/pytorch:latest\n    env:\n    - name: WANDB_API_KEY\n      value: 0123456789abcdef0123\n")
    got = {(i.rule, i.line) for i in scan_infra([tmp_path / "tj.yaml"])}
    assert ("infra.container.image_unpinned", 7) in got and ("infra.secrets.env", 9) in got
