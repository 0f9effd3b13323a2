"""The infra scanner's shared vocabulary: one finding record and the rule ids it carries.

Every infra reader (Dockerfile, compose, Kubernetes YAML, platform configs, image tarballs)
reports :class:`InfraIssue` records. ``rule`` is a stable dotted id (``infra.exposure.ray.dashboard``,
``infra.container.privileged`` …); ``path`` and the 1-based ``line`` place the finding so a
SARIF region can point at it (``line`` is 0 only where no line exists, e.g. a whole tarball).
Readers never raise on hostile input: a file they cannot read is itself an issue
(:data:`PARSE_RULE`, medium), so an unreadable manifest never reads as clean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import MlwardenError
from ..findings import Severity

PARSE_RULE = "infra.parse"


class InfraError(MlwardenError):
    """An infra path given by the user cannot be found or read."""


@dataclass(frozen=True, kw_only=True)
class InfraIssue:
    """One thing an infra scan found, at ``path``:``line`` (1-based)."""

    rule: str
    severity: Severity
    message: str
    path: str
    line: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)
    remediation: str = ""

    def sort_key(self) -> tuple[int, str, int, str]:
        return (-self.severity.rank, self.path, self.line, self.rule)


def parse_issue(path: str, message: str, line: int = 0) -> InfraIssue:
    """The one finding for a file that could not be read as what it claims to be."""
    return InfraIssue(rule=PARSE_RULE, severity=Severity.MEDIUM, path=path, line=line,
                      message=f"could not parse: {message}",
                      remediation="Fix the file so it parses; an unreadable config is not checked.")


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """A model file or folder an infra config points a server at, for the artifact scanner.

    ``uri`` is as written (``/mnt/models/model.joblib``, ``gs://…``, ``http://…``); ``local`` is
    the resolved local path when the reference is relative to the config's folder and exists.
    """

    uri: str
    path: str
    line: int
    context: str
    local: str | None = None
