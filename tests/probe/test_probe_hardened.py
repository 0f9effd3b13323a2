"""Against a hardened server (TLS from a test CA, key, rate limit, strict validation, labels only): nothing at medium+."""

from __future__ import annotations

from mlwarden.probe.runner import run_probe
from tests.probe.helpers import assert_bounded, fast, rules

SEVERE = {"critical", "high", "medium"}


def test_hardened_has_no_finding_at_medium_or_above(hardened) -> None:
    run = run_probe(hardened.https, fast(key=hardened.key, ca_file=str(hardened.ca), burst=60))
    severe = {r: s for r, s in rules(run).items() if s in SEVERE}
    assert severe == {}
    assert_bounded(run)
    # it looked, rather than passing by not testing: every family ran and saw the server work
    assert all(not f.skipped for f in run.families.values())
    assert run.families["transport"].metrics["verified"] is True
    assert run.families["access"].metrics["inference_without_key"] == 401
    assert run.families["quotas"].metrics["throttled_after"] is not None
    assert run.families["disclosure"].metrics["probabilities"] == "not exposed"
    cases = run.families["inputs"].metrics["cases"]
    assert cases and all(c["verdict"] == "rejected" for c in cases), cases


def test_untrusted_without_the_ca(hardened) -> None:
    """The same server, probed without its CA: the certificate is untrusted (and nothing else is wrong with it)."""
    run = run_probe(hardened.https, fast(), families=("transport",))
    assert rules(run) == {"endpoint.transport.cert_untrusted": "high"}
