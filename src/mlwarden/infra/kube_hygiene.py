"""Container hygiene for one pod spec, wherever it sits (Deployment, RayCluster, InferenceService…).

Rules (``infra.container.*``), each on the line of the field that decides it:

* ``privileged`` true → high; ``host_namespace`` (hostNetwork/hostPID/hostIPC) → high;
* ``host_path`` volume → high, critical for the runtime socket or ``/``, ``/etc``, ``/proc``, ``/root``;
* ``root``: runAsUser 0 → high; neither runAsNonRoot: true nor a non-zero runAsUser → medium;
* ``privilege_escalation``: allowPrivilegeEscalation true → high, unset → low;
* ``capabilities`` added: SYS_ADMIN, ALL, SYS_PTRACE, SYS_MODULE, DAC_READ_SEARCH, BPF → high; others → medium;
* ``writable_root`` (readOnlyRootFilesystem not true), ``resources`` (no cpu/memory limits),
  ``probes`` (no liveness/readiness on long-running servers) → low;
* ``image_unpinned``: no ``@sha256`` digest → low, ``latest``/no tag → medium; ``versions`` from the tag;
* ``secret`` literal credentials in env, argv, labels and annotations → high;
* ``ld_preload``: LD_PRELOAD in the environment → high on GPU workloads (CVE-2025-23266), else medium.

Pod-level securityContext is inherited by containers unless they override it, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..findings import Severity
from .base import InfraIssue
from .imageref import parse_image
from .launch import EnvVar, Launch, split_argv
from .secrets import mask, secret_by_name, secret_in_arg, token_in
from .versions import advisories_for_image
from .yamldoc import as_list, as_map, line_of

DANGEROUS_CAPS = frozenset({"SYS_ADMIN", "ALL", "SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH", "BPF"})
CRITICAL_HOST_PATHS = ("/", "/etc", "/proc", "/root", "/var/run/docker.sock", "/run/containerd/containerd.sock",
                       "/var/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/var/lib/kubelet")


@dataclass(frozen=True, kw_only=True)
class PodSite:
    """Where a pod spec sits: the file, the resource and the role inside it (``head``, ``predictor``…)."""

    path: str
    context: str
    probes_expected: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


def _issue(site: PodSite, rule: str, sev: Severity, msg: str, line: int, fix: str, **ev: Any) -> InfraIssue:
    return InfraIssue(rule=f"infra.container.{rule}", severity=sev, path=site.path, line=line,
                      message=f"{msg} ({site.context})", remediation=fix, evidence={"context": site.context, **ev})


def image_issues(path: str, context: str, image: str | None, line: int) -> list[InfraIssue]:
    """Pinning and known-vulnerable versions of one image reference."""
    ref = parse_image(image or "")
    if ref is None:
        return []
    out: list[InfraIssue] = []
    ev = {"context": context, "image": ref.text}
    if ref.latest:
        out.append(InfraIssue(rule="infra.container.image_unpinned", severity=Severity.MEDIUM, path=path, line=line,
                              message=f"image {ref.text} floats on latest ({context})", evidence=ev,
                              remediation="Pin a version tag and its @sha256 digest."))
    elif ref.digest is None:
        out.append(InfraIssue(rule="infra.container.image_unpinned", severity=Severity.LOW, path=path, line=line,
                              message=f"image {ref.text} has no @sha256 digest ({context})", evidence=ev,
                              remediation="Pin the image by digest so a re-pushed tag cannot swap it."))
    for a in advisories_for_image(ref.name, ref.tag):
        out.append(InfraIssue(rule="infra.versions.image", severity=a.severity, path=path, line=line,
                              message=f"{a.product} {ref.tag} is affected by {a.cve}: {a.summary} ({context})",
                              remediation=f"Upgrade to {'.'.join(map(str, a.fixed))} or later.",
                              evidence={**ev, "cve": a.cve, "fixed": ".".join(map(str, a.fixed)),
                                        "source": a.source, "checked": a.checked}))
    return out


def env_vars(container: Mapping[str, Any]) -> tuple[EnvVar, ...]:
    env = container.get("env")
    out = []
    for i, e in enumerate(as_list(env)):
        e = as_map(e)
        if "name" in e:
            value = e.get("value")
            out.append(EnvVar(name=str(e["name"]), value=None if value is None else str(value),
                              line=line_of(env, i)))
    return tuple(out)


def container_launch(site: PodSite, c: Mapping[str, Any], name: str, published: bool | None) -> Launch:
    items: list[tuple[str, int]] = []
    for key in ("command", "args"):
        seq = c.get(key)
        if isinstance(seq, str):
            items.append((seq, line_of(c, key)))
        for i, v in enumerate(as_list(seq)):
            items.append((str(v), line_of(seq, i, line_of(c, key))))
    return Launch(path=site.path, line=line_of(c), context=f"{site.context} container {name}",
                  image=str(c.get("image") or "") or None, image_line=line_of(c, "image", line_of(c)),
                  argv=split_argv(items), env=env_vars(c), published=published, extra=site.extra)


def secret_issues(launch: Launch) -> list[InfraIssue]:
    out = []
    for e in launch.env:
        token = token_in(e.value)
        if secret_by_name(e.name, e.value) or token:
            out.append(InfraIssue(rule="infra.secrets.env", severity=Severity.HIGH, path=launch.path, line=e.line,
                                  message=f"literal credential in environment variable {e.name} ({launch.context})",
                                  remediation="Read it from a Secret (valueFrom.secretKeyRef) or a mounted file.",
                                  evidence={"name": e.name, "preview": mask(e.value or "")}))
    words = launch.argv
    for i, a in enumerate(words):
        why = secret_in_arg(a.text, words[i + 1].text if i + 1 < len(words) else None)
        if why:
            out.append(InfraIssue(rule="infra.secrets.argv", severity=Severity.HIGH, path=launch.path, line=a.line,
                                  message=f"literal credential in the command line: {why} ({launch.context})",
                                  remediation="Pass it through an environment variable from a Secret ($(VAR) in args).",
                                  evidence={"preview": mask(a.text)}))
    return out


def metadata_secrets(path: str, context: str, meta: Mapping[str, Any]) -> list[InfraIssue]:
    out = []
    for key in ("labels", "annotations"):
        m = meta.get(key)
        for k, v in as_map(m).items():
            if secret_by_name(str(k).rsplit("/", 1)[-1], str(v)) or token_in(str(v)):
                out.append(InfraIssue(rule="infra.secrets.metadata", severity=Severity.HIGH, path=path,
                                      line=line_of(m, k), message=f"credential in {key[:-1]} {k} ({context})",
                                      remediation="Metadata is readable by anyone who can list the resource; "
                                                  "move it to a Secret.", evidence={"key": str(k)}))
    return out


def _sc(c: Mapping[str, Any], pod_sc: Mapping[str, Any], key: str) -> tuple[Any, Any, Any]:
    """Effective securityContext value, the node holding it and that node's key (for the line)."""
    sc = as_map(c.get("securityContext"))
    if key in sc:
        return sc[key], sc, key
    if key in pod_sc:
        return pod_sc[key], pod_sc, key
    return None, c, None


def check_container(site: PodSite, pod: Mapping[str, Any], c: Mapping[str, Any], name: str) -> list[InfraIssue]:
    out: list[InfraIssue] = []
    pod_sc = as_map(pod.get("securityContext"))
    sc = as_map(c.get("securityContext"))
    cl = line_of(c)
    if sc.get("privileged") is True:
        out.append(_issue(site, "privileged", Severity.HIGH, f"container {name} is privileged",
                          line_of(sc, "privileged", cl), "Remove privileged: true; grant only the device or "
                          "capability needed."))
    ape = sc.get("allowPrivilegeEscalation")
    if ape is True:
        out.append(_issue(site, "privilege_escalation", Severity.HIGH, f"container {name} allows privilege escalation",
                          line_of(sc, "allowPrivilegeEscalation", cl), "Set allowPrivilegeEscalation: false."))
    elif ape is None:
        out.append(_issue(site, "privilege_escalation", Severity.LOW,
                          f"container {name} does not set allowPrivilegeEscalation: false", cl,
                          "Set allowPrivilegeEscalation: false."))
    user, node, key = _sc(c, pod_sc, "runAsUser")
    nonroot, _, _ = _sc(c, pod_sc, "runAsNonRoot")
    if user == 0 or user == "0":
        out.append(_issue(site, "root", Severity.HIGH, f"container {name} runs as root (runAsUser: 0)",
                          line_of(node, key, cl), "Run as a non-zero UID with runAsNonRoot: true."))
    elif nonroot is not True and not user:
        out.append(_issue(site, "root", Severity.MEDIUM, f"container {name} may run as root (no runAsNonRoot: true)",
                          cl, "Set runAsNonRoot: true and a non-zero runAsUser."))
    caps = as_list(as_map(sc.get("capabilities")).get("add"))
    for i, cap in enumerate(caps):
        cap_s = str(cap).upper().removeprefix("CAP_")
        out.append(_issue(site, "capabilities", Severity.HIGH if cap_s in DANGEROUS_CAPS else Severity.MEDIUM,
                          f"container {name} adds capability {cap_s}", line_of(caps, i, cl),
                          "Drop ALL capabilities and add back only what is needed.", capability=cap_s))
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(_issue(site, "writable_root", Severity.LOW, f"container {name} has a writable root filesystem",
                          line_of(sc, "readOnlyRootFilesystem", cl), "Set readOnlyRootFilesystem: true."))
    limits = as_map(as_map(c.get("resources")).get("limits"))
    if not {"cpu", "memory"} <= set(limits):
        out.append(_issue(site, "resources", Severity.LOW, f"container {name} has no CPU/memory limits",
                          line_of(c, "resources", cl), "Set resources.limits.cpu and .memory."))
    if site.probes_expected and not ("livenessProbe" in c and "readinessProbe" in c):
        out.append(_issue(site, "probes", Severity.LOW, f"container {name} lacks a liveness or readiness probe", cl,
                          "Add livenessProbe and readinessProbe."))
    out += image_issues(site.path, f"{site.context} container {name}", str(c.get("image") or ""),
                        line_of(c, "image", cl))
    gpu = any("nvidia.com/gpu" in str(k) for part in ("limits", "requests")
              for k in as_map(as_map(c.get("resources")).get(part)))
    for e in env_vars(c):
        if e.name == "LD_PRELOAD":
            out.append(_issue(site, "ld_preload", Severity.HIGH if gpu else Severity.MEDIUM,
                              f"container {name} sets LD_PRELOAD" + (" on a GPU workload (CVE-2025-23266: "
                              "NVIDIA Container Toolkit < 1.17.8 loads it on the host)" if gpu else ""), e.line,
                              "Remove LD_PRELOAD and upgrade the NVIDIA Container Toolkit to 1.17.8+."))
    return out


def check_pod(site: PodSite, pod: Mapping[str, Any]) -> list[InfraIssue]:
    """Pod-level rules (host namespaces, hostPath volumes)."""
    out: list[InfraIssue] = []
    pl = line_of(pod)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key) is True:
            out.append(_issue(site, "host_namespace", Severity.HIGH, f"pod shares the node's namespace ({key})",
                              line_of(pod, key, pl), f"Remove {key}: true."))
    vols = pod.get("volumes")
    for i, v in enumerate(as_list(vols)):
        hp = as_map(as_map(v).get("hostPath"))
        if hp:
            p = str(hp.get("path", "")).rstrip("/") or "/"
            crit = p in CRITICAL_HOST_PATHS or p.endswith(".sock")
            out.append(_issue(site, "host_path", Severity.CRITICAL if crit else Severity.HIGH,
                              f"hostPath volume {as_map(v).get('name')} mounts {p} from the node",
                              line_of(vols, i, pl), "Use a PersistentVolumeClaim, emptyDir or a CSI volume.",
                              host_path=p))
    return out
