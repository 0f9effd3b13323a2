"""The audit loop: spec → sources → plan → engine → results → report.

Short on purpose: everything it calls lives in its own module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import cast

from . import __version__
from .engine import make_engine
from .engine.base import Failed, Folded, single_threaded
from .errors import MlwardenError, SpecError
from .findings import CheckResult, Report, Severity, Target
from .registry import STAGES, AuditContext, Check, FoldCheck, Outcome, Skip, Sources, plan
from .sources.datasets import open_dataset
from .spec import Spec


def open_sources(spec: Spec) -> Sources:
    """Open every dataset's metadata and check that the columns the spec names exist."""
    datasets = {split: open_dataset(split, uri) for split, uri in spec.datasets().items()}
    where = f"{spec.path}: " if spec.path else ""
    for field_name, column, required_in in (
        ("data.label", spec.data.label, ("train", "test", "feedback")),
        ("data.id", spec.data.id, tuple(datasets)),
        ("data.time", spec.data.time, tuple(datasets)),
        *(("data.sensitive", s, ("train", "test")) for s in spec.data.sensitive),
        *(("data.quasi_identifiers", q, ("train",)) for q in spec.data.quasi_identifiers or ()),
        *((f"features.{f}", f, ("train",)) for f in spec.features),
    ):
        if column is None:
            continue
        for split in required_in:
            if split in datasets and column not in datasets[split].columns:
                cols = ", ".join(datasets[split].columns[:12])
                raise SpecError(f"{where}{field_name}: column {column!r} is not in data.{split} (columns: {cols}…)")
    return Sources(datasets=datasets)


def run_audit(spec: Spec, *, engine: str = "local", scheduler: str | None = None,
              only: Sequence[str] = (), skip: Sequence[str] = ()) -> Report:
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    sources = open_sources(spec)
    chosen = plan(spec, sources, only=only, skip=skip)
    results: list[CheckResult] = [
        CheckResult(id=cls.id, title=cls.title, status="skipped", message=reason) for cls, reason in chosen.skipped
    ]
    with make_engine(engine, scheduler=scheduler) as eng:
        ctx = AuditContext(spec=spec, sources=sources, engine=eng)
        folds = [c for c in chosen.checks if isinstance(c, FoldCheck)]
        parts = [p for ds in sources.datasets.values() for p in ds.partitions]
        folded = eng.fold(folds, parts)
        results.extend(_finish_folds(folds, ctx, folded))
        for check in chosen.checks:
            if not isinstance(check, FoldCheck):
                results.append(_finish(check, ctx, None))
    results.sort(key=lambda r: r.id)
    return Report(
        tool_version=__version__,
        target=Target(name=spec.name, spec=str(spec.path) if spec.path else None),
        started_at=started.isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - t0,
        checks=tuple(results),
        engine=engine,
        stages=_stages(spec, chosen.checks),
        docs={c.id: c.doc() for c in chosen.checks} | {cls.id: cls.doc() for cls, _ in chosen.skipped},
        references={c.id: tuple(c.references) for c in chosen.checks},
    )


def _finish_folds(checks: Sequence[FoldCheck], ctx: AuditContext, folded: dict[str, Folded]) -> list[CheckResult]:
    """Finalize the fold checks side by side, one thread a core.

    Their finalizers are NumPy, Arrow and scikit-learn work that mostly runs outside the GIL;
    serially they were two thirds of a 1M-row audit's wall time on 2 cores. Each reads only
    its own state, so the results do not depend on the order they finish in. Checks that
    query a model or an endpoint are not run here: their time limits must not share cores.
    """
    workers = min(len(checks), os.cpu_count() or 1)
    if workers <= 1:
        return [_finish(c, ctx, folded.get(c.id)) for c in checks]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlwarden-finalize")
    try:
        futures = [pool.submit(single_threaded, _finish, c, ctx, folded.get(c.id))
                   for c in finalize_order(checks, folded)]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def finalize_order(checks: Sequence[FoldCheck], folded: dict[str, Folded]) -> list[FoldCheck]:
    """Longest first, so the short finalizers fill in around the long ones (the order of results
    does not matter: the report sorts them by id). Model fits, then the finalizers of per-row
    state by how long their fold took, a measure of the rows they hold (at 10M rows the biggest
    of these, started last in name order, ran 5 s alone on one core at the end), then the rest."""
    def cost(c: FoldCheck) -> tuple[bool, bool, float]:
        spent = folded[c.id].seconds if c.id in folded else 0.0
        return (not c.long_finalize, not c.row_finalize, -spent if c.row_finalize else 0.0)

    return sorted(checks, key=cost)


def _finish(check: Check, ctx: AuditContext, folded: Folded | None) -> CheckResult:
    """Finalize one check; its errors become an ``error`` result and the audit goes on."""
    t0 = time.perf_counter()
    spent = folded.seconds if folded else 0.0
    if folded is not None and isinstance(folded.state, Failed):
        return CheckResult(id=check.id, title=check.title, status="error", duration_s=spent,
                           message=folded.state.message)
    try:
        # only fold checks are folded, so a Folded result means ``check`` is a FoldCheck
        outcome: Outcome = (cast(FoldCheck, check).finalize(folded.state, ctx) if folded is not None
                            else check.run(ctx))
    except Skip as e:
        return CheckResult(id=check.id, title=check.title, status="skipped", message=str(e))
    except MlwardenError:
        raise  # bad input (a missing file, a corrupt manifest) is the user's to fix: exit 2
    except Exception as e:
        return CheckResult(id=check.id, title=check.title, status="error",
                           duration_s=spent + time.perf_counter() - t0, message=f"{type(e).__name__}: {e}")
    failing = any(f.severity is not Severity.INFO for f in outcome.findings)
    return CheckResult(
        id=check.id, title=check.title, status="fail" if failing else "pass",
        duration_s=spent + time.perf_counter() - t0, metrics=outcome.metrics,
        findings=tuple(outcome.findings), charts=tuple(outcome.charts),
    )


def _stages(spec: Spec, checks: Sequence[Check]) -> dict[str, list[str]]:
    """Which stages of the pipeline the spec has, and the checks that ran on each."""
    present = {
        "data": bool(spec.data.splits()),
        "splits": bool(spec.data.train and (spec.data.test or spec.data.production)),
        "training": bool(spec.code or (spec.model and spec.model.artifact)),
        "artifact": bool(spec.model and spec.model.artifact),
        "serving": bool(spec.model and spec.model.endpoint),
        "feedback": bool(spec.data.feedback),
    }
    out: dict[str, list[str]] = {s: [] for s in STAGES if present[s]}
    for c in checks:
        out.setdefault(c.stage, []).append(c.id)
    return out
