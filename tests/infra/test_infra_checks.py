"""The infra.* check family reports the scan's issues as findings with file and line, one family each."""

from __future__ import annotations

from pathlib import Path

from mlwarden.checks.infra.serving import CHECKS, FAMILIES, family_of
from mlwarden.findings import Severity
from mlwarden.registry import AuditContext, Sources
from mlwarden.spec import Spec

ASSETS = Path(__file__).parents[1] / "assets" / "infra"


def test_every_rule_belongs_to_a_family_and_every_check_is_documented() -> None:
    assert {c.id for c in CHECKS} == {f.id for f in FAMILIES}
    assert all(c.doc() and c.references for c in CHECKS)
    assert family_of("infra.exposure.ray") == "infra.exposure"
    assert family_of("infra.container.privileged") == "infra.containers"
    assert family_of("infra.parse") == "infra.unscannable"


def test_checks_report_findings_with_locations(tmp_path: Path) -> None:
    spec = Spec(name="t", data={"train": "train.parquet"}, infra=[str(ASSETS / "triton" / "vulnerable")],
                base_dir=ASSETS)
    assert all(c.unmet(spec) is None for c in CHECKS)
    assert CHECKS[0].unmet(Spec(name="t", data={"train": "train.parquet"})) == "needs infra in the spec"
    ctx = AuditContext(spec=spec, sources=Sources(datasets={}), engine=None)  # type: ignore[arg-type]
    by_check = {c.id: c(spec, ctx.sources).run(ctx) for c in CHECKS}
    exposure = by_check["infra.exposure"].findings
    assert exposure and all(f.severity == Severity.CRITICAL for f in exposure)
    assert exposure[0].location.artifact == "triton/vulnerable/deployment.yaml" and exposure[0].location.line == 20
    assert any(f.evidence["rule"] == "infra.container.privileged" for f in by_check["infra.containers"].findings)
    assert by_check["infra.secrets"].findings and by_check["infra.versions"].findings
    assert by_check["infra.unscannable"].findings == []
    assert len({f.id for o in by_check.values() for f in o.findings}) == sum(len(o.findings) for o in by_check.values())
