"""requirements files: pins of ML-platform packages with known critical flaws (``infra.versions.package``)."""

from __future__ import annotations

from .base import InfraIssue
from .versions import advisories_for_package, pins_in


def check_requirements(text: str, path: str) -> list[InfraIssue]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        for pkg, ver in pins_in(line.split("#", 1)[0]):
            for a in advisories_for_package(pkg, ver):
                out.append(InfraIssue(rule="infra.versions.package", severity=a.severity, path=path, line=n,
                                      message=f"{pkg}=={ver} is affected by {a.cve}: {a.summary}",
                                      remediation=f"Upgrade {pkg} to {'.'.join(map(str, a.fixed))} or later.",
                                      evidence={"cve": a.cve, "source": a.source, "checked": a.checked}))
    return out
