"""Contract over every registered check: id, docs, references, and a test that makes it fire."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlwarden.references import REFERENCES
from mlwarden.registry import _NEEDS, STAGES, FoldCheck, all_checks

CHECKS = all_checks()
ID = re.compile(r"^(artifact|code|storage|data\.(integrity|leakage|quality|privacy|poisoning|drift)|fairness|"
                r"model\.(evasion|poisoning|privacy|extraction)|endpoint|infra)\.[a-z0-9_.]+$")
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


def _every_check_module() -> list[str]:
    import pkgutil

    import mlwarden.checks

    return sorted(m.name for m in pkgutil.walk_packages(mlwarden.checks.__path__, "mlwarden.checks."))


def test_catalog_equals_what_importing_every_family_registers() -> None:
    """The static catalog cannot drift: import every module under mlwarden.checks and compare."""
    import importlib

    from mlwarden.checks import CATALOG
    from mlwarden.registry import REGISTRY

    for name in _every_check_module():
        importlib.import_module(name)
    registered = {cid: cls.__module__ for cid, cls in REGISTRY.items() if cls.__module__.startswith("mlwarden.checks.")}
    assert {cid: f"mlwarden.checks.{m}" for cid, m in CATALOG.items()} == registered


def test_registry_splits_equal_the_specs() -> None:
    from mlwarden import registry, spec

    assert registry.SPLITS == spec.SPLITS


def _in_fresh_process(code: str) -> list[str]:
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _check_modules(modules: list[str]) -> set[str]:
    from mlwarden.checks import CATALOG

    loaded = {m.removeprefix("mlwarden.checks.") for m in modules if m.startswith("mlwarden.checks.")}
    return loaded & set(CATALOG.values())


def test_lazy_loading_imports_only_the_modules_a_glob_needs() -> None:
    from mlwarden.checks import CATALOG

    # listing ids and planning by glob see every check without importing the others
    mods = _in_fresh_process("from mlwarden.registry import check_ids\nassert len(check_ids()) == "
                             f"{len(CATALOG)}\nassert check_ids(['storage.s3.*']) == "
                             "['storage.s3.protection', 'storage.s3.public_access']")
    assert _check_modules(mods) == set()
    mods = _in_fresh_process("from mlwarden.registry import all_checks\n"
                             "assert list(all_checks(['artifact.*'])) == "
                             "['artifact.archive', 'artifact.code_execution', 'artifact.integrity']")
    assert _check_modules(mods) == {"artifact.scanning"}
    assert "pandas" not in mods and "scipy" not in mods and "pyarrow" not in mods
    mods = _in_fresh_process("from mlwarden.registry import get_check\n"
                             "assert get_check('data.leakage.exact_duplicates').id == 'data.leakage.exact_duplicates'\n"
                             "assert get_check('data.leakage.nope') is None and get_check('data.*') is None")
    assert _check_modules(mods) == {"data.leakage"}


def test_planning_every_check_imports_no_heavy_library() -> None:
    # every audit imports all applicable check modules before it folds: scipy.stats,
    # scipy.optimize and scikit-learn (0.3-1.4 s each, cold) are imported where they are used
    mods = _in_fresh_process("from mlwarden.registry import all_checks\nassert len(all_checks()) > 50")
    heavy = {"scipy.stats", "scipy.optimize", "scipy.sparse", "sklearn", "torch"}
    assert heavy.isdisjoint(mods), sorted(heavy & set(mods))


def test_manifest_imports_no_check() -> None:
    mods = _in_fresh_process("import mlwarden.manifest, mlwarden.manifest.rows, mlwarden.manifest.signing\n"
                             "from mlwarden.registry import REGISTRY\nassert not REGISTRY, REGISTRY")
    assert _check_modules(mods) == set()


def test_plan_by_only_and_skip_sees_every_matching_check(make_spec) -> None:
    from mlwarden.checks import CATALOG
    from mlwarden.registry import Sources, plan
    from mlwarden.spec import load_spec

    spec = load_spec(make_spec("name: x\ndata: {train: t.parquet}\n"))
    chosen = plan(spec, Sources(datasets={}), only=["data.leakage.*", "storage.*"], skip=["storage.s3.*"])
    seen = {c.id for c in chosen.checks} | {cls.id for cls, _ in chosen.skipped}
    assert seen == {cid for cid in CATALOG if cid.startswith(("data.leakage.", "storage."))}
    assert {cls.id for cls, why in chosen.skipped if why == "skipped by --skip"} == {
        "storage.s3.protection", "storage.s3.public_access"}
