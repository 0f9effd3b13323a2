"""The artifact.* checks of an audit: the spec's model artifact and every file under the
code folders, scanned once per audit; each family reports its own issues."""

from __future__ import annotations

from typing import Any

from ...registry import AuditContext, Check, Outcome
from ...scan import scan_paths
from ...scan.policy import Policy
from ..common import Family, family_check
from .families import FAMILIES, group


def _scan_once(ctx: AuditContext) -> dict[str, tuple[list, dict]]:
    if "artifact.scan" not in ctx.cache:
        spec = ctx.spec
        artifact = spec.artifact()
        targets = ([artifact] if artifact else []) + [spec.resolve(p) for p in spec.code]
        if spec.infra:  # model files that serving configs point at are loaded by those servers
            from ..infra.serving import scan_once

            targets += sorted({m.local for m in scan_once(ctx).models if m.local} - set(targets))
        allow = spec.model.allow if spec.model else []
        scans = scan_paths(targets, policy=Policy(allow=allow))
        ctx.cache["artifact.scan"] = group(scans, spec.display)
    return ctx.cache["artifact.scan"]


class ArtifactCheck(Check):
    stage = "artifact"
    family: Family

    @classmethod
    def unmet(cls, spec: Any) -> str | None:
        if (spec.model and spec.model.artifact) or spec.infra:
            return None
        return "needs model.artifact (or infra: configs that name model files) in the spec"

    def run(self, ctx: AuditContext) -> Outcome:
        findings, metrics = _scan_once(ctx)[self.id]
        return Outcome(findings=list(findings), metrics=dict(metrics))


CHECKS = [family_check(ArtifactCheck, f, __name__) for f in FAMILIES]
