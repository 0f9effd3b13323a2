"""The artifact.* checks of an audit: the spec's model artifact and every file under the
code folders, scanned once per audit; each family reports its own issues."""

from __future__ import annotations

from typing import Any

from ...registry import AuditContext, Check, Outcome, register
from ...scan import scan_paths
from ...scan.policy import Policy
from .families import FAMILIES, Family, group


def _scan_once(ctx: AuditContext) -> dict[str, tuple[list, dict]]:
    if "artifact.scan" not in ctx.cache:
        spec = ctx.spec
        targets = ([spec.artifact()] if spec.artifact() else []) + [spec.resolve(p) for p in spec.code]
        allow = spec.model.allow if spec.model else []
        scans = scan_paths(targets, policy=Policy(allow=allow))
        ctx.cache["artifact.scan"] = group(scans, spec.display)
    return ctx.cache["artifact.scan"]


class ArtifactCheck(Check):
    needs = ("artifact",)
    stage = "artifact"
    family: Family

    def run(self, ctx: AuditContext) -> Outcome:
        findings, metrics = _scan_once(ctx)[self.id]
        return Outcome(findings=list(findings), metrics=dict(metrics))


def _make(f: Family) -> Any:
    doc = (f"{f.title}.\n\n**What it finds.** {f.what}\n\n**Why it matters.** {f.why}\n\n"
           f"**How to fix.** {f.fix}\n")
    name = "".join(p.title() for p in f.id.split(".")[1].split("_"))
    return register(type(name, (ArtifactCheck,), {"id": f.id, "title": f.title, "references": f.references,
                                                  "family": f, "__doc__": doc, "__module__": __name__}))


CHECKS = [_make(f) for f in FAMILIES]
