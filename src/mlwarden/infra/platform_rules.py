"""ML-platform rules over a :class:`~mlwarden.infra.launch.Launch` (argv, env, image).

Exposure rule, the same for every product (``infra.exposure.<product>``):

* the server binds a non-loopback address (explicitly, or by its default: Triton, vLLM,
  BentoML and the official Ollama/Jupyter images bind every interface) **and** the launch
  is not known to be unpublished (compose without public ports is the only "known not")
  → it is *exposed*;
* exposed and no authentication → **critical** (ShadowRay, ShellTorch and the Jupyter,
  MLflow, Ollama, Triton model-control takeovers all start this way);
* authentication missing but bound to loopback / unpublished, or exposed with
  authentication on → **low** (nothing to fix today; keep it that way).

Product-specific hardening (restricted APIs, security middleware, remote code, pickle
transports) is ``infra.platform.<product>.<what>``. Rules read only what the launch says;
defaults are those each product documents.
"""

from __future__ import annotations

from collections.abc import Callable

from ..findings import Severity
from .base import InfraIssue
from .imageref import parse_image
from .launch import Launch, flag, has_word, host_of, is_open_host, iter_flags


def _image_repo(launch: Launch) -> str:
    ref = parse_image(launch.image or "")
    return ref.name if ref else ""


def _image_is(launch: Launch, *repos: str) -> bool:
    name = _image_repo(launch)
    return any(name == r or name.endswith("/" + r) or name.startswith(r + "-") for r in repos)


def issue(launch: Launch, rule: str, severity: Severity, message: str, line: int, fix: str,
          **evidence: object) -> InfraIssue:
    return InfraIssue(rule=rule, severity=severity, path=launch.path, line=line or launch.line,
                      message=f"{message} ({launch.context})", remediation=fix,
                      evidence={"context": launch.context, **evidence})


def exposure(launch: Launch, product: str, *, open_: bool, bind_line: int, auth: bool, what: str,
             fix: str, **evidence: object) -> list[InfraIssue]:
    exposed = open_ and launch.published is not False
    ev = {"bound_open": open_, "published": launch.published, "auth": auth, **evidence}
    rule = f"infra.exposure.{product}"
    if exposed and not auth:
        return [issue(launch, rule, Severity.CRITICAL, f"{what} listens beyond loopback without authentication",
                      bind_line, fix, **ev)]
    if not auth:
        return [issue(launch, rule, Severity.LOW, f"{what} has no authentication (loopback or unpublished today)",
                      bind_line, fix, **ev)]
    if exposed:
        return [issue(launch, rule, Severity.LOW, f"{what} listens beyond loopback (authentication is on)",
                      bind_line, "Keep authentication on and put TLS in front.", **ev)]
    return []


def _open(value: tuple[str | None, int] | None, default_open: bool, launch: Launch) -> tuple[bool, int]:
    if value is None:
        return default_open, launch.line
    return is_open_host(host_of(value[0]) if value[0] is not None else None), value[1]


def ray(launch: Launch) -> list[InfraIssue]:
    if not (has_word(launch, "ray") and has_word(launch, "start") and has_word(launch, "--head")) \
            and not launch.extra.get("ray_head"):
        return []
    host = flag(launch, "--dashboard-host")
    injected = launch.extra.get("ray_dashboard_host")  # KubeRay injects 0.0.0.0 when unset
    if host is None and injected is not None:
        host = injected
    if (flag(launch, "--include-dashboard") or ("", 0))[0] in ("false", "False"):
        return []
    open_, line = _open(host, False, launch)
    mode = launch.env_value("RAY_AUTH_MODE")
    auth = bool(launch.extra.get("ray_auth")) or (mode is not None and (mode.value or "").lower() == "token")
    return exposure(launch, "ray", open_=open_, bind_line=line, auth=auth,
                    what="Ray dashboard and Jobs API (CVE-2023-48022, ShadowRay: submit a job = run code)",
                    fix="Set authOptions.mode: token (KubeRay) or RAY_AUTH_MODE=token, and bind the dashboard to "
                        "127.0.0.1 unless a NetworkPolicy limits who reaches port 8265.")


def mlflow(launch: Launch) -> list[InfraIssue]:
    if not (has_word(launch, "mlflow") and (has_word(launch, "server") or has_word(launch, "ui"))):
        return []
    out: list[InfraIssue] = []
    open_, line = _open(flag(launch, "--host", "-h"), False, launch)
    app = flag(launch, "--app-name")
    auth = app is not None and app[0] == "basic-auth"
    out += exposure(launch, "mlflow", open_=open_, bind_line=line, auth=auth,
                    what="MLflow tracking server (read/write every experiment and artifact)",
                    fix="Add `--app-name basic-auth` (and TLS in front), or bind --host 127.0.0.1.")
    hosts = flag(launch, "--allowed-hosts")
    if hosts is not None and (hosts[0] or "").strip("'\"") in ("*", ""):
        out.append(issue(launch, "infra.platform.mlflow.allowed_hosts", Severity.MEDIUM,
                         "MLflow --allowed-hosts '*' turns off Host-header (DNS-rebinding) protection", hosts[1],
                         "List the host names the server is reached by."))
    off = flag(launch, "--disable-security-middleware")
    if off is not None:
        out.append(issue(launch, "infra.platform.mlflow.security_middleware", Severity.HIGH,
                         "MLflow security middleware disabled (CORS, Host and CSRF checks)", off[1],
                         "Remove --disable-security-middleware."))
    return out


def _restricted(launch: Launch, flag_name: str) -> set[str]:
    groups: set[str] = set()
    for value, _ in iter_flags(launch, flag_name):
        groups.update(g.strip() for g in (value or "").partition(":")[0].split(","))
    return groups


def triton(launch: Launch) -> list[InfraIssue]:
    if not (has_word(launch, "tritonserver") or (_image_is(launch, "nvcr.io/nvidia/tritonserver") and launch.argv)):
        return []
    out: list[InfraIssue] = []
    off = ("false", "False", "0")
    http_on = (flag(launch, "--allow-http") or ("true", 0))[0] not in off
    grpc_on = (flag(launch, "--allow-grpc") or ("true", 0))[0] not in off
    http_open, hl = _open(flag(launch, "--http-address"), True, launch)
    grpc_open, gl = _open(flag(launch, "--grpc-address"), True, launch)
    http_r, grpc_r = _restricted(launch, "--http-restricted-api"), _restricted(launch, "--grpc-restricted-protocol")
    endpoints = [(http_on, http_open, hl, http_r, "--http-restricted-api"),
                 (grpc_on, grpc_open, gl, grpc_r, "--grpc-restricted-protocol")]
    mode = flag(launch, "--model-control-mode")
    if mode is not None and (mode[0] or "").lower() == "explicit":
        for on, open_, line, groups, name in endpoints:
            if on:
                out += exposure(launch, "triton", open_=open_, bind_line=mode[1], auth="model-repository" in groups,
                                what=f"Triton model repository API (explicit model control: load = run Python backend "
                                     f"code), endpoint {name.split('-')[2]}",
                                fix=f"Add {name}=model-repository:<header>=<key from a secret>, or use "
                                    "--model-control-mode=none.", flag=name)
    for on, open_, line, groups, name in endpoints:
        missing = sorted({"logging", "trace"} - groups)
        if on and open_ and launch.published is not False and missing:
            out.append(issue(launch, "infra.platform.triton.restricted_api", Severity.HIGH,
                             f"Triton {', '.join(missing)} API open to any client on {name.split('-')[2]} "
                             "(CVE-2024-0087: the logging API writes files where the caller says)", line,
                             f"Add {name}=logging,trace:<header>=<key> (with model-repository when explicit).",
                             missing=missing))
    return out


def vllm(launch: Launch) -> list[InfraIssue]:
    served = (has_word(launch, "vllm") and has_word(launch, "serve")) or \
        any("vllm.entrypoints" in w for w in launch.words) or _image_is(launch, "vllm/vllm-openai")
    if not served:
        return []
    out: list[InfraIssue] = []
    open_, line = _open(flag(launch, "--host"), True, launch)
    auth = flag(launch, "--api-key") is not None or launch.env_value("VLLM_API_KEY") is not None
    out += exposure(launch, "vllm", open_=open_, bind_line=line, auth=auth,
                    what="vLLM OpenAI-compatible server", fix="Pass --api-key (from a secret via VLLM_API_KEY) "
                    "and bind --host 127.0.0.1 behind a gateway.")
    kv = flag(launch, "--kv-transfer-config")
    if kv is not None and any(c in (kv[0] or "") for c in ("PyNccl", "Mooncake", "LMCache")):
        out.append(issue(launch, "infra.platform.vllm.pickle_transport", Severity.HIGH,
                         "vLLM KV-cache connector that unpickles what peers send (CVE-2025-47277 family)",
                         kv[1], "Keep KV-transfer ports on an isolated network and vLLM >= 0.8.5."))
    return out


def ollama(launch: Launch) -> list[InfraIssue]:
    if not (_image_is(launch, "ollama/ollama") or (has_word(launch, "ollama") and has_word(launch, "serve"))):
        return []
    env = launch.env_value("OLLAMA_HOST")
    # the official image sets OLLAMA_HOST 0.0.0.0; the binary alone defaults to 127.0.0.1
    default_open = _image_is(launch, "ollama/ollama")
    open_ = is_open_host(host_of(env.value)) if env is not None and env.value else default_open
    return exposure(launch, "ollama", open_=open_, bind_line=env.line if env else launch.image_line, auth=False,
                    what="Ollama API (pull, create and delete models; no authentication exists)",
                    fix="Set OLLAMA_HOST=127.0.0.1 and put an authenticating proxy in front.")


def jupyter(launch: Launch) -> list[InfraIssue]:
    words = launch.words
    started = (has_word(launch, "jupyter") and any(w in words for w in ("lab", "notebook", "server"))) or \
        has_word(launch, "start-notebook.sh", "start-notebook.py", "jupyter-lab", "jupyter-notebook")
    if not started and not (_image_is(launch, "jupyter", "quay.io/jupyter") or "jupyter/" in _image_repo(launch)):
        return []
    out: list[InfraIssue] = []
    image_default_open = "jupyter" in _image_repo(launch)  # docker-stacks images listen on 0.0.0.0
    open_, line = _open(flag(launch, "--ip", "--ServerApp.ip", "--NotebookApp.ip"), image_default_open, launch)
    token = flag(launch, "--ServerApp.token", "--NotebookApp.token", "--IdentityProvider.token")
    env_tok = launch.env_value("JUPYTER_TOKEN")
    no_token = (token is not None and (token[0] or "").strip("'\"") == "") or \
        (env_tok is not None and env_tok.value is not None and env_tok.value.strip("'\"") == "")
    pw = flag(launch, "--ServerApp.password", "--NotebookApp.password")
    auth = not no_token or (pw is not None and bool((pw[0] or "").strip("'\"")))
    out += exposure(launch, "jupyter", open_=open_, bind_line=token[1] if token and not auth else line, auth=auth,
                    what="Jupyter server (a terminal and a kernel: code execution by design)",
                    fix="Keep the token (remove --ServerApp.token='') and bind --ip=127.0.0.1 or put it behind "
                        "an authenticating proxy.")
    root = flag(launch, "--allow-root")
    if root is not None:
        out.append(issue(launch, "infra.platform.jupyter.allow_root", Severity.MEDIUM,
                         "Jupyter runs as root (--allow-root)", root[1], "Run as an unprivileged user."))
    return out


def bentoml(launch: Launch) -> list[InfraIssue]:
    if not ((has_word(launch, "bentoml") and has_word(launch, "serve")) or _image_is(launch, "bentoml/bento-server")):
        return []
    open_, line = _open(flag(launch, "--host"), True, launch)
    return exposure(launch, "bentoml", open_=open_, bind_line=line, auth=False,
                    what="BentoML API server (no built-in authentication)",
                    fix="Bind --host 127.0.0.1 behind an authenticating gateway.")


def torchserve(launch: Launch) -> list[InfraIssue]:
    if not (has_word(launch, "torchserve") or _image_is(launch, "pytorch/torchserve")):
        return []
    out: list[InfraIssue] = []
    for name, env in (("--disable-token-auth", "TS_DISABLE_TOKEN_AUTHORIZATION"),
                      ("--enable-model-api", "TS_ENABLE_MODEL_API")):
        f, e = flag(launch, name), launch.env_value(env)
        if f is not None or (e is not None and (e.value or "").lower() == "true"):
            out.append(issue(launch, f"infra.platform.torchserve.{name[2:].replace('-', '_')}", Severity.MEDIUM,
                             f"TorchServe started with {name if f else env}", f[1] if f else e.line,  # type: ignore[union-attr]
                             "Keep token authorization on and the model-registration API off (0.11+ defaults)."))
    return out


def remote_code(launch: Launch) -> list[InfraIssue]:
    for a in launch.argv:
        if a.text in ("--trust-remote-code", "--trust_remote_code") or "trust_remote_code=True" in a.text:
            return [issue(launch, "infra.platform.remote_code", Severity.HIGH,
                          "serving with --trust-remote-code runs Python shipped with the model repository", a.line,
                          "Drop --trust-remote-code, or pin the model to a reviewed commit and vendor its code.")]
    return []


RULES: tuple[Callable[[Launch], list[InfraIssue]], ...] = (
    ray, mlflow, triton, vllm, ollama, jupyter, bentoml, torchserve, remote_code)


def check_launch(launch: Launch) -> list[InfraIssue]:
    out: list[InfraIssue] = []
    for rule in RULES:
        out += rule(launch)
    return out


SERVER_WORDS = frozenset({"tritonserver", "torchserve", "vllm", "ollama", "bentoml", "mlflow", "jupyter", "ray",
                          "start-notebook.sh", "start-notebook.py", "mlserver", "seldon-core-microservice"})
SERVER_IMAGES = ("tritonserver", "torchserve", "vllm-openai", "ollama", "bento", "mlflow", "rayproject/ray",
                 "jupyter", "kserve", "seldonio", "mlserver", "text-generation-inference", "tensorflow/serving")


def is_model_server(launch: Launch) -> bool:
    """True when the launch starts an ML platform server (used by the NetworkPolicy rule)."""
    if launch.extra.get("model_server"):
        return True
    if any(w.rsplit("/", 1)[-1] in SERVER_WORDS for w in launch.words[:4]):
        return True
    name = _image_repo(launch)
    return any(s in name for s in SERVER_IMAGES)
