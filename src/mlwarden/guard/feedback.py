"""The feedback endpoint's sink: screen each labelled batch, quarantine suspects, keep the rest.

A batch is an inference body plus labels (``{"inputs": [...], "labels": [...]}``): its
inputs pass the same schema as queries, its labels must be classes of the model. Then the
data audit's own screen — ``data.poisoning.feedback``, driven on in-memory tables by
:class:`~mlwarden.checks.model.screening.Screen` against the training split — names the
suspect rows (backdoor triggers, flipped-label regions, floods, replays of train). Suspects
go to the ``quarantined`` table with their reasons, the rest to ``accepted``, the table
retraining reads; both in one SQLite file (WAL). The client learns only how many rows were
received: telling it which rows were quarantined would teach a poisoner the screen.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import Invalid
from .schema import InputSchema
from .wire import from_json

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS accepted (batch TEXT, ts REAL, key TEXT, row TEXT);
CREATE TABLE IF NOT EXISTS quarantined (batch TEXT, ts REAL, key TEXT, reasons TEXT, row TEXT);
"""


class FeedbackSink:
    def __init__(self, spec: Any, train: pd.DataFrame, schema: InputSchema, classes: np.ndarray, path: str | Path) -> None:
        from ..checks.model.screening import (
            Screen,  # the data audit's check, loaded only when feedback is on
        )

        self.label = spec.data.label
        self.schema = schema
        self.classes = {str(c): c for c in np.asarray(classes).tolist()}
        cols = [c for c in schema.names if c in train.columns] + [self.label]
        self.train_dtypes = train[cols].dtypes
        self.screen = Screen(spec, train[cols])
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA_SQL)

    def _labels(self, raw: Any, n: int) -> list[Any]:
        if not isinstance(raw, list) or len(raw) != n:
            raise Invalid(f"'labels' must be a list of {n} labels, one per row")
        out = []
        for i, v in enumerate(raw):
            key = str(int(v) if isinstance(v, float) and v.is_integer() else v)
            if isinstance(v, (dict, list)) or key not in self.classes:
                raise Invalid(f"labels row {i}: {str(v)[:40]!r} is not a class of the model "
                              f"({', '.join(sorted(self.classes)[:12])})")
            out.append(self.classes[key])
        return out

    def submit(self, key: str, doc: Any) -> dict[str, Any]:
        call = from_json(doc, "", "", allow=frozenset({"labels", "model_name"}))
        v = self.schema.validate(call)
        labels = self._labels(doc.get("labels"), v.rows)
        frame = v.frame.copy()
        frame[self.label] = labels
        frame = frame.astype({c: t for c, t in self.train_dtypes.items() if c in frame.columns})
        with self._lock:  # one screen at a time: it copies the training state, which is large
            caught = self.screen(frame)
        reasons: dict[int, list[str]] = {}
        for why, rows in caught.items():
            for r in np.asarray(rows).tolist():
                reasons.setdefault(int(r), []).append(why)
        batch, now = uuid.uuid4().hex, time.time()
        records = frame.to_dict(orient="records")
        acc = [(batch, now, key, json.dumps(r, default=str)) for i, r in enumerate(records) if i not in reasons]
        qua = [(batch, now, key, json.dumps(reasons[i]), json.dumps(r, default=str))
               for i, r in enumerate(records) if i in reasons]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO accepted VALUES (?, ?, ?, ?)", acc)
            self._db.executemany("INSERT INTO quarantined VALUES (?, ?, ?, ?, ?)", qua)
            self._db.execute("COMMIT")
        counts = {why: int(np.asarray(rows).size) for why, rows in caught.items() if np.asarray(rows).size}
        return {"batch": batch, "rows": v.rows, "accepted": len(acc), "quarantined": len(qua), "reasons": counts}

    def close(self) -> None:
        with self._lock:
            self._db.close()
