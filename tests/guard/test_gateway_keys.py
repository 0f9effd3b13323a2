"""API keys (hashed at rest, constant-time checked, hot-reloaded) and the pipeline's detector and audit wiring."""

from __future__ import annotations

import io
import json
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mlwarden.cli_guard import keys_create
from mlwarden.guard.errors import (
    Forbidden,
    GuardConfigError,
    TooMany,
    Unauthenticated,
    Unavailable,
)
from mlwarden.guard.keys import KeyStore, Quota, create_key
from mlwarden.guard.server import GuardOptions, build
from mlwarden.guard.wire import from_json
from tests.guard.conftest import body, row


def test_keys_create_prints_the_key_once_and_stores_only_a_salted_hash(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    out = io.StringIO()
    assert keys_create(path, "alice", models=["loan"], output="topk", top_k=2, rate=5, burst=7, daily=99,
                       feedback=True, out=out) == 0
    key = out.getvalue().strip()
    text = path.read_text()
    assert key.startswith("mlw_") and key not in text and key.split("_", 2)[2] not in text
    [rec] = json.loads(text)["keys"]
    assert rec["name"] == "alice" and rec["models"] == ["loan"] and rec["kdf"] == {"n": 16384, "r": 8, "p": 1}
    assert rec["output"] == {"mode": "topk", "top_k": 2, "decimals": 2}
    assert rec["quota"] == {"rate": 5, "burst": 7, "daily": 99} and rec["feedback"] is True
    assert len(bytes.fromhex(rec["salt"])) == 16 and len(bytes.fromhex(rec["hash"])) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = create_key(path, "bob")
    assert json.loads(path.read_text())["keys"][1]["salt"] != rec["salt"] and second != key
    with pytest.raises(GuardConfigError, match="a key named 'alice' exists"):
        create_key(path, "alice")
    with pytest.raises(GuardConfigError, match="use 1-100 letters"):
        create_key(path, "bad name!")
    with pytest.raises(GuardConfigError, match="quotas must be positive"):
        create_key(path, "carol", quota=Quota(rate=0))


def test_keystore_verifies_rejects_and_picks_up_new_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    a = create_key(path, "a")
    store = KeyStore(path)
    assert store.authenticate(a).name == "a" and store.authenticate(a).name == "a"  # second time from memory
    for bad in (a[:-1] + ("x" if a[-1] != "x" else "y"), "mlw_" + "0" * 12 + "_secret", "Bearer", "", None):
        with pytest.raises(Unauthenticated):
            store.authenticate(bad)
    b = create_key(path, "b")  # written while the store is running
    assert store.authenticate(b).name == "b"
    assert len(store) == 2


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str | None
    score: float


class Scripted:
    """A stand-in detector that answers a fixed script of actions (the real one has its own tests)."""

    def __init__(self, actions: list[str]) -> None:
        self.actions = list(actions)
        self.seen: list[np.ndarray] = []

    def observe(self, key: str, rows: np.ndarray, state: object) -> Decision:
        self.seen.append(rows)
        a = self.actions.pop(0) if self.actions else "allow"
        return Decision(a, None if a == "allow" else f"scripted {a}", 0.9 if a != "allow" else 0.0)


@pytest.fixture
def gateway(guard_pipeline: Path, guard_keys, tmp_path: Path):
    b = build(GuardOptions(spec=guard_pipeline, keys=guard_keys[0], audit_log=tmp_path / "audit.db",
                           feedback_db=tmp_path / "fb.db", detect=False))
    yield b.gateway, guard_keys[1]
    for c in b.closers:
        c.close()


def _call(gw, key: str, rows: list[dict]):
    return gw.call("rest", key, "loan", "", "test", lambda: from_json(body(rows), "loan", ""))


def test_detector_decisions_shape_the_answer_and_reach_the_audit_log(gateway, tmp_path: Path) -> None:
    gw, keys = gateway
    gw.detector = Scripted(["allow", "log", "degrade", "throttle", "block"])
    assert [o.name for o in _call(gw, keys["full"], [row()]).outputs] == ["predict", "predict_proba"]
    assert [o.name for o in _call(gw, keys["full"], [row()]).outputs] == ["predict", "predict_proba"]
    assert [o.name for o in _call(gw, keys["full"], [row()]).outputs] == ["predict"]  # degraded: labels only
    with pytest.raises(TooMany) as e:
        _call(gw, keys["full"], [row()])
    assert e.value.retry_after == 5.0
    with pytest.raises(Forbidden, match="API key 'full' is blocked: its queries look like an attack"):
        _call(gw, keys["full"], [row()])
    seen = gw.detector.seen[0]
    assert seen.shape == (1, 7) and seen[0, 0] == 120 and seen[0, 2] == 0.0  # 'north': index 0 of the spec's values
    import sqlite3

    with sqlite3.connect(tmp_path / "audit.db") as db:
        events = [json.loads(e) for (e,) in db.execute("SELECT event FROM log ORDER BY seq")]
    assert [e.get("detection", {}).get("action") for e in events] == [None, "log", "degrade", "throttle", "block"]
    assert [e["status"] for e in events] == [200, 200, 200, 429, 403]
    assert all(e["key"] == "full" and e["rows"] == 1 and len(e["input_sha256"]) == 64 for e in events)


def test_no_answer_leaves_without_its_audit_entry(gateway) -> None:
    gw, keys = gateway

    class Broken:
        def append(self, event: dict) -> int:
            raise OSError("disk full")

    gw.audit = Broken()
    with pytest.raises(Unavailable, match="the audit log is unavailable; the request was not served"):
        _call(gw, keys["full"], [row()])


def test_the_real_detector_blocks_a_boundary_walk_and_passes_varied_traffic(guard_pipeline: Path, guard_keys,
                                                                           tmp_path: Path) -> None:
    from tests.guard.conftest import FEATURES, loans

    b = build(GuardOptions(spec=guard_pipeline, keys=guard_keys[0], audit_log=tmp_path / "audit.db",
                           feedback_db=tmp_path / "fb.db"))
    gw, keys = b.gateway, guard_keys[1]
    try:
        assert gw.detector is not None
        for r in loans(60, 21)[FEATURES].to_dict(orient="records"):  # held-out rows, one a request
            _call(gw, keys["exact"], [r])
        outcomes = []
        for i in range(80):  # HopSkipJump-like: tiny steps from one row
            try:
                _call(gw, keys["parity"], [row(income=round(55.5 + 0.01 * i, 2))])
                outcomes.append("ok")
            except (Forbidden, TooMany) as e:
                outcomes.append(type(e).__name__)
        assert "Forbidden" in outcomes, outcomes
        first = outcomes.index("Forbidden")
        assert first < 40 and all(o == "Forbidden" for o in outcomes[first:])
    finally:
        for c in b.closers:
            c.close()
    import sqlite3

    with sqlite3.connect(tmp_path / "audit.db") as db:
        events = [json.loads(e) for (e,) in db.execute("SELECT event FROM log ORDER BY seq")]
    benign = [e for e in events if e["key"] == "exact"]
    assert len(benign) == 60 and all(e["status"] == 200 and "detection" not in e for e in benign)
    blocked = [e for e in events if e["key"] == "parity" and e["status"] == 403]
    assert blocked and blocked[0]["detection"]["action"] == "block" and blocked[0]["detection"]["reason"]
