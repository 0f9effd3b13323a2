"""What answers behind the guard: the spec's model, safe-loaded, or an upstream OIP v2 server.

Both come through :func:`mlwarden.sources.model.open_model` (the artifact only through the
safe loader, which scans it first) or :func:`~mlwarden.sources.endpoint.open_endpoint_model`
(the upstream, with its own key and TLS rules), so the guard sees the same schema and
classes the audit does. The guard's own quotas replace the audit's query budget, hence an
unlimited one here. An upstream failure becomes :class:`~.errors.UpstreamFailed` (502),
with the upstream's message kept out of the client's answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MlwardenError, SourceError
from ..registry import Sources
from ..sources.model import FeatureSchema, Model, QueryBudget, open_model
from .errors import UpstreamFailed

log = logging.getLogger("mlwarden.guard")
TRAIN_ROWS = 200_000


def train_sample(spec: Any, max_rows: int = TRAIN_ROWS) -> pd.DataFrame | None:
    """The training split (evenly spaced rows past ``max_rows``), or None when the spec has none."""
    uri = spec.datasets().get("train")
    if uri is None:
        return None
    from ..checks.model.base import read_split
    from ..sources.datasets import open_dataset

    ctx = SimpleNamespace(sources=Sources(datasets={"train": open_dataset("train", uri)}))
    return read_split(ctx, "train", max_rows=max_rows).frame  # type: ignore[arg-type]


@dataclass
class Backend:
    model: Model
    kind: str
    """'local' (safe-loaded artifact) or 'upstream' (proxied endpoint)."""

    @property
    def schema(self) -> FeatureSchema:
        return self.model.schema

    @property
    def classes(self) -> np.ndarray:
        return self.model.classes

    @property
    def exposes_proba(self) -> bool:
        return self.model.exposes_proba

    def predict(self, frame: pd.DataFrame, *, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            labels = self.model.predict(frame)
            scores = self.model.predict_proba(frame) if proba and self.exposes_proba else None
        except MlwardenError as e:
            log.warning("backend failed: %s", e)
            raise UpstreamFailed("the model could not answer; try again later") from None
        return labels, scores

    def ready(self) -> bool:
        if self.kind == "local":
            return True
        try:
            return bool(self.model.client.model_ready())  # type: ignore[attr-defined]
        except MlwardenError:
            return False

    def close(self) -> None:
        client = getattr(self.model, "client", None)
        if client is not None:
            client.close()


def open_backend(spec: Any, data: pd.DataFrame | None, *, upstream: str | None = None,
                 upstream_key: str | None = None, insecure_upstream: bool = False) -> Backend:
    """The model to guard: ``upstream`` when given, else the spec's artifact, else its endpoint."""
    budget = QueryBudget(None)
    url = upstream or (spec.model.endpoint if spec.model and not spec.model.artifact else None)
    if url:
        from ..sources.endpoint import open_endpoint_model

        excluded = {spec.data.label, spec.data.id, spec.data.time, spec.data.prediction, spec.data.score} - {None}
        try:
            model = open_endpoint_model(url, spec=spec, data=data, budget=budget, excluded=excluded,
                                        api_key=upstream_key, insecure=insecure_upstream)
        except SourceError as e:
            raise SourceError(f"upstream {url}: {e}") from None
        return Backend(model, "upstream")
    return Backend(open_model(spec, data=data, budget=budget, prefer="artifact"), "local")
