"""What every ``model.*`` check shares: the model facade, the data it attacks with, the bounds.

A model check opens the spec's model once through :func:`mlwarden.sources.model.open_model`
(local artifact, or the endpoint when only that is given — or when ``prefer="endpoint"``),
reads the splits it needs into memory as :class:`AttackData` (whole splits up to
``MAX_ROWS``; past that a deterministic, evenly spaced sample that the metrics name), fans its
per-row work out through ``ctx.engine.map``, and ends with :func:`attack_metrics`, so every
result states the queries it used, its budget, its seed, its time and whether it stopped early.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from ...errors import MlwardenError
from ...findings import Severity
from ...registry import AuditContext, Check, Outcome, Skip
from ...sources.datasets import iter_batches
from ...sources.model import Model, QueryBudget, open_model

MAX_ROWS = 200_000
"""Rows of a split held in memory for attacks; larger splits are sampled, and the report says so."""


@dataclass(frozen=True)
class SplitFrame:
    """A split as a DataFrame, and how it was read."""

    frame: pd.DataFrame
    rows_total: int
    sampled: bool

    def describe(self) -> dict[str, Any]:
        return {"rows_used": len(self.frame), "rows_total": self.rows_total,
                "sample_method": "evenly spaced rows (deterministic)" if self.sampled else "all rows"}


def read_split(ctx: AuditContext, split: str, columns: list[str] | None = None, *, max_rows: int = MAX_ROWS) -> SplitFrame:
    """``split`` as a DataFrame of ``columns``: all rows up to ``max_rows``, else every k-th row."""
    ds = ctx.sources.datasets[split]
    if all(f.rows is not None for f in ds.files):
        total = sum(f.rows or 0 for f in ds.files)
    else:  # CSV: row counts are known only once read
        total = sum(b.data.num_rows for part in ds.partitions for b in iter_batches(part, columns))
    step = max(1, -(-total // max_rows))
    parts: list[pa.RecordBatch] = []
    for part in ds.partitions:
        for batch in iter_batches(part, columns):
            rb = batch.data
            if step > 1:
                first = (-batch.offset) % step
                rb = rb.take(pa.array(np.arange(first, rb.num_rows, step)))
            if rb.num_rows:
                parts.append(rb)
    if parts:
        frame = pa.Table.from_batches(parts).to_pandas()
    else:
        frame = pd.DataFrame(columns=columns or list(ds.columns))
    return SplitFrame(frame.reset_index(drop=True), total, step > 1)


@dataclass
class Clock:
    """A wall-clock limit: ``expired`` once ``limit_s`` has passed since it started."""

    limit_s: float
    start: float = field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def expired(self) -> bool:
        return self.elapsed >= self.limit_s


def attack_metrics(*, budget: QueryBudget, seed: int, clock: Clock, stopped_early: bool,
                   why: str | None = None, source: str) -> dict[str, Any]:
    """The bounds every attack result states (DESIGN.md: queries used, budget, seed, early stop)."""
    return {"queries_used": budget.used, "query_budget": budget.limit, "seed": seed,
            "seconds": round(clock.elapsed, 3), "time_limit_s": clock.limit_s,
            "stopped_early": stopped_early, "stop_reason": why, "model_source": source}


class ModelCheck(Check):
    """Base of the checks that query the model (attacks). Subclasses implement ``run``."""

    needs: ClassVar[tuple[Any, ...]] = ()
    """Needs besides the model (an artifact or an endpoint does: see :meth:`unmet`)."""
    stage = "serving"
    prefer: ClassVar[Literal["artifact", "endpoint"]] = "artifact"

    @classmethod
    def unmet(cls, spec: Any) -> str | None:
        m = spec.model
        if not (m and (m.artifact or m.endpoint)):
            return "needs model.artifact or model.endpoint in the spec"
        return super().unmet(spec)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None and not getattr(run, "_flags_partial", False):
            @functools.wraps(run)
            def checked(self: ModelCheck, ctx: AuditContext) -> Outcome:
                return self._flag_partial(run(self, ctx))

            checked._flags_partial = True  # type: ignore[attr-defined]
            cls.run = checked  # type: ignore[method-assign,assignment]

    def _flag_partial(self, outcome: Outcome) -> Outcome:
        """An attack that stopped early found less than an attacker could: never a silent pass."""
        m = outcome.metrics
        if not m.get("stopped_early"):
            return outcome
        why = m.get("stop_reason") or "a limit"
        outcome.findings.append(self.finding(
            key=("stopped_early",), severity=Severity.LOW if outcome.findings else Severity.MEDIUM,
            title=f"The attack stopped early ({why}): its figures are a lower bound",
            description=(f"{self.id} stopped at {why} after {m.get('queries_used')} of {m.get('query_budget')} "
                         f"queries and {m.get('seconds')} s (limit {m.get('time_limit_s')} s). An attacker "
                         "with more time or queries gets at least as far; a pass here is not evidence of safety."),
            remediation="Raise attacks.time_limit_s or attacks.queries in the spec and run the check again.",
            evidence={k: m.get(k) for k in ("queries_used", "query_budget", "seconds", "time_limit_s", "stop_reason")}))
        return outcome

    def open(self, data: pd.DataFrame | None, *, budget: QueryBudget | None = None) -> Model:
        """The spec's model, or :class:`Skip` with the loader's reason when it can't be opened safely."""
        try:
            return open_model(self.spec, data=data, budget=budget, prefer=self.spec.attacks.against or self.prefer)
        except MlwardenError as e:
            raise Skip(f"the model could not be opened safely: {e}") from None

    def seed(self) -> int:
        return int(self.spec.attacks.seed)

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A generator seeded by the spec's seed, this check's id and ``salt``: deterministic, independent."""
        return np.random.default_rng([self.seed(), *self.id.encode("utf-8"), salt])

