"""fairness.model_disparity and fairness.intersectional — how the model treats each group.

Both checks fold the labelled test split into confusion counts per intersection of every
sensitive attribute (and per score bin, for calibration): ``[groups, 10 bins, 4 cells]``
integers plus fixed-point score sums — a few hundred bytes per group, whatever the rows.
The model runs inside ``update`` (it loads once per worker process, through the safe
loader), or the spec's prediction column is read instead. Everything after the fold —
metrics, bootstrap intervals, tests — works on the counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from ...fairness.bootstrap import estimate
from ...fairness.groups import intersection_codes
from ...fairness.metrics import BINS, CELLS, score_bins
from ...fairness.predict import Predictor
from ...registry import AuditContext, FoldCheck, Outcome, Skip, register
from ...sources.datasets import Batch
from .assess import GroupSet, assess

MAX_GROUPS = 10_000
"""Distinct intersections a fold may hold; more means a sensitive column is an identifier."""
FIXED_POINT = 1 << 32
"""Scores are summed as integers (score × 2³²) so sums are exact and order-independent."""

_LAST: list[Any] = [None]
"""(record batch, predictions, scores) of the last batch: both checks fold the same batches."""


@dataclass
class CountState:
    cells: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    score_sums: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    rows: int = 0
    unlabeled: int = 0
    scored: bool = True


class _GroupFold(FoldCheck):
    """The shared fold: confusion counts by intersection of the sensitive attributes."""

    splits: ClassVar[tuple[str, ...]] = ("test",)
    needs = ("test", "label", "sensitive", "predictions")
    stage = "training"
    references = ("NIST-MEASURE", "NIST-MANAGE")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.attrs = list(spec.data.sensitive)
        self.predictor = Predictor(spec)
        cols = sources.columns("test")
        wanted = [spec.data.prediction, spec.data.score] if spec.data.prediction else []
        lacking = [c for c in wanted if c and c not in cols]
        self.unusable = (f"data.test lacks the prediction column(s) {', '.join(lacking)}" if lacking else None)

    def columns(self, split: str) -> list[str] | None:
        if self.unusable:
            label = self.spec.data.label
            assert label is not None  # needs "label"
            return [label]
        cols = self.sources.columns(split)
        need = {self.spec.data.label, *self.attrs, *self.predictor.columns(cols)}
        return sorted(c for c in need if c in cols)

    def init(self) -> CountState:
        return CountState()

    def _predict(self, rb: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray | None]:
        last = _LAST[0]
        if last is not None and last[0] is rb and last[1] == self.predictor.artifact:
            return last[2], last[3]
        pred, score = self.predictor.predict(rb)
        _LAST[0] = (rb, self.predictor.artifact, pred, score)
        return pred, score

    def update(self, state: CountState, batch: Batch) -> CountState:
        rb = batch.data
        if self.unusable or rb.num_rows == 0:
            return state
        pred, score = self._predict(rb)
        col = rb.column(self.spec.data.label)
        valid = ~col.is_null(nan_is_null=True).to_numpy(zero_copy_only=False)
        y = self.predictor.favorable(col.to_numpy(zero_copy_only=False))
        p = self.predictor.favorable(pred)
        inv, keys = intersection_codes(rb, self.attrs)
        bins = score_bins(score) if score is not None else np.zeros(rb.num_rows, dtype=np.int64)
        state.scored = state.scored and score is not None
        state.unlabeled += int((~valid).sum())
        state.rows += int(valid.sum())
        g = inv[valid]
        flat = (g * BINS + bins[valid]) * CELLS + 2 * y[valid].astype(np.int64) + p[valid].astype(np.int64)
        counts = np.bincount(flat, minlength=len(keys) * BINS * CELLS).reshape(len(keys), BINS, CELLS)
        sums = np.zeros((len(keys), BINS), dtype=np.int64)
        if score is not None:
            fx = np.rint(np.clip(np.nan_to_num(score[valid], nan=0.0), 0.0, 1.0) * FIXED_POINT).astype(np.int64)
            np.add.at(sums.reshape(-1), g * BINS + bins[valid], fx)
        for k, key in enumerate(keys):
            if counts[k].any():
                _add(state, key, counts[k], sums[k])
        return state

    def merge(self, a: CountState, b: CountState) -> CountState:
        for key in b.cells:
            _add(a, key, b.cells[key], b.score_sums[key])
        a.rows += b.rows
        a.unlabeled += b.unlabeled
        a.scored = a.scored and b.scored
        return a

    def _run(self, state: CountState, sets: list[GroupSet]) -> Outcome:
        if self.unusable:
            raise Skip(self.unusable)
        if state.rows == 0:
            raise Skip("the test split has no rows with a label")
        keys = sorted(state.cells)
        cells = np.stack([state.cells[k] for k in keys])
        sums = np.stack([state.score_sums[k] for k in keys]) / FIXED_POINT if state.scored else None
        fz = self.spec.fairness
        index = {s.name: s for s in sets}
        membership: list[Any] = []
        slices: dict[str, slice] = {}
        for s in sets:
            start = len(membership)
            for values in s.members(keys):
                membership.append(values)
            slices[s.name] = slice(start, len(membership))
        est = estimate(cells, sums, np.array(membership, dtype=np.float64), fz.resamples, fz.seed)
        base = {"rows": state.rows, "rows_without_label": state.unlabeled,
                "predictions": self.predictor.source, "favorable": _json(fz.favorable),
                "scores": state.scored, "confidence": fz.confidence, "resamples": fz.resamples,
                "seed": fz.seed, "min_group_size": fz.min_group_size,
                "bootstrap": "multinomial resampling of confusion counts within each intersection of "
                             "the sensitive attributes (stratified); percentile intervals"}
        if state.scored:
            base["calibration"] = ("calibration_error: expected calibration error over 10 equal-width score bins; "
                                   "its interval resamples the counts with each bin's mean score held fixed")
        uri = self.spec.display(self.sources.datasets["test"].uri)
        return assess(self, base, index, slices, est, uri)


def _add(state: CountState, key: tuple[str, ...], counts: np.ndarray, sums: np.ndarray) -> None:
    if key in state.cells:
        state.cells[key] = state.cells[key] + counts
        state.score_sums[key] = state.score_sums[key] + sums
        return
    if len(state.cells) >= MAX_GROUPS:
        raise ValueError(f"more than {MAX_GROUPS} combinations of the sensitive attributes; "
                         "a sensitive column looks like an identifier — bin it or drop it from data.sensitive")
    state.cells[key] = counts.astype(np.int64, copy=True)
    state.score_sums[key] = sums.astype(np.int64, copy=True)


def _json(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


@register
class ModelDisparity(_GroupFold):
    """Measures how the model's decisions and errors differ between groups of each sensitive attribute.

    **What it finds.** For every sensitive attribute, on the labelled test split: each
    group's selection rate, true and false positive rates, false negative rate,
    precision, accuracy (and expected calibration error when the model gives scores),
    each with a bootstrap confidence interval (stratified by group, seeded); the
    difference and ratio of each against the reference group (``fairness.reference``,
    else the largest group) with intervals; the worst case between groups
    (difference, ratio, min, max); demographic parity, equalized odds, equal opportunity
    and predictive parity as fairlearn defines them; and the four-fifths rule (each
    group's selection rate over the highest group's). Every flagged gap is backed by a
    two-proportion test (pooled z, or Fisher's exact test for small counts) with
    Benjamini–Hochberg correction across groups, metrics and attributes. Rows whose
    sensitive value is missing form their own group, ``(missing)``.

    **Severity.** High: the ratio to the reference is below 0.8 (four-fifths) the
    unfavourable way for either group, its interval excludes 1, the gap is at least 0.05
    and the corrected q is below 1 − confidence (0.05). Medium: a gap of at least 0.1
    whose interval excludes 0, q below 0.05. Low: a smaller gap whose interval excludes
    0, q below 0.05. Info: groups with fewer than ``fairness.min_group_size`` (30)
    labelled rows — too small to judge, reported and kept out of the tests and of the
    worst-case summaries.

    **Why it matters.** A model that approves, or wrongly rejects, one group more than
    another harms people and breaks anti-discrimination law (the four-fifths rule is the
    US EEOC's screen for adverse impact). Parity metrics (selection rate) and error-rate
    metrics (equalized odds, predictive parity) cannot in general all hold at once when
    base rates differ between groups (Chouldechova 2017; Kleinberg et al. 2016), so pick
    the one that matches the harm: parity for access to an opportunity, error rates where
    wrong decisions are the harm.

    **How to fix.** Reweigh or resample the training data (Kamiran & Calders), set a
    threshold per group (post-processing such as fairlearn's ``ThresholdOptimizer``),
    remove features that proxy for the sensitive attribute (see ``fairness.proxies``),
    collect more and better-labelled data for the disadvantaged group — then audit again.
    """

    id = "fairness.model_disparity"
    title = "Model decisions and errors are comparable across groups"

    def finalize(self, state: CountState, ctx: AuditContext) -> Outcome:
        ref = self.spec.fairness.reference
        sets = [GroupSet(name=a, attrs=(a,), positions=(i,), reference=_ref_values((a,), ref))
                for i, a in enumerate(self.attrs)]
        return self._run(state, sets)


@register
class Intersectional(_GroupFold):
    """Measures the model's disparities for intersections of sensitive attributes (race × sex …).

    **What it finds.** The same metrics, intervals, tests and rules as
    ``fairness.model_disparity``, for every combination of two or more sensitive
    attributes (``race=black & sex=female``), each intersection compared with the
    intersection of the reference groups (else the largest). It lists the worst-off
    intersections — lowest selection rate and true positive rate relative to the
    reference — and corrects for multiple testing across all intersections and metrics.
    A disparity can hide in an intersection while each attribute alone looks fair.

    **Severity.** As ``fairness.model_disparity``: high for a ratio below 0.8 with an
    interval excluding 1, a gap of at least 0.05 and q < 0.05; medium for a gap of at
    least 0.1; low for a smaller significant gap; info for intersections too small to
    judge (fewer than ``fairness.min_group_size`` rows), which are listed, never dropped.

    **Why it matters.** Harms compound: a model can treat women and Black applicants
    each almost like the reference and still reject Black women far more often
    (Buolamwini & Gebru 2018). Parity and error-rate metrics cannot in general all hold
    at once when base rates differ, so pick the one that matches the harm.

    **How to fix.** Collect data for the small intersections first (their intervals say
    how little is known), then reweigh, adjust thresholds per intersection, or remove
    proxy features, and audit again.
    """

    id = "fairness.intersectional"
    title = "No intersection of sensitive attributes is treated worse"

    def finalize(self, state: CountState, ctx: AuditContext) -> Outcome:
        if len(self.attrs) < 2:
            raise Skip("needs two or more attributes in data.sensitive")
        ref = self.spec.fairness.reference
        sets = []
        for size in range(2, len(self.attrs) + 1):
            for pos in combinations(range(len(self.attrs)), size):
                attrs = tuple(self.attrs[i] for i in pos)
                sets.append(GroupSet(name=" × ".join(attrs), attrs=attrs, positions=pos,
                                     reference=_ref_values(attrs, ref)))
        return self._run(state, sets)


def _ref_values(attrs: tuple[str, ...], ref: dict[str, Any]) -> tuple[str, ...] | None:
    if not all(a in ref for a in attrs):
        return None
    return tuple(_ref_text(ref[a]) for a in attrs)


def _ref_text(v: Any) -> str:
    """A reference value written in the spec, as groups.py spells group values."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)

