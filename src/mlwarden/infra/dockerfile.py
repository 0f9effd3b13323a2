"""Dockerfiles, read with ``dockerfile-parse``: build hygiene and the final stage's launch.

Rules (``infra.dockerfile.*`` unless noted), each on the instruction's first line:

* ``user_root``: the final stage never sets USER, or sets root/0 last → medium;
* ``add_url``: ADD from a URL (unverified download) → medium;
* ``pipe_to_shell``: RUN curl/wget … | sh/bash/python → high;
* ``infra.secrets.build``: ENV/ARG with a literal credential → high (it stays in the image);
* ``exposed_port``: EXPOSE of a known ML control port (Ray 8265/10001, TorchServe 8081/7071,
  Jupyter 8888, MLflow 5000, Ollama 11434) → info, for the reviewer;
* FROM: image pinning and known-vulnerable versions (``infra.container.image_unpinned``,
  ``infra.versions.image``); ``pip install x==v`` pins → ``infra.versions.package``;
* ENV LD_PRELOAD → ``infra.container.ld_preload`` (medium: CVE-2025-23266 on GPU hosts).

The final stage's ENTRYPOINT + CMD and its ENV become a :class:`Launch` for the ML-platform
rules (an image says nothing about publishing, so exposure is judged on the bind alone).
"""

from __future__ import annotations

import io
import json
import re
import shlex

from ..findings import Severity
from .base import InfraIssue, parse_issue
from .kube_hygiene import image_issues, secret_issues
from .launch import Arg, EnvVar, Launch
from .versions import advisories_for_package, pins_in

ML_PORTS = {"8265": "Ray dashboard/Jobs API", "10001": "Ray client", "8081": "TorchServe management",
            "7071": "TorchServe gRPC management", "8888": "Jupyter", "5000": "MLflow", "11434": "Ollama"}
PIPE_SHELL = re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da)?sh\b|\b(curl|wget)\b[^|;&]*\|\s*python")


def _argv(value: str, line: int) -> list[Arg]:
    v = value.strip()
    if v.startswith("["):
        try:
            return [Arg(text=str(w), line=line) for w in json.loads(v)]
        except ValueError:
            pass
    try:
        words = shlex.split(v)
    except ValueError:
        words = v.split()
    return [Arg(text=w, line=line) for w in words]


def _env_pairs(value: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
        return [(words[0], " ".join(words[1:]))]
    return [tuple(w.split("=", 1)) for w in words if "=" in w]  # type: ignore[misc]


def check_dockerfile(data: bytes, path: str) -> list[InfraIssue]:
    from dockerfile_parse import DockerfileParser

    try:
        parser = DockerfileParser(fileobj=io.BytesIO(data), env_replace=False)
        structure = parser.structure
    except Exception as e:  # noqa: BLE001 - the parser raises several exception types on garbage
        return [parse_issue(path, f"Dockerfile: {e}")]
    out: list[InfraIssue] = []

    def issue(rule: str, sev: Severity, msg: str, line: int, fix: str, **ev: object) -> InfraIssue:
        return InfraIssue(rule=rule, severity=sev, path=path, line=line, message=msg, remediation=fix, evidence=ev)

    stages: list[dict] = []
    for ins in structure:
        kw, value, line = ins["instruction"].upper(), ins["value"], ins["startline"] + 1
        if kw == "FROM":
            words = value.split()
            base = next((w for w in words if not w.startswith("--")), "")
            parent = next((s for s in stages if s.get("alias") == base.lower()), None)
            alias = words[words.index("AS") + 1].lower() if "AS" in [w.upper() for w in words] and \
                [w.upper() for w in words].index("AS") + 1 < len(words) else None
            stages.append({"alias": alias, "image": parent["image"] if parent else base, "image_line": line,
                           "env": list(parent["env"]) if parent else [], "user": parent["user"] if parent else None,
                           "entrypoint": [], "cmd": [], "line": line})
            if parent is None and base.lower() != "scratch":
                out += image_issues(path, f"FROM {base}", base, line)
            continue
        if not stages:
            continue
        st = stages[-1]
        if kw == "USER":
            st["user"] = (value.strip(), line)
        elif kw in ("ENV", "ARG"):
            for name, val in _env_pairs(value):
                if kw == "ENV":
                    st["env"].append(EnvVar(name=name, value=val, line=line))
                probe = Launch(path=path, line=line, context=f"{kw} {name}", env=(EnvVar(name=name, value=val,
                                                                                          line=line),))
                for s in secret_issues(probe):
                    out.append(issue("infra.secrets.build", Severity.HIGH, f"literal credential in {kw} {name}: it "
                                     "stays in the image history", line, "Use a BuildKit secret mount "
                                     "(RUN --mount=type=secret) or inject it at run time.", name=name))
                if name == "LD_PRELOAD" and kw == "ENV":
                    out.append(issue("infra.container.ld_preload", Severity.MEDIUM, "image sets LD_PRELOAD "
                                     "(CVE-2025-23266: NVIDIA Container Toolkit < 1.17.8 loads it on the host)",
                                     line, "Remove ENV LD_PRELOAD."))
        elif kw == "ADD" and re.search(r"(^|\s)https?://", value):
            out.append(issue("infra.dockerfile.add_url", Severity.MEDIUM, "ADD downloads from a URL without "
                             "verifying it", line, "Download with a pinned checksum (ADD --checksum=sha256:… "
                             "or curl + sha256sum -c).", value=value[:200]))
        elif kw == "RUN":
            if PIPE_SHELL.search(value):
                out.append(issue("infra.dockerfile.pipe_to_shell", Severity.HIGH, "RUN pipes a download into a "
                                 "shell", line, "Download, verify a checksum or signature, then run.",
                                 value=value[:200]))
            if re.search(r"\bpip3?\b.*\binstall\b|\buv\s+pip\s+install\b", value):
                for pkg, ver in pins_in(value):
                    for a in advisories_for_package(pkg, ver):
                        out.append(issue("infra.versions.package", a.severity, f"{pkg}=={ver} is affected by "
                                         f"{a.cve}: {a.summary}", line, f"Upgrade {pkg} to "
                                         f"{'.'.join(map(str, a.fixed))} or later.", cve=a.cve, source=a.source))
        elif kw == "EXPOSE":
            for port in value.split():
                p = port.split("/")[0]
                if p in ML_PORTS:
                    out.append(issue("infra.dockerfile.exposed_port", Severity.INFO, f"EXPOSE {p} "
                                     f"({ML_PORTS[p]}): publish it on loopback or behind auth", line, "Publish "
                                     "only to 127.0.0.1 or behind an authenticating proxy."))
        elif kw == "ENTRYPOINT":
            st["entrypoint"], st["cmd"] = _argv(value, line), []
        elif kw == "CMD":
            st["cmd"] = _argv(value, line)
    if not stages:
        return out + [parse_issue(path, "Dockerfile without a FROM instruction")]
    final = stages[-1]
    user = final["user"]
    if user is None or user[0].split(":")[0] in ("root", "0"):
        out.append(issue("infra.dockerfile.user_root", Severity.MEDIUM, "the image runs as root (no USER, or USER "
                         "root last)", user[1] if user else final["line"], "Add USER <non-root uid> to the final "
                         "stage."))
    launch = Launch(path=path, line=final["line"], context="Dockerfile final stage", image=final["image"],
                    image_line=final["image_line"], argv=tuple(final["entrypoint"] + final["cmd"]),
                    env=tuple(final["env"]), published=None)
    from .platform_rules import check_launch

    out += check_launch(launch)
    return out
