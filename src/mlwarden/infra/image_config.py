"""What an image's config and file modes say before anything runs.

The config (``config.User``, ``ExposedPorts``, ``Env``, and the ``history`` of build steps)
decides who the serving process runs as and what it listens on; build arguments and
``ENV`` lines land in it verbatim, so a token passed with ``--build-arg`` ships in every
copy of the image. From the final file view: ``/etc/ld.so.preload`` (read in the second
pass), world-writable model files or folders (any process in the container can swap the
model for a malicious pickle), and setuid/setgid binaries beyond the usual few.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ..findings import Severity
from .base import InfraIssue
from .image_files import is_model
from .image_layers import FileView, layer_where
from .image_layout import ImageRef
from .image_secrets import find_secrets, redact
from .image_store import Report
from .secrets import secret_by_name

# Ports that ML model servers and their control planes listen on by default
ML_PORTS = {
    8080: "TorchServe inference / KServe", 8081: "TorchServe management", 8082: "TorchServe metrics",
    7070: "TorchServe gRPC inference", 7071: "TorchServe gRPC management",
    8265: "Ray dashboard / Jobs API", 10001: "Ray client", 6379: "Ray GCS / Redis", 5000: "MLflow",
    8000: "Triton HTTP / vLLM", 8001: "Triton gRPC", 8002: "Triton metrics", 11434: "Ollama",
    8888: "Jupyter", 3000: "BentoML",
}
# setuid/setgid programs a stock distribution ships; anything else needs a reason
USUAL_SETUID = frozenset([
    "su", "sudo", "passwd", "chsh", "chfn", "newgrp", "gpasswd", "chage", "expiry", "mount", "umount",
    "ping", "ping6", "fusermount", "fusermount3", "pkexec", "crontab", "ssh-agent", "ssh-keysign", "wall",
    "write", "unix_chkpwd", "pam_extrausers_chkpwd", "dbus-daemon-launch-helper", "bbsuid", "newuidmap",
    "newgidmap", "at", "staprun", "mount.nfs", "polkit-agent-helper-1", "utempter", "dotlockfile",
])
STICKY = 0o1000


def check_config(image: ImageRef, label: str, report: Report) -> None:
    """User, ports, environment and build history of one image config."""
    where = f"{label}!/{image.config_key}"
    cfg: dict[str, Any] = image.config["config"] if isinstance(image.config.get("config"), dict) else {}
    ports = _ports(cfg.get("ExposedPorts"))
    ml = {p: ML_PORTS[p] for p in ports if p in ML_PORTS}
    if ml:
        report(InfraIssue(rule="infra.image.ml_port", severity=Severity.LOW, path=where,
                          message="the image exposes model-server ports: "
                          + ", ".join(f"{p} ({name})" for p, name in sorted(ml.items())),
                          evidence={"ports": sorted(ml)},
                          remediation="Publish only the inference port, behind an authenticating gateway."))
    user = str(cfg.get("User") or "").strip()
    if user.split(":", 1)[0] in ("", "root", "0"):
        report(InfraIssue(rule="infra.image.root_user", severity=Severity.HIGH if ml else Severity.MEDIUM, path=where,
                          message=f"the image runs as root (User={user or 'unset'})"
                          + (" and exposes a model-server port: a server exploit owns the container" if ml else ""),
                          evidence={"user": user, "ml_ports": sorted(ml)},
                          remediation="Add a non-root user and `USER 10001` to the Dockerfile."))
    env = [e for e in cfg.get("Env") or [] if isinstance(e, str)]
    for n, item in enumerate(env):
        _check_env(item, where, f"config.Env[{n}]", report)
    for n, step in enumerate(image.config.get("history") or []):
        created = step.get("created_by") if isinstance(step, dict) else None
        if isinstance(created, str):
            for hit in find_secrets(created):
                report(_secret(where, f"history[{n}].created_by", hit.type, hit.redacted, hit.length, "a build step"))


def _ports(exposed: Any) -> set[int]:
    out = set()
    for key in exposed or {}:
        try:
            out.add(int(str(key).split("/", 1)[0]))
        except ValueError:
            continue
    return out


def _check_env(item: str, where: str, field: str, report: Report) -> None:
    name, _, value = item.partition("=")
    if name == "OLLAMA_HOST" and value.split(":", 1)[0] in ("0.0.0.0", "", "[::]", "::"):
        report(InfraIssue(rule="infra.image.ollama_host", severity=Severity.MEDIUM, path=where,
                          message=f"OLLAMA_HOST={value} makes Ollama's unauthenticated API listen on every "
                          "interface", evidence={"env": item, "field": field},
                          remediation="Bind Ollama to 127.0.0.1 and front it with an authenticating proxy."))
    if name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT") and value.strip():
        report(InfraIssue(rule="infra.image.ld_preload", severity=Severity.HIGH if name != "LD_LIBRARY_PATH"
                          else Severity.LOW, path=where, evidence={"env": item, "field": field},
                          message=f"{name}={value} in the image environment injects libraries into every process; "
                          "with the NVIDIA container toolkit it reaches the host hook (CVE-2025-23266)",
                          remediation=f"Remove {name} from the image; link the libraries the program needs."))
    hits = find_secrets(item)  # the name too: a W&B key is only recognisable next to it
    for hit in hits:
        report(_secret(where, field, hit.type, hit.redacted, hit.length, f"environment variable {name}"))
    if not hits and secret_by_name(name, value) and len(value) >= 8 and not value.startswith("/"):
        report(_secret(where, field, f"value of {name}", redact(value), len(value), f"environment variable {name}"))


def _secret(where: str, field: str, kind: str, redacted: str, length: int, what: str) -> InfraIssue:
    return InfraIssue(rule="infra.image.secret", severity=Severity.HIGH, path=where,
                      message=f"{kind} in {what} of the image config: {redacted}",
                      evidence={"type": kind, "redacted": redacted, "length": length, "field": field},
                      remediation="Revoke and rotate the credential; pass it at run time (a mounted secret), "
                      "never with ENV or --build-arg.")


def check_modes(image: ImageRef, view: FileView, label: str, report: Report) -> None:
    """World-writable model paths, unusual setuid binaries and ``/etc/ld.so.preload`` presence."""
    entries = view.entries
    flagged_dirs: set[str] = set()
    for entry in entries.values():
        where = layer_where(label, image.layers[entry.layer], entry.path)
        if entry.kind == "file" and entry.mode & 0o6000 and posixpath.basename(entry.path) not in USUAL_SETUID:
            bits = "setuid" if entry.mode & 0o4000 else "setgid"
            report(InfraIssue(rule="infra.image.setuid", severity=Severity.MEDIUM, path=where,
                              message=f"{entry.path} is {bits} (mode {entry.mode:o}) and not a standard system tool: "
                              "a way back to root for whoever gets a shell", evidence={"mode": oct(entry.mode)},
                              remediation=f"`chmod u-s,g-s /{entry.path}` in the Dockerfile, or remove it."))
        if not is_model(entry):
            continue
        if entry.mode & 0o002:
            report(_writable(where, entry.path, entry.mode, "model file"))
        parent = posixpath.dirname(entry.path)
        while parent and parent not in flagged_dirs:
            d = entries.get(parent)
            if d is not None and d.kind == "dir" and d.mode & 0o002 and not d.mode & STICKY:
                flagged_dirs.add(parent)
                report(_writable(layer_where(label, image.layers[d.layer], parent), parent, d.mode,
                                 f"folder holding the model {entry.path}"))
            parent = posixpath.dirname(parent)
    preload = entries.get("etc/ld.so.preload")
    if preload is not None and preload.size == 0:
        report(InfraIssue(rule="infra.image.ld_preload", severity=Severity.LOW,
                          path=layer_where(label, image.layers[preload.layer], preload.path),
                          message="/etc/ld.so.preload exists (empty); nothing needs it",
                          remediation="Remove /etc/ld.so.preload from the image.", evidence={}))


def _writable(where: str, path: str, mode: int, what: str) -> InfraIssue:
    return InfraIssue(rule="infra.image.world_writable_model", severity=Severity.MEDIUM, path=where,
                      message=f"the {what} /{path} is world-writable (mode {mode:o}): any process in the "
                      "container can replace the model with one that runs code when loaded",
                      evidence={"mode": oct(mode)},
                      remediation="COPY models with --chown to the serving user and `chmod -R go-w` them.")
