"""Docker Compose files: published ports, host access, secrets, and each service's launch.

Rules, on the line of the deciding key:

* ``infra.compose.published_port``: a port published on every interface (``"5000:5000"``,
  ``0.0.0.0:…``, long form without ``host_ip``) → low; it also marks the service's launch as
  published, which makes an unauthenticated ML server critical (:mod:`.platform_rules`);
* ``infra.container.privileged`` → high; ``infra.container.host_namespace`` (``network_mode:
  host``, ``pid: host``, ``ipc: host``) → high; ``infra.container.capabilities`` (``cap_add``);
* ``infra.container.host_path``: the Docker socket or ``/`` bind-mounted → critical;
* ``infra.secrets.env``: literal credentials in ``environment`` → high;
* image pinning and known-vulnerable versions as for Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..findings import Severity
from .base import InfraIssue
from .kube_hygiene import DANGEROUS_CAPS, image_issues, secret_issues
from .launch import EnvVar, Launch, is_open_host, split_argv
from .platform_rules import check_launch
from .yamldoc import as_list, as_map, line_of


def _env(svc: Mapping[str, Any]) -> tuple[EnvVar, ...]:
    env = svc.get("environment")
    out: list[EnvVar] = []
    if isinstance(env, Mapping):
        out = [EnvVar(name=str(k), value=None if v is None else str(v), line=line_of(env, k)) for k, v in env.items()]
    for i, item in enumerate(as_list(env)):
        name, sep, value = str(item).partition("=")
        out.append(EnvVar(name=name, value=value if sep else None, line=line_of(env, i)))
    return tuple(out)


def _published(svc: Mapping[str, Any]) -> tuple[bool, list[tuple[str, int]]]:
    """Whether any port is published beyond loopback, and those ports with their lines."""
    ports = svc.get("ports")
    open_ports: list[tuple[str, int]] = []
    for i, p in enumerate(as_list(ports)):
        line = line_of(ports, i)
        if isinstance(p, Mapping):
            if p.get("published") is not None and is_open_host(str(p.get("host_ip") or "0.0.0.0")):
                open_ports.append((f"{p.get('published')}:{p.get('target')}", line))
            continue
        text = str(p)
        parts = text.rsplit(":", 2) if text.count(":") >= 2 else text.split(":")
        host = parts[0] if len(parts) == 3 else "0.0.0.0"
        # "8080" alone publishes on a random host port of every interface
        if is_open_host(host.strip("[]") or "0.0.0.0"):
            open_ports.append((text, line))
    return bool(open_ports) or svc.get("network_mode") == "host", open_ports


def check_compose(doc: Mapping[str, Any], path: str) -> list[InfraIssue]:
    out: list[InfraIssue] = []
    services = as_map(doc.get("services"))
    for name, svc in services.items():
        svc = as_map(svc)
        ctx = f"compose service {name}"
        sl = line_of(services, name)

        def issue(rule: str, sev: Severity, msg: str, line: int, fix: str, *, ctx: str = ctx, sl: int = sl,
                  **ev: Any) -> InfraIssue:
            return InfraIssue(rule=rule, severity=sev, path=path, line=line or sl, message=f"{msg} ({ctx})",
                              remediation=fix, evidence={"context": ctx, **ev})

        published, open_ports = _published(svc)
        for text, line in open_ports:
            out.append(issue("infra.compose.published_port", Severity.LOW, f"port {text} published on every "
                             "interface", line, "Publish on 127.0.0.1 (\"127.0.0.1:5000:5000\") unless it must be "
                             "public.", port=text))
        if svc.get("privileged") is True:
            out.append(issue("infra.container.privileged", Severity.HIGH, "service is privileged",
                             line_of(svc, "privileged"), "Remove privileged: true."))
        for key in ("network_mode", "pid", "ipc"):
            if str(svc.get(key, "")) == "host":
                out.append(issue("infra.container.host_namespace", Severity.HIGH, f"{key}: host shares the host's "
                                 "namespace", line_of(svc, key), f"Remove {key}: host."))
        caps = svc.get("cap_add")
        for i, cap in enumerate(as_list(caps)):
            c = str(cap).upper().removeprefix("CAP_")
            out.append(issue("infra.container.capabilities", Severity.HIGH if c in DANGEROUS_CAPS else Severity.MEDIUM,
                             f"adds capability {c}", line_of(caps, i), "Drop capabilities you do not need.",
                             capability=c))
        vols = svc.get("volumes")
        for i, v in enumerate(as_list(vols)):
            src = str(as_map(v).get("source") if isinstance(v, Mapping) else str(v).split(":", 1)[0])
            if src.endswith(".sock") or src.rstrip("/") in ("", "/etc", "/proc", "/root") and src.startswith("/"):
                out.append(issue("infra.container.host_path", Severity.CRITICAL, f"bind-mounts {src or '/'} from "
                                 "the host", line_of(vols, i), "Do not mount the runtime socket or host system "
                                 "folders into a service.", host_path=src))
        out += image_issues(path, ctx, str(svc.get("image") or ""), line_of(svc, "image", sl))
        items: list[tuple[str, int]] = []
        for key in ("entrypoint", "command"):
            v = svc.get(key)
            if isinstance(v, str):
                items.append((v, line_of(svc, key)))
            for i, w in enumerate(as_list(v)):
                items.append((str(w), line_of(v, i, line_of(svc, key))))
        launch = Launch(path=path, line=sl, context=ctx, image=str(svc.get("image") or "") or None,
                        image_line=line_of(svc, "image", sl), argv=split_argv(items), env=_env(svc),
                        published=published, published_line=open_ports[0][1] if open_ports else 0)
        out += check_launch(launch) + secret_issues(launch)
    return out
