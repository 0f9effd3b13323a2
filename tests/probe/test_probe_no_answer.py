"""The probability test reads a missing answer as no answer, never as "not exposed".

A server that answers labels by default and the full vector when asked for ``predict_proba``,
but drops the connection the first time it is asked (a keep-alive closed under the client, a
busy worker), must still be found out: the probe asks again. One that never answers such a
request is reported as inconclusive, not as safe.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from mlwarden.probe.runner import run_probe
from tests.probe import rest_fixture
from tests.probe.helpers import fast, rules


class LabelsUnlessAsked(rest_fixture.Naive):
    """Labels only by default; the probabilities when an output is named, after ``drops`` dropped tries."""

    drops: ClassVar[int] = 1
    seen: ClassVar[list[int]] = [0]
    lock: ClassVar[threading.Lock] = threading.Lock()

    def base_headers(self) -> dict[str, str]:
        return {}

    def infer(self, name: str, raw: bytes) -> None:
        doc = json.loads(raw)
        asked = [o.get("name") for o in doc.get("outputs") or []]
        if not asked:
            return self.answer(200, {"model_name": name, "outputs": [
                {"name": "predict", "datatype": "INT64", "shape": [1], "data": [1]}]})
        with self.lock:
            self.seen[0] += 1
            drop = self.seen[0] <= self.drops
        if drop:
            self.close_connection = True
            self.connection.close()  # no status line, no body: what a dropped keep-alive looks like
            return None
        if asked != ["predict_proba"]:
            return self.answer(400, {"error": f"unknown output {asked}"})
        return self.answer(200, {"model_name": name, "outputs": [
            {"name": "predict_proba", "datatype": "FP64", "shape": [1, 2], "data": [0.1234567, 0.8765433]}]})


def _served(drops: int) -> Iterator[str]:
    handler = type("H", (LabelsUnlessAsked,), {"drops": drops, "seen": [0], "lock": threading.Lock()})
    httpd, thread = rest_fixture.serve(handler)
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/v2/models/loan"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def drops_once() -> Iterator[str]:
    yield from _served(1)


@pytest.fixture
def never_answers() -> Iterator[str]:
    yield from _served(10**6)


def test_a_dropped_request_is_asked_again(drops_once: str) -> None:
    run = run_probe(drops_once, fast(timeout_s=5.0), families=("disclosure",))
    metrics = run.families["disclosure"].metrics
    assert rules(run).get("endpoint.disclosure.probabilities") == "medium", metrics
    assert metrics["probabilities"]["output"] == "predict_proba"


def test_no_answer_is_inconclusive_not_safe(never_answers: str) -> None:
    run = run_probe(never_answers, fast(timeout_s=5.0), families=("disclosure",))
    metrics = run.families["disclosure"].metrics
    assert "endpoint.disclosure.probabilities" not in rules(run)
    assert metrics["probabilities"].startswith("inconclusive: no answer when asking for predict_proba"), metrics
    assert all(t.endswith(":dropped") for t in metrics["probability_outputs_tried"]), metrics
