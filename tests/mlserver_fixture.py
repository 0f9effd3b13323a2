"""A real Open Inference Protocol v2 server on loopback: Seldon MLServer 1.7 with its sklearn runtime.

Registered once, in tests/conftest.py, so every test folder shares one server per session.

The session fixture trains small scikit-learn models on generated data, writes MLServer's
model-settings.json/settings.json (loopback only, free ports, ``parallel_workers: 0``),
starts ``.venv-mlserver/bin/mlserver start DIR`` in its own process group, waits (bounded)
until every model is ready, and kills the group at the end. ``make mlserver`` (a
prerequisite of ``make test``) creates that venv; without it these tests skip.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
MLSERVER = Path(os.environ.get("MLWARDEN_MLSERVER", ROOT / ".venv-mlserver" / "bin" / "mlserver"))
FEATURES = ["income", "age", "debt", "accounts"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_data(n: int = 1500, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "income": rng.lognormal(10.5, 0.5, n).round(2),
        "age": rng.integers(18, 80, n),
        "debt": rng.gamma(2.0, 5000.0, n).round(2),
        "accounts": rng.integers(0, 12, n),
    })
    z = 1.2 * (np.log(df.income) - 10.5) - df.debt / 15000 + 0.02 * (df.age - 45) + rng.normal(0, 0.7, n)
    df["approved"] = (z > -0.3).astype(np.int64)
    return df


@dataclass
class Served:
    rest: str
    grpc: str
    data: pd.DataFrame
    models: dict[str, Any]
    proc: subprocess.Popen

    def rest_url(self, name: str) -> str:
        return f"{self.rest}/v2/models/{name}"

    def grpc_url(self, name: str) -> str:
        return f"{self.grpc}/{name}"


def _train(folder: Path, data: pd.DataFrame) -> dict[str, Any]:
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data[FEATURES], data["approved"]
    models: dict[str, Any] = {
        "lr": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y),
        "rf": RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0).fit(X, y),
        # fitted on a bare array and served with a declared [-1, 4] input: the one-tensor layout
        "lr_matrix": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X.to_numpy(np.float64), y),
        # a regressor: MLServer refuses predict_proba, so the endpoint exposes labels only
        "reg": LinearRegression().fit(X, y),
    }
    for name, est in models.items():
        d = folder / name
        d.mkdir()
        joblib.dump(est, d / "model.joblib")
        settings: dict[str, Any] = {"name": name, "implementation": "mlserver_sklearn.SKLearnModel",
                                    "parameters": {"uri": "./model.joblib"}}
        if name == "lr_matrix":
            settings["inputs"] = [{"name": "features", "datatype": "FP64", "shape": [-1, len(FEATURES)]}]
        (d / "model-settings.json").write_text(json.dumps(settings))
    return models


def _ready(rest: str, names: list[str]) -> bool:
    try:
        for path in ["/v2/health/ready", *[f"/v2/models/{n}/ready" for n in names]]:
            with urllib.request.urlopen(rest + path, timeout=2) as r:
                if r.status != 200:
                    return False
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory: pytest.TempPathFactory):
    if not MLSERVER.exists():
        pytest.skip("MLServer is not installed: run `make mlserver` (part of `make test`) to create .venv-mlserver")
    folder = tmp_path_factory.mktemp("mlserver")
    data = make_data()
    models = _train(folder, data)
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http, "grpc_port": grpc_port, "metrics_port": metrics,
        # MLServer's parallel inference pool crashes under the uvloop it installs; serve in-process
        "parallel_workers": 0, "debug": False,
    }))
    log = open(folder / "mlserver.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{MLSERVER.parent}:{env.get('PATH', '')}"
    proc = subprocess.Popen([str(MLSERVER), "start", str(folder)], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    rest = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 120  # a cold start on a loaded 2-core machine takes ~10-30 s
        while not _ready(rest, list(models)):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "mlserver.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"MLServer did not become ready (exit {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield Served(rest, f"grpc://127.0.0.1:{grpc_port}", data, models, proc)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
