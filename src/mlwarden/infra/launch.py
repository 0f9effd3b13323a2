"""What starts a process, whatever file describes it: image, argv, env, and where each sits.

A Dockerfile's ENTRYPOINT/CMD, a compose service and a Kubernetes container (built-in
workload or custom resource alike) all become one :class:`Launch`, so every ML-platform
rule (``mlwarden.infra.platform_rules``) and every secret rule is written once. Each argv
token and env entry keeps its own line for SARIF regions.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "ip6-localhost"})


@dataclass(frozen=True, kw_only=True)
class Arg:
    text: str
    line: int


@dataclass(frozen=True, kw_only=True)
class EnvVar:
    name: str
    value: str | None
    """The literal value; None when it comes from a reference (secretKeyRef, configMapKeyRef, fieldRef)."""
    line: int


@dataclass(frozen=True, kw_only=True)
class Launch:
    """One process start: a container, a compose service, a Dockerfile's final stage."""

    path: str
    line: int
    context: str
    """Human words for where it is: ``Deployment ml/triton container server``."""
    image: str | None = None
    image_line: int = 0
    argv: tuple[Arg, ...] = ()
    env: tuple[EnvVar, ...] = ()
    published: bool | None = None
    """True: ports published beyond loopback; False: known not published; None: unknown (reachable on its network)."""
    published_line: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Facts only the enclosing resource knows (e.g. ``ray_auth`` from a RayCluster's authOptions)."""

    def env_value(self, name: str) -> EnvVar | None:
        found = [e for e in self.env if e.name == name]
        return found[-1] if found else None

    @property
    def words(self) -> list[str]:
        return [a.text for a in self.argv]


def split_argv(items: Iterable[tuple[str, int]]) -> tuple[Arg, ...]:
    """Tokens of argv items, shell strings (``sh -c "mlflow server …"``) split into words on the same line."""
    out: list[Arg] = []
    for text, line in items:
        text = str(text)
        if any(c.isspace() for c in text.strip()):
            try:
                words = shlex.split(text, comments=False, posix=True)
            except ValueError:  # unbalanced quotes: fall back to whitespace
                words = text.split()
            out.extend(Arg(text=w, line=line) for w in words)
        elif text:
            out.append(Arg(text=text, line=line))
    return tuple(out)


def flag(launch: Launch, *names: str) -> tuple[str | None, int] | None:
    """The value of the last ``--name=value`` / ``--name value`` (``None`` value for a bare flag) and its line."""
    words = launch.argv
    hit: tuple[str | None, int] | None = None
    for i, a in enumerate(words):
        for n in names:
            if a.text == n:
                nxt = words[i + 1].text if i + 1 < len(words) else None
                hit = (nxt if nxt is not None and not nxt.startswith("-") else None, a.line)
            elif a.text.startswith(n + "="):
                hit = (a.text[len(n) + 1:], a.line)
    return hit


def has_word(launch: Launch, *names: str) -> Arg | None:
    for a in launch.argv:
        base = a.text.rsplit("/", 1)[-1]
        if a.text in names or base in names:
            return a
    return None


def iter_flags(launch: Launch, name: str) -> Iterator[tuple[str | None, int]]:
    """Every value of a repeatable flag (``--http-restricted-api`` may appear several times)."""
    words = launch.argv
    for i, a in enumerate(words):
        if a.text == name:
            yield (words[i + 1].text if i + 1 < len(words) else None, a.line)
        elif a.text.startswith(name + "="):
            yield (a.text[len(name) + 1:], a.line)


def host_of(address: str | None) -> str | None:
    """Host part of ``0.0.0.0``, ``http://0.0.0.0:8080``, ``[::]:7070``, ``:8080`` ('' means all interfaces)."""
    if address is None:
        return None
    a = address.strip().strip("'\"")
    a = re.sub(r"^[a-z]+://", "", a)
    if a.startswith("["):
        return a[: a.find("]") + 1] if "]" in a else a
    if a.count(":") > 1:  # bare IPv6
        return a
    return a.split(":", 1)[0].split("/", 1)[0]


def is_open_host(host: str | None) -> bool:
    """True for a bind to every interface or to a non-loopback address."""
    if host is None:
        return False
    h = host.lower()
    return h not in LOOPBACK and not h.startswith("127.")
