"""Output hardening: what each key sees of the model's answer.

Full probability vectors are what extraction and membership inference feed on (ATLAS
AML.M0002, passive output obfuscation), so a key sees what its policy grants: ``label``
(the predicted class only), ``topk`` (the k most likely classes and, rounded, their
scores) or ``proba`` (every score, rounded to ``decimals``). A detector's ``degrade``
lowers any policy to labels only. Asking for an output the policy withholds is refused
(403), never silently answered with less, so a client knows what it gets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import Forbidden, Invalid
from .keys import OutputPolicy
from .wire import OutTensor, datatype

LABEL, PROBA, TOPK_LABELS, TOPK_SCORES = "predict", "predict_proba", "topk_labels", "topk_scores"
ALL = (LABEL, PROBA, TOPK_LABELS, TOPK_SCORES)


def allowed(policy: OutputPolicy, *, exposes_proba: bool) -> tuple[str, ...]:
    """Output names a key may read."""
    if not exposes_proba or policy.mode == "label":
        return (LABEL,)
    return (LABEL, PROBA) if policy.mode == "proba" else (LABEL, TOPK_LABELS, TOPK_SCORES)


def needs_proba(policy: OutputPolicy, requested: tuple[str, ...], *, exposes_proba: bool, degraded: bool) -> bool:
    names = requested or allowed(policy, exposes_proba=exposes_proba)
    return exposes_proba and not degraded and any(n != LABEL for n in names)


def check_requested(policy: OutputPolicy, requested: tuple[str, ...], *, exposes_proba: bool, key: str) -> None:
    ok = allowed(policy, exposes_proba=exposes_proba)
    for name in requested:
        if name not in ALL:
            raise Invalid(f"unknown output '{name[:60]}'; this model answers: {', '.join(ok)}")
        if name not in ok:
            raise Forbidden(f"API key '{key}' may not read output '{name}' (its output policy is '{policy.mode}')")


def _round(p: np.ndarray, decimals: int | None) -> np.ndarray:
    return p if decimals is None else np.round(p, decimals)


def shape(policy: OutputPolicy, requested: tuple[str, ...], labels: np.ndarray, proba: np.ndarray | None,
          classes: np.ndarray, *, degraded: bool) -> tuple[OutTensor, ...]:
    """The output tensors a key receives for ``labels`` (``[n]``) and ``proba`` (``[n, k]``)."""
    exposes = proba is not None
    names = requested or allowed(policy, exposes_proba=exposes)
    if degraded:
        names = tuple(n for n in names if n == LABEL) or (LABEL,)
    out: list[OutTensor] = []
    lab = _plain(labels)
    for name in names:
        if name == LABEL:
            out.append(OutTensor(LABEL, datatype(lab), lab))
        elif name == PROBA and proba is not None:
            out.append(OutTensor(PROBA, "FP64", _round(proba.astype(np.float64), policy.decimals)))
        elif name in (TOPK_LABELS, TOPK_SCORES) and proba is not None:
            k = max(1, min(policy.top_k, proba.shape[1]))
            order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
            if name == TOPK_LABELS:
                top = _plain(np.asarray(classes)[order])
                out.append(OutTensor(TOPK_LABELS, datatype(top), top))
            else:
                scores = np.take_along_axis(proba.astype(np.float64), order, axis=1)
                out.append(OutTensor(TOPK_SCORES, "FP64", _round(scores, policy.decimals)))
    return tuple(out)


def _plain(a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind in "biuf":
        return a.astype({"b": np.bool_, "i": np.int64, "u": np.uint64, "f": np.float64}[a.dtype.kind])
    return np.asarray([str(v) for v in a.ravel()], dtype=object).reshape(a.shape)


def metadata(policy: OutputPolicy | None, *, exposes_proba: bool, classes: np.ndarray) -> list[dict[str, Any]]:
    """OIP v2 ``outputs`` of the model metadata, as the asking key may read them."""
    lab = datatype(_plain(classes)) if len(classes) else "BYTES"
    meta = {LABEL: {"name": LABEL, "datatype": lab, "shape": [-1]},
            PROBA: {"name": PROBA, "datatype": "FP64", "shape": [-1, len(classes)]},
            TOPK_LABELS: {"name": TOPK_LABELS, "datatype": lab, "shape": [-1, -1]},
            TOPK_SCORES: {"name": TOPK_SCORES, "datatype": "FP64", "shape": [-1, -1]}}
    names = allowed(policy, exposes_proba=exposes_proba) if policy else (LABEL,)
    return [meta[n] for n in names]
