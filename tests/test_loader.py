"""The safe model loader: real models round-trip; payloads are refused and never run."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from mlwarden.errors import SourceError
from mlwarden.loader import UnsafeArtifactError, load_model


@pytest.fixture(scope="module")
def models() -> tuple[np.ndarray, list[Any]]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(150, 6, random_state=0)
    X[:, 0] = np.arange(150) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return X, [LogisticRegression().fit(X, y), RandomForestClassifier(5, random_state=0).fit(X, y),
                   HistGradientBoostingClassifier(max_iter=10, categorical_features=[0]).fit(X, y)]


@pytest.mark.parametrize("how", ["joblib", "joblib-3", "joblib-lzma", "pickle"])
def test_models_round_trip(models: tuple[np.ndarray, list[Any]], how: str, tmp_path: Path) -> None:
    X, fitted = models
    for i, model in enumerate(fitted):
        path = tmp_path / f"m{i}.{how}"
        if how == "pickle":
            path.write_bytes(pickle.dumps(model, protocol=5))
        else:
            compress = {"joblib": 0, "joblib-3": 3, "joblib-lzma": ("lzma", 3)}[how]
            joblib.dump(model, path, compress=compress)
        loaded = load_model(path)
        assert type(loaded) is type(model)
        assert (loaded.predict(X) == model.predict(X)).all()


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["joblib", "joblib-3", "pickle"])
def test_malicious_file_refused_and_payload_not_run(how: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "models" / "m.joblib"
    path.parent.mkdir()
    obj = {"weights": np.ones(1000), "hook": Payload(marker)}
    if how == "pickle":
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        joblib.dump(obj, path, compress=3 if how == "joblib-3" else 0)
    with pytest.raises(UnsafeArtifactError) as err:
        load_model(path)
    assert str(err.value).startswith(f"{path}: refuses to load {os.system.__module__}.system")
    assert not marker.exists()


def test_allow_admits_an_unknown_class_but_never_a_gadget(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x04\x8c\x0bcollections\x8c\x08UserDict\x93)R.")
    with pytest.raises(UnsafeArtifactError, match="collections.UserDict"):
        load_model(path)
    assert type(load_model(path, allow=["collections.UserDict"])).__name__ == "UserDict"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(UnsafeArtifactError, match="known code-execution gadget"):
        load_model(bad, allow=["os.system"])


@pytest.mark.parametrize("compress", [0, 3])
def test_truncated_file_is_a_source_error(models: tuple[np.ndarray, list[Any]], compress: int,
                                          tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump(models[1][1], path, compress=compress)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError) as err:
        load_model(path)
    assert not isinstance(err.value, UnsafeArtifactError)
    assert "corrupt or truncated" in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="model file not found"):
        load_model(tmp_path / "nope.joblib")


def test_torch_zip_checkpoint_loads_weights_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(3)}, path)
    assert load_model(path)["w"].sum().item() == 3.0
