"""A real guard on loopback for the gateway tests: generated pipeline, keys, subprocess, clients.

``guard_pipeline`` (session) writes a small loan pipeline: train/test parquet, a
scikit-learn model (a ColumnTransformer with a one-hot region and a random forest) pickled
to disk, and a spec with ranges, a category, a one-hot group and a relational constraint.
``guard_keys`` creates one API key per policy under test. ``guard`` (session) starts
``python -m mlwarden.guard`` on free loopback ports in its own process group, waits
(bounded) for readiness and terminates it at the end; ``start_guard`` starts more (TLS,
kill -9) the same way.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["amount", "income", "region", "home_own", "home_rent", "open_acc", "total_acc"]
REGIONS = ["north", "south", "east", "west"]
SPEC = """\
name: loan
data:
  train: data/train.parquet
  test: data/test.parquet
  label: approve
features:
  amount: {type: int, min: 0, max: 1000}
  income: {type: float, min: 0}
  region: {type: category, values: [north, south, east, west]}
  home_own: {type: int, group: home}
  home_rent: {type: int, group: home}
  open_acc: {type: int, min: 0, max: 50}
  total_acc: {type: int, min: 0, max: 50}
constraints:
  - "open_acc <= total_acc"
model:
  artifact: model.pkl
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loans(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    own = rng.integers(0, 2, n)
    total = rng.integers(1, 40, n)
    df = pd.DataFrame({"amount": rng.integers(20, 400, n), "income": rng.gamma(4, 15, n).round(1),
                       "region": rng.choice(REGIONS, n), "home_own": own, "home_rent": 1 - own,
                       "open_acc": (total * rng.random(n)).astype(np.int64), "total_acc": total})
    logit = 0.04 * df["income"] - 0.01 * df["amount"] + 0.5 * own + 0.3 * (df["region"] == "north") - 0.6
    df["approve"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return df


@pytest.fixture(scope="session")
def guard_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("guarded")
    (root / "data").mkdir()
    train = loans(2000, 1)
    train.to_parquet(root / "data/train.parquet", index=False)
    loans(500, 2).to_parquet(root / "data/test.parquet", index=False)
    pre = ColumnTransformer([("region", OneHotEncoder(handle_unknown="ignore"), ["region"])], remainder="passthrough")
    model = Pipeline([("pre", pre), ("rf", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0))])
    model.fit(train[FEATURES], train["approve"])
    (root / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    (root / "mlwarden.yaml").write_text(SPEC, encoding="utf-8")
    return root / "mlwarden.yaml"


BIG = {"rate": 1e6, "burst": 1_000_000, "daily": 1_000_000_000}
POLICIES: dict[str, dict] = {
    "full": {"output": {"mode": "proba", "decimals": 2}, "quota": BIG, "feedback": True, "metrics": True},
    "exact": {"output": {"mode": "proba", "decimals": None}, "quota": BIG},
    "label": {"output": {"mode": "label"}, "quota": BIG},
    "topk": {"output": {"mode": "topk", "top_k": 1, "decimals": 1}, "quota": BIG},
    "other": {"models": ("other-model",), "output": {"mode": "proba"}, "quota": BIG, "feedback": True},
    "budget20": {"output": {"mode": "label"}, "quota": {"rate": 1e6, "burst": 1_000_000, "daily": 20}},
    "slow": {"output": {"mode": "label"}, "quota": {"rate": 0.5, "burst": 3, "daily": 1000}},
    "slow-grpc": {"output": {"mode": "label"}, "quota": {"rate": 0.5, "burst": 3, "daily": 1000}},
    "fuzz": {"output": {"mode": "proba"}, "quota": BIG},
    "parity": {"output": {"mode": "proba", "decimals": None}, "quota": BIG},
    "load": {"output": {"mode": "proba"}, "quota": BIG},
}


@pytest.fixture(scope="session")
def guard_keys(guard_pipeline: Path) -> tuple[Path, dict[str, str]]:
    from mlwarden.guard.keys import OutputPolicy, Quota, create_key

    path = guard_pipeline.parent / "keys.json"
    out = {}
    for name, p in POLICIES.items():
        out[name] = create_key(path, name, models=tuple(p.get("models", ("*",))), output=OutputPolicy(**p["output"]),
                               quota=Quota(**p["quota"]), feedback=p.get("feedback", False),
                               metrics=p.get("metrics", False))
    return path, out


@dataclass
class Guard:
    rest: str
    grpc: str
    proc: subprocess.Popen
    workdir: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.db"

    @property
    def feedback_db(self) -> Path:
        return self.workdir / "feedback.db"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return int(self.proc.returncode)


def start_guard(spec: Path, keys: Path, workdir: Path, *extra: str, scheme: str = "http",
                verify: object = True, timeout_s: float = 60.0, env: dict[str, str] | None = None) -> Guard:
    workdir.mkdir(parents=True, exist_ok=True)
    port, gport = free_port(), free_port()
    cmd = [sys.executable, "-m", "mlwarden.guard", "--spec", str(spec), "--keys", str(keys), "--port", str(port),
           "--grpc-port", str(gport), "--audit-log", str(workdir / "audit.db"),
           "--feedback-db", str(workdir / "feedback.db"), *extra]
    with open(workdir / "guard.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})})
    g = Guard(f"{scheme}://127.0.0.1:{port}", f"127.0.0.1:{gport}", proc, workdir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"guard exited with {proc.returncode}: {(workdir / 'guard.log').read_text()[-2000:]}")
        try:
            r = httpx.get(f"{g.rest}/v2/health/ready", timeout=1.0, verify=verify, trust_env=False)  # type: ignore[arg-type]
            if r.status_code == 200:
                return g
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    g.stop(signal.SIGKILL)
    raise RuntimeError(f"guard not ready within {timeout_s} s: {(workdir / 'guard.log').read_text()[-2000:]}")


@pytest.fixture(scope="session")
def guard(guard_pipeline: Path, guard_keys: tuple[Path, dict[str, str]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guard]:
    g = start_guard(guard_pipeline, guard_keys[0], tmp_path_factory.mktemp("guard-run"), "--no-detect")
    g.keys = guard_keys[1]
    yield g
    g.stop()


def row(**over: object) -> dict[str, object]:
    """One valid input row; ``over`` replaces values."""
    r: dict[str, object] = {"amount": 120, "income": 55.5, "region": "north", "home_own": 1, "home_rent": 0,
                            "open_acc": 3, "total_acc": 10}
    r.update(over)
    return r


DATATYPES = {"amount": "INT64", "income": "FP64", "region": "BYTES", "home_own": "INT64", "home_rent": "INT64",
             "open_acc": "INT64", "total_acc": "INT64"}


def body(rows: list[dict[str, object]], **extra: object) -> dict[str, object]:
    """An OIP v2 REST infer body with one ``[n, 1]`` tensor per feature."""
    inputs = [{"name": f, "datatype": DATATYPES[f], "shape": [len(rows), 1], "data": [r[f] for r in rows]}
              for f in FEATURES]
    return {"inputs": inputs, **extra}
