"""Every vulnerable fixture flags its planted flaws at the expected severity and line; hardened ones stay below high."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.findings import Severity
from mlwarden.infra.scan import referenced_models, scan_infra

ASSETS = Path(__file__).parents[1] / "assets" / "infra"
PRODUCTS = sorted(p.name for p in ASSETS.iterdir() if p.is_dir())

C, H, M = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM
# product → (rule, severity, file, a substring of the line the finding must point at)
EXPECTED: dict[str, list[tuple[str, Severity, str, str]]] = {
    "torchserve": [("infra.exposure.torchserve", C, "config.properties", "management_address=http://0.0.0.0"),
                   ("infra.exposure.torchserve", C, "config.properties", "inference_address=http://0.0.0.0"),
                   ("infra.exposure.torchserve", C, "config.properties", "grpc_inference_address=0.0.0.0"),
                   ("infra.platform.torchserve.allowed_urls", H, "config.properties", "enable_model_api=true"),
                   ("infra.platform.torchserve.install_py_dep_per_model", M, "config.properties", "install_py_dep")],
    "ray": [("infra.exposure.ray", C, "raycluster.yaml", "rayStartParams: {}"),
            ("infra.versions.image", C, "raycluster.yaml", "image: rayproject/ray:2.8.0"),
            ("infra.network.no_policy", M, "raycluster.yaml", "apiVersion: ray.io/v1")],
    "mlflow": [("infra.exposure.mlflow", C, "docker-compose.yml", "command: >"),
               ("infra.secrets.env", H, "docker-compose.yml", "POSTGRES_PASSWORD"),
               ("infra.versions.image", H, "docker-compose.yml", "ghcr.io/mlflow/mlflow:v2.9.0"),
               ("infra.platform.mlflow.allowed_hosts", M, "docker-compose.yml", "command: >")],
    "triton": [("infra.exposure.triton", C, "deployment.yaml", "--model-control-mode=explicit"),
               ("infra.platform.triton.restricted_api", H, "deployment.yaml", "- name: server"),
               ("infra.secrets.argv", H, "deployment.yaml", "--http-restricted-api"),
               ("infra.versions.image", C, "deployment.yaml", "tritonserver:24.01-py3"),
               ("infra.container.privileged", H, "deployment.yaml", "privileged: true"),
               ("infra.container.host_path", H, "deployment.yaml", "- name: models\n"),
               ("infra.network.no_policy", M, "deployment.yaml", "apiVersion: apps/v1")],
    "kserve": [("infra.exposure.kserve", C, "sklearn-isvc.yaml", "metadata:"),
               ("infra.storage.plain_http", H, "sklearn-isvc.yaml", "storageUri: http://"),
               ("infra.storage.pickle_runtime", M, "sklearn-isvc.yaml", "storageUri: http://")],
    "vllm": [("infra.exposure.vllm", C, "Dockerfile", "CMD ["),
             ("infra.platform.remote_code", H, "Dockerfile", "CMD ["),
             ("infra.secrets.build", H, "Dockerfile", "ENV HF_TOKEN"),
             ("infra.dockerfile.pipe_to_shell", H, "Dockerfile", "RUN curl"),
             ("infra.versions.image", C, "Dockerfile", "FROM vllm"),
             ("infra.dockerfile.user_root", M, "Dockerfile", "FROM vllm")],
    "ollama": [("infra.exposure.ollama", C, "compose.yaml", "image: ollama/ollama:latest"),
               ("infra.container.host_path", C, "compose.yaml", "docker.sock"),
               ("infra.container.image_unpinned", M, "compose.yaml", "image: ollama/ollama:latest")],
    "jupyter": [("infra.exposure.jupyter", C, "Dockerfile", "CMD ["),
                ("infra.platform.jupyter.allow_root", M, "Dockerfile", "CMD ["),
                ("infra.dockerfile.user_root", M, "Dockerfile", "USER root")],
    "bentoml": [("infra.versions.package", C, "requirements.txt", "bentoml==1.2.4"),
                ("infra.versions.package", C, "Dockerfile", "RUN pip install bentoml==1.3.5"),
                ("infra.exposure.bentoml", C, "Dockerfile", "FROM python")],
    "seldon": [("infra.storage.plain_http", H, "seldondeployment.yaml", "modelUri: http://"),
               ("infra.container.host_namespace", H, "seldondeployment.yaml", "hostNetwork: true"),
               ("infra.container.root", H, "seldondeployment.yaml", "runAsUser: 0"),
               ("infra.container.capabilities", H, "seldondeployment.yaml", "add: [SYS_ADMIN]")],
    "kubeflow": [("infra.exposure.kubeflow", C, "gateway.yaml", "type: LoadBalancer")],
}


def line_with(path: Path, marker: str) -> int:
    text = path.read_text()
    idx = text.index(marker)
    return text.count("\n", 0, idx) + 1


def test_every_product_has_both_variants_and_expectations() -> None:
    assert set(PRODUCTS) == set(EXPECTED)
    for p in PRODUCTS:
        assert any((ASSETS / p / "vulnerable").iterdir()) and any((ASSETS / p / "hardened").iterdir())


@pytest.mark.parametrize("product", PRODUCTS)
def test_vulnerable_variant_flags_planted_flaws_with_lines(product: str) -> None:
    found = {(i.rule, i.severity, Path(i.path).name, i.line) for i in scan_infra([ASSETS / product / "vulnerable"])}
    for rule, sev, fname, marker in EXPECTED[product]:
        line = line_with(ASSETS / product / "vulnerable" / fname, marker)
        assert (rule, sev, fname, line) in found, (rule, sev, fname, line, sorted(found))


@pytest.mark.parametrize("product", PRODUCTS)
def test_hardened_variant_has_nothing_high(product: str) -> None:
    issues = scan_infra([ASSETS / product / "hardened"])
    bad = [(i.rule, i.severity.value, i.line, i.message) for i in issues if i.severity.rank >= Severity.HIGH.rank]
    assert bad == []


def test_every_finding_has_a_file_and_a_line() -> None:
    issues = scan_infra([ASSETS])
    assert len(issues) > 40
    assert all(i.path and i.line >= 1 for i in issues if not i.rule.startswith("infra.image")), \
        [i for i in issues if i.line < 1]


def test_vulnerable_folders_scanned_together_equal_the_sum_of_each() -> None:
    # cross-file state (Services, NetworkPolicies) must not leak between unrelated namespaces
    folders = [ASSETS / p / "vulnerable" for p in PRODUCTS]
    together = {(i.rule, i.path, i.line, i.severity) for i in scan_infra(folders)}
    apart = {(i.rule, i.path, i.line, i.severity) for f in folders for i in scan_infra([f])}
    assert together == apart


def test_a_network_policy_in_another_file_covers_the_namespace() -> None:
    # the hardened Triton file declares a NetworkPolicy for namespace "serving": scanned with it, the
    # vulnerable Deployment's namespace is covered; scanned alone, it is not
    alone = {i.rule for i in scan_infra([ASSETS / "triton" / "vulnerable"])}
    both = {i.rule for i in scan_infra([ASSETS / "triton" / "vulnerable", ASSETS / "triton" / "hardened"])}
    assert "infra.network.no_policy" in alone and "infra.network.no_policy" not in both


def test_referenced_models_are_returned_for_the_artifact_scanner() -> None:
    refs = {(Path(r.path).name, r.uri) for r in referenced_models([ASSETS / "torchserve" / "vulnerable",
                                                                    ASSETS / "kserve" / "vulnerable",
                                                                    ASSETS / "seldon" / "hardened"])}
    assert ("config.properties", "/home/model-server/model-store") in refs
    assert ("config.properties", "resnet-18.mar") in refs
    assert ("sklearn-isvc.yaml", "http://models.example.com/sklearn/iris/model.joblib") in refs
    assert ("seldondeployment.yaml", "gs://seldon-models/v1.19.0/sklearn/iris") in refs


def test_local_model_reference_resolves_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "m.mar").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (tmp_path / "config.properties").write_text("model_store=store\nload_models=m=store/m.mar\n")
    refs = referenced_models([tmp_path])
    assert {r.local for r in refs} == {str(tmp_path / "store"), str(tmp_path / "store" / "m.mar")}
