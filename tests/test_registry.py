"""Contract over every registered check: id, docs, references, and a test that makes it fire."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlwarden.references import REFERENCES
from mlwarden.registry import _NEEDS, STAGES, FoldCheck, all_checks

CHECKS = all_checks()
ID = re.compile(r"^(artifact|code|storage|data\.(integrity|leakage|quality|privacy|poisoning|drift)|fairness|"
                r"model\.(evasion|poisoning|privacy|extraction)|endpoint)\.[a-z0-9_.]+$")
TESTS = Path(__file__).parent


@pytest.mark.parametrize("cid", sorted(CHECKS))
def test_check_contract(cid: str) -> None:
    cls = CHECKS[cid]
    assert ID.match(cid), f"{cid} is outside the namespaces of DESIGN.md"
    assert cls.title and cls.stage in STAGES
    doc = cls.doc()
    assert len(doc) > 200 and "**How to fix.**" in doc, "the docstring is the user documentation"
    assert cls.references and all(r in REFERENCES for r in cls.references), "cite known references"
    assert all(n in _NEEDS for n in cls.needs)
    if issubclass(cls, FoldCheck):
        for method in ("init", "update", "merge", "finalize"):
            assert getattr(cls, method) is not getattr(FoldCheck, method), f"{cid} must implement {method}"
    # a test somewhere (besides this one) names the check and so exercises it
    mentions = [p for p in TESTS.rglob("test_*.py") if p.name != "test_registry.py" and cid in p.read_text()]
    assert mentions, f"no test names {cid}"
