"""Ordinary scikit-learn models saved with joblib scan clean and load through the safe loader.

Their inline arrays are raw bytes: read the way ``pickle.load`` reads a joblib file (the
scanner's second reading), those bytes look like random opcodes. The real unpickler stops
at the first one it cannot follow, so nothing after that point may be reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from joblib import dump
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlwarden.findings import Severity
from mlwarden.loader import load_model
from mlwarden.scan import scan_path
from mlwarden.scan.policy import Policy


def _data(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 600
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n), "c": rng.integers(0, 50, n),
                      "r": rng.choice(["n", "s", "e", "w"], n)})
    y = (X.a + 0.3 * X.b + rng.normal(scale=0.5, size=n) > 0.5).astype(int).to_numpy()
    return X, y


def _models(seed: int) -> dict:
    num = ["a", "b", "c"]
    pre = ColumnTransformer([("num", StandardScaler(), num), ("cat", OneHotEncoder(handle_unknown="ignore"), ["r"])])
    return {
        "hgb": (HistGradientBoostingClassifier(max_iter=30, random_state=seed), num),
        "rf": (RandomForestClassifier(n_estimators=15, random_state=seed), num),
        "lr": (LogisticRegression(), num),
        "pipeline": (make_pipeline(pre, LogisticRegression()), num + ["r"]),
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("compress", [0, 3])
def test_sklearn_models_scan_clean(tmp_path, seed: int, compress: int) -> None:
    X, y = _data(seed)
    for name, (model, cols) in _models(seed).items():
        model.fit(X[cols], y)
        path = tmp_path / f"{name}-{seed}-{compress}.joblib"
        dump(model, path, compress=compress)
        result = scan_path(str(path), policy=Policy())
        noisy = [f"{i.severity.value} {i.kind}: {i.message}" for i in result.issues
                 if i.severity.rank >= Severity.MEDIUM.rank]
        assert noisy == [], (name, noisy)
        loaded = load_model(path)
        assert np.array_equal(loaded.predict(X[cols]), model.predict(X[cols]))


def test_a_payload_hidden_in_array_bytes_is_still_found(tmp_path, monkeypatch) -> None:
    """The other side of the rule above: array bytes that *are* valid opcodes run under pickle.load."""
    import joblib.numpy_pickle as jnp
    from test_pickle_reproducers import loader_resolves

    # Without alignment (as joblib < 1.2 wrote) no 0xff padding stops pickle.load before the bytes.
    init = jnp.NumpyArrayWrapper.__init__

    def unaligned(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.numpy_array_alignment_bytes = None

    monkeypatch.setattr(jnp.NumpyArrayWrapper, "__init__", unaligned)
    payload = b"cos\nsystem\n(S'echo hidden'\ntR0"  # GLOBAL, MARK, STRING, TUPLE, REDUCE, POP
    path = tmp_path / "hidden.joblib"
    dump({"weights": np.frombuffer(payload, dtype=np.uint8).copy()}, path)
    assert any(g.endswith(".system") for g in loader_resolves(path, "pickle"))  # pickle.load reaches it
    assert "os.system" not in " ".join(loader_resolves(path, "joblib"))  # joblib.load does not
    result = scan_path(str(path), policy=Policy())
    assert any(i.severity is Severity.CRITICAL and "os.system" in i.message for i in result.issues), \
        [i.message for i in result.issues]
