"""The Check protocol, the registry of checks, and the planner that picks what applies.

A check is a class with an id, a title, what it needs from the spec, the stage of the
pipeline it guards, references, and a docstring that *is* its documentation (shown by
``mlwarden checks --explain ID`` and in the HTML report). Checks over data are mergeable
folds — ``init → update(batch)… → merge → finalize`` — so the same code runs on one core,
both cores, or a Dask cluster. Checks that need something else than batches implement
``run(ctx)`` and fan work out through ``ctx.engine.map``.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .findings import Finding, Location, Severity, fingerprint

if TYPE_CHECKING:  # types only: importing them pulls pyarrow, pandas and pydantic into every command
    from .engine.base import Engine
    from .sources.datasets import Batch, Dataset
    from .spec import Spec

SPLITS: tuple[str, ...] = ("train", "test", "production", "feedback")
"""``spec.SPLITS``, repeated so that checks load without pydantic; tests/test_registry.py keeps them equal."""

Stage = Literal["data", "splits", "training", "artifact", "serving", "feedback"]
STAGES: tuple[Stage, ...] = ("data", "splits", "training", "artifact", "serving", "feedback")

Need = Literal["train", "test", "production", "feedback", "eval", "data", "label", "id",
               "time", "sensitive", "artifact", "endpoint", "code", "infra", "predictions"]

_NEEDS: dict[str, tuple[Callable[[Spec], Any], str]] = {
    "train": (lambda s: s.data.train, "data.train"),
    "test": (lambda s: s.data.test, "data.test"),
    "production": (lambda s: s.data.production, "data.production"),
    "feedback": (lambda s: s.data.feedback, "data.feedback"),
    "eval": (lambda s: s.data.test or s.data.production or s.data.feedback,
             "data.test, data.production or data.feedback"),
    "data": (lambda s: s.data.splits(), "a dataset"),
    "label": (lambda s: s.data.label, "data.label"),
    "id": (lambda s: s.data.id, "data.id"),
    "time": (lambda s: s.data.time, "data.time"),
    "sensitive": (lambda s: s.data.sensitive, "data.sensitive"),
    "artifact": (lambda s: s.model and s.model.artifact, "model.artifact"),
    "endpoint": (lambda s: s.model and s.model.endpoint, "model.endpoint"),
    "code": (lambda s: s.code, "code"),
    "infra": (lambda s: s.infra, "infra"),
    "predictions": (lambda s: (s.model and s.model.artifact) or s.data.prediction,
                    "model.artifact or data.prediction"),
}


class Skip(Exception):
    """Raised by a check that finds, once it looks at the data, that it cannot apply."""


@dataclass
class Outcome:
    """What a check's ``finalize``/``run`` returns; the engine adds status and timing."""

    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    charts: Sequence[Chart | Curve | Whiskers] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Chart:
    """A small figure for the HTML report: bars with labels (values in ``unit``)."""

    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    unit: str = ""


@dataclass(frozen=True, kw_only=True)
class Curve:
    """A line chart for the HTML report: named series of (x, y) points, optional (x, low, high) bands."""

    title: str
    x_label: str
    y_label: str
    series: tuple[tuple[str, tuple[tuple[float, float], ...]], ...]
    bands: tuple[tuple[str, tuple[tuple[float, float, float], ...]], ...] = ()
    """Confidence bands, each named after the series it belongs to."""
    x_log: bool = False
    """Log-scaled x axis (e.g. false-positive rates); points with x ≤ 0 are left out."""
    y_range: tuple[float, float] | None = None
    """Fixed y axis (e.g. (0, 1) for rates); default: the data's range."""


@dataclass(frozen=True, kw_only=True)
class Whiskers:
    """Point estimates with confidence whiskers, one row per group, one dot per named series."""

    title: str
    x_label: str
    groups: tuple[str, ...]
    series: tuple[tuple[str, tuple[tuple[float, float, float], ...]], ...]
    """Per series, per group: (estimate, low, high); NaN where a series lacks that group."""
    references: tuple[tuple[str, float], ...] = ()
    """Vertical reference lines: (label, x), e.g. a threshold or the reference group's rate."""
    x_range: tuple[float, float] | None = None


@dataclass(frozen=True, kw_only=True)
class Sources:
    """The opened datasets of a spec, by split (metadata only; picklable)."""

    datasets: dict[str, Dataset]

    def columns(self, split: str) -> tuple[str, ...]:
        return self.datasets[split].columns if split in self.datasets else ()


@dataclass
class AuditContext:
    spec: Spec
    sources: Sources
    engine: Engine
    cache: dict[str, Any] = field(default_factory=dict)
    """Work shared between checks of one audit (e.g. one code scan feeds every code.* check)."""


class Check:
    """Base of every check. Subclasses set the class attributes and a docstring."""

    id: ClassVar[str]
    title: ClassVar[str]
    needs: ClassVar[tuple[Need, ...]] = ()
    stage: ClassVar[Stage]
    references: ClassVar[tuple[str, ...]] = ()
    fold: ClassVar[bool] = False

    def __init__(self, spec: Spec, sources: Sources) -> None:
        self.spec = spec
        self.sources = sources

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def unmet(cls, spec: Spec) -> str | None:
        """Why the check can't run on ``spec``, or None when its needs are met."""
        missing = [label for need in cls.needs for test, label in [_NEEDS[need]] if not test(spec)]
        return f"needs {' and '.join(missing)} in the spec" if missing else None

    def run(self, ctx: AuditContext) -> Outcome:  # non-fold checks
        raise NotImplementedError

    def finding(self, *, key: Sequence[object], severity: Severity, title: str, description: str,
                remediation: str, evidence: dict[str, Any] | None = None,
                location: Location | None = None, references: Iterable[str] | None = None) -> Finding:
        """A finding whose id is a fingerprint of this check and ``key`` (what, not how much)."""
        return Finding(
            id=fingerprint(self.id, *key), check=self.id, severity=severity, title=title,
            description=description, remediation=remediation, evidence=evidence or {},
            location=location or Location(),
            references=tuple(references if references is not None else self.references),
        )


class FoldCheck(Check):
    """A check computed as a mergeable fold over the batches of some splits."""

    fold: ClassVar[bool] = True
    splits: ClassVar[tuple[str, ...]] = SPLITS
    """Which splits' batches ``update`` sees."""
    long_finalize: ClassVar[bool] = False
    """``finalize`` fits models (seconds, not milliseconds): the audit starts these first, so
    the short finalizers fill the other cores around them instead of leaving one running alone."""
    row_finalize: ClassVar[bool] = False
    """``finalize`` reads state kept per row (its cost grows with the rows: seconds at 10M rows):
    started after the model fits, the one with the longest fold first, ahead of the small ones."""

    def columns(self, split: str) -> list[str] | None:
        """The columns ``update`` reads from ``split`` (None: all)."""
        return None

    def init(self) -> Any:
        raise NotImplementedError

    def update(self, state: Any, batch: Batch) -> Any:
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def finalize(self, state: Any, ctx: AuditContext) -> Outcome:
        raise NotImplementedError


REGISTRY: dict[str, type[Check]] = {}


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: add a check to the registry (ids are unique)."""
    if cls.id in REGISTRY and REGISTRY[cls.id] is not cls:
        raise RuntimeError(f"duplicate check id {cls.id}")
    REGISTRY[cls.id] = cls
    return cls


def check_ids(patterns: Sequence[str] = ()) -> list[str]:
    """Every check id (from the catalog, importing nothing), or those matching a glob of ``patterns``."""
    from .checks import CATALOG

    return sorted(cid for cid in CATALOG if not patterns or any(fnmatch.fnmatchcase(cid, g) for g in patterns))


def all_checks(patterns: Sequence[str] = ()) -> dict[str, type[Check]]:
    """Every check class (or those whose id matches a glob of ``patterns``), importing only their modules.

    Checks registered outside the catalog (test fakes) are included when they match.
    """
    from .checks import CATALOG

    ids = check_ids(patterns)
    for module in sorted({CATALOG[cid] for cid in ids}):
        importlib.import_module(f"{__package__}.checks.{module}")
    missing = [cid for cid in ids if cid not in REGISTRY]
    if missing:  # the catalog names a check its module does not define: a bug, not bad input
        raise RuntimeError(f"checks in the catalog but not registered by their module: {', '.join(missing)}")
    extra = [cid for cid in REGISTRY if cid not in CATALOG
             and (not patterns or any(fnmatch.fnmatchcase(cid, g) for g in patterns))]
    return {cid: REGISTRY[cid] for cid in sorted([*ids, *extra])}


def get_check(check_id: str) -> type[Check] | None:
    """One check class by id, importing only its module; None when there is no such check."""
    from .checks import CATALOG

    if check_id not in CATALOG and check_id not in REGISTRY:
        return None
    return all_checks([check_id]).get(check_id)


@dataclass(frozen=True)
class Plan:
    checks: tuple[Check, ...]
    skipped: tuple[tuple[type[Check], str], ...]


def plan(spec: Spec, sources: Sources, *, only: Sequence[str] = (), skip: Sequence[str] = ()) -> Plan:
    """Pick the registered checks whose needs the spec meets; say why the others don't run."""
    run: list[Check] = []
    skipped: list[tuple[type[Check], str]] = []
    for cid, cls in all_checks(only).items():
        if any(fnmatch.fnmatchcase(cid, g) for g in skip):
            skipped.append((cls, "skipped by --skip"))
            continue
        reason = cls.unmet(spec)
        if reason:
            skipped.append((cls, reason))
        else:
            run.append(cls(spec, sources))
    return Plan(tuple(run), tuple(skipped))
