"""Stateful attack detection: per API key, does the recent query stream look like an attack?

Black-box attacks need many queries, and those queries do not look like real traffic:

- **evasion** (HopSkipJump, Boundary, mlwarden's own search) walks towards a decision
  boundary with many near-identical queries. As in Chen, Carlini & Wagner's stateful detection
  (2020), each query gets the mean distance to its ``k`` nearest neighbours among the key's
  recent queries; the key is flagged when the median of that over its last ``window`` queries
  falls below ``knn_threshold``. Real clients resubmit rows with small edits, but a handful of
  times, not ``k`` — so ``k`` is what separates a resubmission from a walk.
- **extraction** (copycat surrogates, equation solving) queries many synthetic rows. As in
  PRADA (Juuti et al., 2019), each query's distance to its nearest earlier query is recorded;
  once ``extraction_min`` of them are in, a Shapiro–Wilk test on their logarithms asks whether
  they still look like natural traffic (W ≥ ``extraction_threshold``). Measured on tabular
  traffic with resubmissions it separates nothing (benign streams are the *least* normal), so
  it is off unless a threshold is set; the uniform-query detector below does the work.
- **uniform queries** (surrogates trained on rows spread over the whole box): when the guard
  has a reference sample (the training data), each query's distance to the nearest reference
  row, in units of the reference's own nearest-neighbour distance; the key is flagged when the
  median over the last ``ood_window`` queries exceeds ``ood_threshold``. ART's attacks start
  from random points of the box, so this catches them within a few queries.

All state lives in the guard's :class:`~mlwarden.guard.state.State` (memory or Redis), so
replicas share detections: each history row is the query's encoded features followed by the
statistics computed when it arrived (:data:`STATS`), so no test is ever recomputed over the
whole history, and a key's memory is bounded by ``history × (width + 5)`` floats.

What this buys is cost, not safety: an attacker who learns the thresholds (OARS, Feng et al.
2023) can spread queries over keys, slow down and mix in cover traffic; see
``bench/bench_guard_detection.py`` for what that costs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import MlwardenError
from ..sources.model import FeatureSchema
from .detect_encode import Encoder, encode
from .detect_stats import benign_knn, log_shapiro, nearest, reference_scale, squared_norms

Action = Literal["allow", "log", "throttle", "degrade", "block"]
SEVERITY: dict[str, int] = {"allow": 0, "log": 1, "degrade": 2, "throttle": 3, "block": 4}
STATS = ("knn", "mind", "ood", "seq", "fresh")
"""Per-row statistics kept after the encoded features; ``fresh`` is a bit mask of detectors that
fired on the request the row came in (1 evasion, 2 extraction, 4 uniform queries)."""
EVASION, EXTRACTION, OOD = 1, 2, 4

__all__ = ["Action", "Decision", "DetectError", "DetectPolicy", "Detector", "Encoder", "encode"]


class DetectError(MlwardenError):
    """A detector policy that cannot work (say, k larger than the history)."""


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None
    score: float
    """How far past its threshold the most suspicious detector is (≥ 1 means it fired; 0 when
    there is no evidence yet)."""


@dataclass(frozen=True, kw_only=True)
class DetectPolicy:
    """Thresholds and responses. Defaults calibrated by ``bench/bench_guard_detection.py`` on
    the loanapp data (benign replay with resubmissions: per-query FPR ≤ 0.1 %)."""

    history: int = 1000
    """Rows kept per key (the bound on its memory)."""
    k: int = 10
    window: int = 10
    knn_threshold: float = 0.2
    """Median k-NN distance (RMS per feature, in scale units) below which a stream is a walk
    (benign loanapp replay: minimum 0.29 over 18,000 queries). Scale units are the reference's IQRs."""
    knn_fraction: float | None = 0.42
    """With a reference sample, the threshold is also at most this fraction of the data's own benign
    k-NN distance (:func:`~.detect_stats.benign_knn`): on loanapp (0.49–0.53 on two splits) 0.2 stays
    the threshold; on dense data it drops — the tests' loans with three features: 0.10 → 0.042, where
    a fixed 0.2 refused 1,071 of 2,400 honest queries and the calibrated threshold none. None: off."""
    knn_threshold_unreferenced: float = 0.01
    """The same without a reference sample, where the scale is each feature's declared range, which
    heavy tails make far wider (benign loanapp replay: minimum 0.027)."""
    extraction_min: int = 100
    extraction_threshold: float | None = None
    """Shapiro–Wilk W on log nearest-earlier distances below which a stream is not natural (PRADA);
    None: off (see the module docstring)."""
    extraction_stride: int = 10
    """The W test runs once per this many queries of a key (it costs a few hundred microseconds)."""
    ood_window: int = 25
    ood_threshold: float | None = 3.0
    """Median distance to the nearest reference row, in reference NN-distance units (benign
    loanapp replay: at most 2.2); None: off. Needs a reference sample."""
    hold: int = 50
    """A response stays on until this many of the key's queries have arrived with none firing."""
    on_evasion: Action = "block"
    on_extraction: Action = "degrade"
    on_ood: Action = "block"  # rows spread over the whole box are no client's traffic (benign FPR 0 measured)

    def __post_init__(self) -> None:
        if self.history < 2 or not (1 <= self.k < self.history) or not (1 <= self.window <= self.history):
            raise DetectError(f"detector policy needs 1 <= k < history and 1 <= window <= history "
                              f"(got history={self.history}, k={self.k}, window={self.window})")
        if not (1 <= self.ood_window <= self.history) or self.extraction_stride < 1:
            raise DetectError(f"detector policy needs 1 <= ood_window <= history and extraction_stride >= 1 "
                              f"(got ood_window={self.ood_window}, extraction_stride={self.extraction_stride})")
        if not (3 <= self.extraction_min <= self.history):
            raise DetectError(f"extraction_min must be between 3 and history={self.history} (got {self.extraction_min})")
        for a in (self.on_evasion, self.on_extraction, self.on_ood):
            if a not in SEVERITY:
                raise DetectError(f"unknown detector action {a!r}; choose one of {', '.join(SEVERITY)}")


class Detector:
    """Per-key evasion, extraction and uniform-query detection over the guard's shared state."""

    def __init__(self, schema: FeatureSchema, policy: DetectPolicy | None = None, *,
                 reference: pd.DataFrame | None = None, seed: int = 0) -> None:
        self.schema = schema
        self.policy = policy or DetectPolicy()
        self.encoder = Encoder(schema, reference)
        self.width = self.encoder.width
        self._ref: np.ndarray | None = None
        self._ref_sq: np.ndarray | None = None
        self._ref_scale = 1.0
        self.benign_knn = math.nan
        """Median k-NN distance of real rows among a key-sized pool of real rows (NaN: no reference)."""
        self.knn_threshold = self.policy.knn_threshold if reference is not None else self.policy.knn_threshold_unreferenced
        if reference is not None and len(reference) >= 20:
            R = self.encoder.encode(reference)
            self._ref, self._ref_scale = reference_scale(R, self._norm, np.random.default_rng(seed))
            self._ref_sq = squared_norms(self._ref)
            self.benign_knn = benign_knn(R, self.policy.k, self._norm, np.random.default_rng(seed + 1))
            if self.policy.knn_fraction is not None and math.isfinite(self.benign_knn):
                self.knn_threshold = min(self.knn_threshold, self.policy.knn_fraction * self.benign_knn)

    @property
    def _norm(self) -> float:
        return math.sqrt(self.encoder.features)

    def rows(self, rows: Any) -> np.ndarray:
        """Encoded rows from the gateway's matrix (``[n, features]``) or already encoded (``[n, width]``).

        Where the two widths coincide (no category with several values), the matrix reading wins:
        that is what the gateway passes.
        """
        a = np.asarray(rows, dtype=np.float64)
        if a.ndim == 1:
            a = a.reshape(1, -1)
        if a.ndim != 2 or a.shape[0] == 0:
            raise DetectError(f"the detector needs a non-empty 2-D array of rows, got shape {a.shape}")
        if a.shape[1] == self.encoder.features:
            return self.encoder.encode_matrix(a)
        if a.shape[1] == self.width:
            return np.nan_to_num(a, nan=0.0, posinf=1e6, neginf=-1e6)
        raise DetectError(f"rows of width {a.shape[1]}: expected {self.encoder.features} (model features) "
                          f"or {self.width} (encoded)")

    def observe(self, key: str, rows: np.ndarray, state: Any) -> Decision:
        """Score one request's rows against the key's history, record them, and decide."""
        p, w = self.policy, self.width
        X = self.rows(rows)
        H = state.history(key)
        if H.ndim != 2 or H.shape[1] != w + len(STATS):  # none yet, or written under another schema
            H = np.empty((0, w + len(STATS)))
        knn, mind = nearest(H[:, :w], X, p.k, self._norm)
        ood = np.full(len(X), np.nan)
        if self._ref is not None and p.ood_threshold is not None:
            ood = nearest(self._ref, X, 1, self._norm, within=False, pool_sq=self._ref_sq)[1] / self._ref_scale
        seq0 = H[-1, w + 3] if len(H) else 0.0
        seq = seq0 + np.arange(1, len(X) + 1)
        stats = np.column_stack([knn, mind, ood, seq, np.zeros(len(X))])
        S = np.vstack([H[:, w:], stats])[-p.history:]
        prada = p.extraction_threshold is not None and seq[-1] // p.extraction_stride > seq0 // p.extraction_stride
        fired, scores, reasons = self._tests(S, prada)
        stats[:, 4] = fired
        S[-min(len(X), len(S)):, 4] = fired
        held = int(np.bitwise_or.reduce(S[-p.hold:, 4].astype(np.int64)))
        state.push_history(key, np.hstack([X, stats]), p.history)
        return self._decide(held, fired, scores, reasons)

    def _tests(self, S: np.ndarray, prada: bool) -> tuple[int, dict[int, float], dict[int, str]]:
        p = self.policy
        fired, scores, reasons = 0, {}, {}
        win = S[-p.window:]
        knn = win[:, 0][np.isfinite(win[:, 0])]
        if len(knn) >= p.window // 2 + 1:
            med, thr = _median(knn), self.knn_threshold
            scores[EVASION] = thr / med if med > 0 else math.inf
            if med < thr:
                fired |= EVASION
                reasons[EVASION] = (f"evasion: median {p.k}-NN distance {med:.3g} over the last {len(knn)} "
                                    f"queries is below {thr:g}")
        mind = S[:, 1][np.isfinite(S[:, 1])] if prada else S[:0, 1]
        if p.extraction_threshold is not None and len(mind) >= p.extraction_min:
            W = log_shapiro(mind)
            scores[EXTRACTION] = (1 - W) / (1 - p.extraction_threshold)
            if W < p.extraction_threshold:
                fired |= EXTRACTION
                reasons[EXTRACTION] = (f"extraction: nearest-earlier distances of the last {len(mind)} queries "
                                       f"are not natural (Shapiro-Wilk W {W:.3f} < {p.extraction_threshold:g})")
        win = S[-p.ood_window:]
        ood = win[:, 2][np.isfinite(win[:, 2])]
        if p.ood_threshold is not None and len(ood) >= p.ood_window // 2 + 1:
            med = _median(ood)
            scores[OOD] = med / p.ood_threshold
            if med > p.ood_threshold:
                fired |= OOD
                reasons[OOD] = (f"uniform queries: median distance to real rows {med:.3g}× the usual over "
                                f"the last {len(ood)} queries (limit {p.ood_threshold:g}×)")
        return fired, scores, reasons

    def _decide(self, held: int, fired: int, scores: dict[int, float], reasons: dict[int, str]) -> Decision:
        p = self.policy
        actions = {EVASION: p.on_evasion, EXTRACTION: p.on_extraction, OOD: p.on_ood}
        score = max((s for s in scores.values() if math.isfinite(s)), default=0.0)
        if not held:
            return Decision("allow", None, score)
        worst = max((b for b in actions if held & b), key=lambda b: SEVERITY[actions[b]])
        reason = reasons.get(worst) or f"{_NAMES[worst]} detected within the last {p.hold} queries (holding)"
        return Decision(actions[worst], reason, max(score, 1.0))


def _median(x: np.ndarray) -> float:
    # np.median's generic machinery costs ~20x a sort at these sizes (tens of values)
    s = np.sort(x)
    n = len(s)
    return float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2)


_NAMES = {EVASION: "evasion", EXTRACTION: "extraction", OOD: "uniform queries"}
