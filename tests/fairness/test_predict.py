"""The Predictor: prediction columns, the safe-loaded demo model, favorable-label matching."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import pyarrow.parquet as pq

from mlwarden.errors import SourceError
from mlwarden.fairness import predict
from mlwarden.fairness.predict import Predictor
from mlwarden.sources.model import LocalModel
from mlwarden.spec import parse_spec


def _spec(extra: str, tmp: Path):
    return parse_spec(f"name: t\ndata:\n  test: t.parquet\n  label: y\n{extra}", tmp / "mlwarden.yaml")


def test_favorable_is_tolerant_of_number_spellings(tmp_path: Path) -> None:
    pr = Predictor(_spec("  prediction: p\n", tmp_path))
    assert pr.favorable(np.array([1, 0, 1])).tolist() == [True, False, True]
    assert pr.favorable(np.array([1.0, 0.0, np.nan])).tolist() == [True, False, False]
    assert pr.favorable(np.array(["1", "0", "1.0", None], dtype=object)).tolist() == [True, False, True, False]
    assert pr.favorable(np.array([True, False])).tolist() == [True, False]


def test_favorable_text_labels_match_exactly(tmp_path: Path) -> None:
    pr = Predictor(_spec("  prediction: p\nfairness:\n  favorable: approved\n", tmp_path))
    assert pr.favorable(np.array(["approved", "denied", "Approved "], dtype=object)).tolist() == [True, False, False]
    assert pr.favorable(np.array([1, 0])).tolist() == [False, False]


def test_prediction_and_score_columns(tmp_path: Path) -> None:
    pr = Predictor(_spec("  prediction: p\n  score: s\n", tmp_path))
    assert pr.available and pr.source == "column"
    rb = pa.record_batch({"y": [1, 0], "p": [1, 0], "s": pa.array([0.9, None])})
    pred, score = pr.predict(rb)
    assert pred.tolist() == [1, 0]
    assert score[0] == 0.9 and np.isnan(score[1])
    assert pr.columns(["y", "p", "s", "x"]) == ["p", "s"]


def test_no_model_and_no_column_is_unavailable(tmp_path: Path) -> None:
    assert not Predictor(_spec("", tmp_path)).available


def test_demo_model_predicts_through_the_safe_loader(demo_dir: Path) -> None:
    from mlwarden.spec import load_spec

    pr = Predictor(load_spec(demo_dir / "mlwarden.yaml"))
    pr2 = pickle.loads(pickle.dumps(pr))  # pickles without the model
    assert pr2.artifact == pr.artifact and pr.source == "model"
    test = pq.read_table(demo_dir / "data" / "test.parquet")
    feats = pr2.feature_columns(test.column_names)
    assert "approve" not in feats and "race" not in feats and "loanamt" in feats
    pred, score = pr2.predict(test.slice(0, 50).to_batches()[0])
    assert pred.shape == (50,) and score is not None and ((score >= 0) & (score <= 1)).all()
    assert len(predict._MODELS) >= 1
    model = pr2.model()
    assert pr2.model() is model  # cached per (path, mtime, size)
    assert isinstance(model, LocalModel) and model.kind == "local" and model.schema.names == feats
    X = test.slice(0, 50).to_pandas()[feats]
    assert (pred == model.estimator.predict(X)).all()
    fav = list(model.classes).index(1)
    assert np.allclose(score, model.estimator.predict_proba(X)[:, fav], rtol=0, atol=0)
    assert model.budget.limit is None and model.budget.used >= 100  # fairness decisions: counted, unlimited


def test_endpoint_only_spec_is_available_and_needs_the_server(tmp_path: Path) -> None:
    pr = Predictor(_spec("model:\n  endpoint: http://127.0.0.1:9/v2/models/m\n", tmp_path))
    assert pr.available and pr.source == "endpoint" and pr.artifact is None
    rb = pa.record_batch({"y": [1, 0], "x": [0.5, 1.5]})
    assert pr.feature_columns(rb.schema.names) == ["x"]
    with pytest.raises(SourceError, match="cannot connect"):
        pr.predict(rb)
