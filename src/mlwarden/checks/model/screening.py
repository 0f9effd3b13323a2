"""The data audit's feedback screen, run on in-memory tables for the poisoning wargame.

The wargame asks what ``data.poisoning.feedback`` would have caught. It drives that very
check — :class:`~mlwarden.checks.poisoning.feedback.FeedbackScreen` — on DataFrames: the
fold's ``init``/``update`` build the state (the training part once, copied per feedback
batch), then the screens of :mod:`mlwarden.checks.poisoning.screens` name the quarantined
rows exactly as the check's ``finalize`` does (triggers first, then flipped-label regions
among the rest, then floods and replays of train). ``finalize`` itself reports at most
200 ids per reason; the wargame needs every row, hence the screens are called here.
tests/checks/model/test_poisoning.py keeps the two counts equal.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...registry import Sources
from ...sources.datasets import Batch, Dataset
from ..poisoning import screens
from ..poisoning.feedback import FeedbackScreen, FeedbackState


class Screen:
    """``data.poisoning.feedback`` against a fixed training table; call it on feedback tables."""

    def __init__(self, spec: Any, train: pd.DataFrame) -> None:
        data = spec.data.model_copy(update={"id": None, "time": None, "feedback": "(wargame feedback)"})
        self.spec = spec.model_copy(update={"data": data})
        table = pa.Table.from_pandas(train, preserve_index=False)
        self.schema = table.schema
        ds = {s: Dataset(split=s, uri=f"(wargame {s})", files=(), schema=table.schema, partitions=())
              for s in ("train", "feedback")}
        self.check = FeedbackScreen(self.spec, Sources(datasets=ds))
        self.base = self.check.init()
        for i, rb in enumerate(table.to_batches(max_chunksize=65_536)):
            self.base = self.check.update(self.base, Batch(split="train", offset=i * 65_536, data=rb))

    def state(self, feedback: pd.DataFrame) -> FeedbackState:
        st = copy.deepcopy(self.base)
        table = pa.Table.from_pandas(feedback[self.schema.names], schema=self.schema, preserve_index=False)
        rb = table.combine_chunks().to_batches()
        return self.check.update(st, Batch(split="feedback", offset=0, data=rb[0])) if rb else st

    def __call__(self, feedback: pd.DataFrame) -> dict[str, np.ndarray]:
        """Row positions of ``feedback`` quarantined, by reason (the check's own reasons)."""
        st = self.state(feedback)
        if not st.fb:
            return {}
        fb = {k: np.concatenate([r[k] for r in st.fb]) for k in st.fb[0]}
        order = np.argsort(fb["\x1ford"], kind="stable")
        fb = {k: v[order] for k, v in fb.items()}
        labels = sorted(set(st.labels.get("train", {})) | set(st.labels.get("feedback", {})),
                        key=lambda h: (str(st.names.get(h)), h))
        c = screens.Ctx(st, labels, fb)
        out: dict[str, list[int]] = {"trigger": screens.union(t["rows"] for t in screens.triggers(c, self.check.features))}
        active = np.ones(fb["\x1fid"].size, bool)
        active[out["trigger"]] = False
        _, flagged = screens.regions(c, self.check.features, self.check.numeric, active)
        out["label_shift_region"] = screens.union(r["rows"] for r in flagged)
        out["flood"], out["replays_train"], _ = screens.floods(c, st.train_hashes)
        ords = fb["\x1ford"]  # screen positions → row positions in ``feedback``
        return {k: np.sort(ords[np.asarray(v, dtype=np.int64)]) for k, v in out.items()}
