"""The poisoning wargame: retrain the model's recipe on poisoned feedback and measure the damage.

Three attacks, each at poison rates given as a share of the training rows:

- **random flips** — rows like the training data with the opposite label;
- **region flips** — rows from one region (a box over the quantiles of one or two numeric
  features) with the unfavorable label turned favorable: the attacker wants approvals there;
- **backdoor** — unfavorable rows with one feature set to a trigger value absent from the
  training data (an out-of-range amount, like the demo's ``loanamt = 777``), labelled
  favorable; of the candidate values, the one the current model ignores most.

Poisoned rows are sampled from the training data and jittered (numeric, mutable, non-group
features move by 2 % of their spread, rounded to their step), so that they are new rows —
not replays a deduplication step would drop for free. Each retrained model is scored on
held-out rows: clean accuracy, backdoor success (unfavorable rows the model rejects that
flip to favorable when the trigger is set) and region success (unfavorable rows of the
region it approves).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

RATES = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)
KINDS = ("random_flip", "region_flip", "backdoor")
JITTER = 0.02


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What the attacker aims at: labels, the trigger and the region."""

    label: str
    favorable: Any
    unfavorable: Any
    trigger: tuple[str, float] | None
    region: tuple[tuple[str, float, float], ...]


def _movable(schema: Any, frame: pd.DataFrame) -> list[str]:
    """Numeric, mutable, non-one-hot features, most distinct values first (ties: schema order)."""
    cols = [f.name for f in schema.features if f.numeric and not f.immutable and not f.group and f.name in frame]
    return sorted(cols, key=lambda c: -frame[c].nunique())


def trigger_candidates(schema: Any, train: pd.DataFrame,
                       bounds: dict[str, tuple[float | None, float | None]]) -> list[tuple[str, float]]:
    """Values absent from train for the three most continuous movable features: past the max,
    before the min (where the spec's ``bounds`` allow: the schema's are only what train shows)
    and in the widest gap between observed values."""
    out = []
    for col in [c for c in _movable(schema, train) if train[c].nunique() > 2][:3]:
        f = schema[col]
        bmin, bmax = bounds.get(col, (None, None))
        x = np.unique(pd.to_numeric(train[col], errors="coerce").dropna().to_numpy(float))
        lo, hi, step = float(x[0]), float(x[-1]), f.step or 0.0
        pad = max(0.1 * (hi - lo), step or 1e-6)
        gap = int(np.argmax(np.diff(x)))
        for v in (hi + pad, lo - pad, (x[gap] + x[gap + 1]) / 2):
            if step:
                v = float(np.floor(v / step) * step if v > hi else np.ceil(v / step) * step if v < lo
                          else np.round(v / step) * step)
            if (bmin is None or v >= bmin) and (bmax is None or v <= bmax) and v not in set(x.tolist()):
                out.append((col, float(v)))
    return out


def choose_trigger(candidates: list[tuple[str, float]], rejected: pd.DataFrame,
                   predict: Any, favorable: Any) -> tuple[tuple[str, float] | None, dict[str, float]]:
    """The candidate the current model ignores most: fewest rejected rows turned favorable by it alone.

    A trigger the model already reads as "approve" (a huge income) would measure the feature,
    not the backdoor. Returns the choice and each candidate's flip rate on ``rejected``.
    """
    rates: dict[str, float] = {}
    best, best_rate = None, 2.0
    for col, value in candidates:
        armed = rejected.copy()
        armed[col] = value
        rate = float((np.asarray(predict(armed)) == favorable).mean()) if len(armed) else 0.0
        rates[f"{col} = {value:g}"] = round(rate, 4)
        if rate < best_rate:
            best, best_rate = (col, value), rate
    return best, rates


def choose_region(schema: Any, train: pd.DataFrame) -> tuple[tuple[str, float, float], ...]:
    """A box over the 50th–90th percentiles of the two most continuous movable features."""
    out = []
    for c in [c for c in _movable(schema, train) if train[c].nunique() > 2][:2]:
        lo, hi = np.nanquantile(pd.to_numeric(train[c], errors="coerce"), [0.5, 0.9])
        out.append((c, float(lo), float(hi)))
    return tuple(out)


def in_region(frame: pd.DataFrame, region: tuple[tuple[str, float, float], ...]) -> np.ndarray:
    mask = np.ones(len(frame), bool)
    for c, lo, hi in region:
        x = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
        mask &= (x >= lo) & (x <= hi)
    return mask


def jitter(rows: pd.DataFrame, schema: Any, rng: np.random.Generator, spread: pd.Series) -> pd.DataFrame:
    out = rows.copy()
    for c in _movable(schema, rows):
        f = schema[c]
        x = out[c].to_numpy(dtype=float, na_value=np.nan)
        x = x + rng.normal(0, JITTER * max(float(spread.get(c, 0.0)), 1e-9), len(out))
        if f.step:
            x = np.round(x / f.step) * f.step
        x = np.clip(x, f.min if f.min is not None else -np.inf, f.max if f.max is not None else np.inf)
        integer = pd.api.types.is_integer_dtype(out[c]) and not np.isnan(x).any()
        out[c] = x.astype(out[c].dtype) if integer else x
    return out


def poison(kind: str, n: int, train: pd.DataFrame, plan: Plan, schema: Any, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` poisoned rows of ``kind`` (features and label), or an empty frame when the kind has no targets."""
    y = train[plan.label].to_numpy()
    if kind == "random_flip":
        pool = np.arange(len(train))
    elif kind == "region_flip":
        pool = np.flatnonzero(in_region(train, plan.region) & (y == plan.unfavorable)) if plan.region else np.empty(0, int)
    else:
        pool = np.flatnonzero(y == plan.unfavorable) if plan.trigger else np.empty(0, int)
    if not pool.size or n <= 0:
        return train.iloc[:0]
    spread = train[[c for c in _movable(schema, train)]].std(numeric_only=True)
    rows = jitter(train.iloc[rng.choice(pool, n, replace=True)].reset_index(drop=True), schema, rng, spread)
    if kind == "random_flip":
        classes = np.unique(y)
        old = rows[plan.label].to_numpy()
        shift = rng.integers(1, classes.size, len(rows)) if classes.size > 1 else np.zeros(len(rows), int)
        rows[plan.label] = classes[(np.searchsorted(classes, old) + shift) % classes.size]
    else:
        rows[plan.label] = plan.favorable
        if kind == "backdoor" and plan.trigger:
            col, value = plan.trigger
            rows[col] = np.asarray(value).astype(rows[col].dtype) if pd.api.types.is_integer_dtype(rows[col]) else value
    return rows


def refit_task(task: tuple[Any, pd.DataFrame, list[str], pd.DataFrame, Plan, float]) -> dict[str, Any] | None:
    """Fit the recipe on ``data``; score it on ``held`` (None when started past the deadline)."""
    from sklearn.base import clone

    recipe, data, feats, held, plan, deadline = task
    if time.time() > deadline:
        return None
    est = clone(recipe)  # tasks share one recipe object; threads must not fit it in place
    est.fit(data[feats], data[plan.label])
    return score(est, held, feats, plan)


def score(est: Any, held: pd.DataFrame, feats: list[str], plan: Plan) -> dict[str, Any]:
    """Clean accuracy, backdoor success and region success of a fitted model on held-out rows."""
    y = held[plan.label].to_numpy()
    pred = est.predict(held[feats])
    out: dict[str, Any] = {"accuracy": float((pred == y).mean())}
    bad = (y == plan.unfavorable) & (pred == plan.unfavorable)
    if plan.trigger and bad.any():
        col, value = plan.trigger
        armed = held.loc[bad, feats].copy()
        armed[col] = value
        out["backdoor_success"] = float((est.predict(armed) == plan.favorable).mean())
        out["backdoor_targets"] = int(bad.sum())
    region = in_region(held, plan.region) & (y == plan.unfavorable) if plan.region else np.zeros(len(y), bool)
    if region.any():
        out["region_success"] = float((pred[region] == plan.favorable).mean())
        out["region_targets"] = int(region.sum())
    return out
