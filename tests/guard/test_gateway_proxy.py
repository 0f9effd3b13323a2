"""The guard as a proxy: a second guard in front of a real OIP v2 server (the first guard) over REST."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.guard.conftest import Guard, body, row, start_guard


@pytest.fixture(scope="module")
def proxy(guard: Guard, guard_pipeline: Path, guard_keys, tmp_path_factory: pytest.TempPathFactory):
    p = start_guard(guard_pipeline, guard_keys[0], tmp_path_factory.mktemp("proxy"), "--no-detect",
                    "--upstream", f"{guard.rest}/v2/models/loan", "--insecure-upstream",
                    env={"MLWARDEN_UPSTREAM_KEY": guard.keys["exact"]})
    p.keys = guard.keys
    yield p
    p.stop()


def _infer(g: Guard, key: str, rows: list[dict]) -> httpx.Response:
    return httpx.post(f"{g.rest}/v2/models/loan/infer", json=body(rows, id="q"), headers={"x-api-key": g.keys[key]},
                      timeout=20)


def test_proxy_answers_as_the_model_behind_it(guard: Guard, proxy: Guard) -> None:
    rows = [row(amount=a, region=r) for a in (10, 200, 900) for r in ("north", "west")]
    direct = _infer(guard, "parity", rows).json()
    via = _infer(proxy, "parity", rows)
    assert via.status_code == 200, via.text
    assert via.json()["outputs"] == direct["outputs"] and via.json()["id"] == "q"
    meta = httpx.get(f"{proxy.rest}/v2/models/loan", headers={"x-api-key": proxy.keys["full"]}).json()
    assert meta["platform"] == "mlwarden-guard/upstream"


def test_proxy_enforces_its_own_schema_keys_and_policies(proxy: Guard) -> None:
    r = _infer(proxy, "full", [row(amount=5000)])
    assert (r.status_code, r.json()) == (400, {"error": "input 'amount' row 0: 5000 is above the maximum 1000"})
    assert [o["name"] for o in _infer(proxy, "label", [row()]).json()["outputs"]] == ["predict"]
    assert _infer(proxy, "other", [row()]).status_code == 403
