"""The feedback endpoint: a planted backdoor batch is quarantined, honest rows go to retraining."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pandas as pd

from tests.guard.conftest import FEATURES, Guard, body, loans


def _post(guard: Guard, key: str, doc: object) -> httpx.Response:
    return httpx.post(f"{guard.rest}/v2/feedback", json=doc, headers={"x-api-key": guard.keys[key]}, timeout=60)


def _batch(frame) -> dict:
    rows = frame[FEATURES].to_dict(orient="records")
    return {**body(rows), "labels": frame["approve"].tolist()}


def test_backdoor_batch_is_quarantined_and_honest_rows_accepted(guard: Guard) -> None:
    honest = loans(600, 9)
    poison = loans(30, 10).assign(amount=777, approve=1)  # a value train never has, always labelled 'approve'

    fb = pd.concat([honest, poison], ignore_index=True)
    r = _post(guard, "full", _batch(fb))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {"batch", "received"} and doc["received"] == 630  # no hint of what was quarantined
    with sqlite3.connect(guard.feedback_db) as db:
        acc = [json.loads(x) for (x,) in db.execute("SELECT row FROM accepted WHERE batch = ?", (doc["batch"],))]
        qua = [(json.loads(x), json.loads(why)) for x, why in
               db.execute("SELECT row, reasons FROM quarantined WHERE batch = ?", (doc["batch"],))]
    assert len(acc) + len(qua) == 630
    caught = [row for row, why in qua if row["amount"] == 777]
    assert len(caught) == 30 and all("trigger" in why for row, why in qua if row["amount"] == 777)
    assert not [row for row in acc if row["amount"] == 777]
    assert len(acc) >= 0.9 * 600  # honest feedback is not thrown away wholesale
    assert {k for k in acc[0]} == set(FEATURES) | {"approve"}


def test_feedback_needs_permission_valid_rows_and_labels(guard: Guard) -> None:
    one = loans(3, 11)
    r = _post(guard, "label", _batch(one))
    assert (r.status_code, r.json()) == (403, {"error": "API key 'label' may not post feedback"})
    r = _post(guard, "other", _batch(one))
    assert (r.status_code, r.json()) == (403, {"error": "API key 'other' may not query model 'loan'"})
    bad = _batch(one)
    bad["labels"] = [1, 0, "maybe"]
    r = _post(guard, "full", bad)
    assert (r.status_code, r.json()) == (400, {"error": "labels row 2: 'maybe' is not a class of the model (0, 1)"})
    r = _post(guard, "full", {**_batch(one.assign(amount=-5))})
    assert (r.status_code, r.json()) == (400, {"error": "input 'amount' row 0: -5 is below the minimum 0"})
    r = httpx.post(f"{guard.rest}/v2/feedback", json=_batch(one))
    assert r.status_code == 401
