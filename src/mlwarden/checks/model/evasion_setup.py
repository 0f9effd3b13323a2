"""What both evasion checks prepare: the model, the encoded space, the cost, targets and seeds.

Targets are ``attacks.targets`` rows of the first labelled eval split (test, production,
feedback), a deterministic sample when the split is larger; the seed pool is the training
split (at most ``POOL_ROWS`` evenly spaced rows), or the eval rows that are not targets when
there is no training split. Spec constraints are parsed and their columns checked against the
data here, so a typo in a column name is one clear error, not a silently unenforced rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...attacks.cost import CostModel
from ...attacks.space import Space
from ...constraints import ConstraintError, parse_all
from ...registry import AuditContext, Skip
from ...sources.model import Model
from .base import ModelCheck, read_split

POOL_ROWS = 20_000


@dataclass
class Setup:
    model: Model
    space: Space
    costm: CostModel
    split: str
    X: np.ndarray
    """Encoded targets (all sampled eval rows)."""
    y: np.ndarray
    """Index of each target's true class in ``model.classes`` (-1: a label the model does not know)."""
    ids: list[Any]
    pool: np.ndarray
    pool_y: np.ndarray
    rows_total: int


def eval_split(ctx: AuditContext) -> str:
    for s in ("test", "production", "feedback"):
        if s in ctx.sources.datasets and ctx.spec.data.label in ctx.sources.columns(s):
            return s
    raise Skip("needs a labelled eval split (data.test, data.production or data.feedback with the label column)")


def class_index(classes: np.ndarray, labels: pd.Series) -> np.ndarray:
    """Index of each label in ``classes`` (compared as text when the types differ), -1 when unknown."""
    lookup = {str(c): i for i, c in enumerate(classes.tolist())}
    return np.array([lookup.get(str(v), lookup.get(str(int(v)) if isinstance(v, float) and v.is_integer() else "", -1))
                     for v in labels.tolist()], dtype=int)


def prepare(check: ModelCheck, ctx: AuditContext) -> Setup:
    spec = check.spec
    label = spec.data.label
    split = eval_split(ctx)
    cols = [c for c in ctx.sources.columns(split)]
    ev = read_split(ctx, split)
    train = read_split(ctx, "train", max_rows=POOL_ROWS).frame if "train" in ctx.sources.datasets else None
    model = check.open(train if train is not None else ev.frame)
    names = model.schema.names
    missing = [n for n in names if n not in cols]
    if missing:
        raise Skip(f"data.{split} lacks columns the model reads: {', '.join(missing[:8])}")
    try:
        cons = parse_all(spec.constraints, list(cols))
    except ConstraintError as e:
        raise Skip(str(e)) from None
    space = Space.build(model.schema, cons)
    costm = CostModel.fit(model.schema, train if train is not None else ev.frame)
    frame = ev.frame
    rng = check.rng(1)
    n = min(spec.attacks.targets, len(frame))
    pick = np.sort(rng.choice(len(frame), size=n, replace=False)) if n < len(frame) else np.arange(len(frame))
    targets = frame.iloc[pick].reset_index(drop=True)
    rest = frame.drop(index=frame.index[pick]) if train is None else train
    ids = targets[spec.data.id].tolist() if spec.data.id and spec.data.id in targets.columns else pick.tolist()
    pool = rest[[c for c in names]] if all(c in rest.columns for c in names) else targets[names].iloc[:0]
    return Setup(model=model, space=space, costm=costm, split=split, X=space.encode(targets[names]),
                 y=class_index(model.classes, targets[label]), ids=ids, pool=space.encode(pool),
                 pool_y=class_index(model.classes, rest[label]) if label in rest.columns else np.full(len(pool), -1),
                 rows_total=ev.rows_total)


def clean_predictions(setup: Setup) -> np.ndarray:
    """Index of each target's predicted class (one query per target)."""
    pred = setup.model.predict(setup.space.frame(setup.X))
    return class_index(setup.model.classes, pd.Series(pred))
