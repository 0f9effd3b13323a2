"""Attacks on the API-key check: fresh wrong secrets (CPU burn, guessing) and timing that reveals which ids exist.

In process against a real :class:`KeyStore` with a hand-driven clock (no wall-clock asserts): the
scrypt work is counted by wrapping the real ``_digest``. Then end to end against the real guard:
a flood of wrong secrets meets 429 with Retry-After on REST and RESOURCE_EXHAUSTED on gRPC, while
the legitimate key, already verified, keeps working.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest

from mlwarden.guard import keys as keys_mod
from mlwarden.guard.authlimit import FailureLimiter, FailurePolicy, client_host
from mlwarden.guard.errors import TooMany, Unauthenticated
from mlwarden.guard.keys import KeyStore, create_key
from tests.guard.conftest import Guard, body, row, start_guard


class Scrypts(list[bytes]):
    """Salts of the scrypt calls, in order; ``kdfs`` their cost parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.kdfs: list[dict[str, int]] = []

    def clear(self) -> None:
        super().clear()
        self.kdfs.clear()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Scrypts:
    """Every scrypt the key store runs (the real function still runs)."""
    calls = Scrypts()
    real = keys_mod._digest

    def spy(secret: str, salt: bytes, kdf: dict[str, int]) -> bytes:
        calls.append(salt)
        calls.kdfs.append(dict(kdf))
        return real(secret, salt, kdf)

    monkeypatch.setattr(keys_mod, "_digest", spy)
    return calls


def _wrong(key: str, i: int) -> str:
    return key.rsplit("_", 1)[0] + f"_wrong-secret-{i}"


def test_unknown_ids_cost_one_scrypt_like_known_ones(tmp_path: Path, counted: Scrypts) -> None:
    path = tmp_path / "keys.json"
    key = create_key(path, "a")
    counted.clear()
    store = KeyStore(path, failures=FailurePolicy(free=100))
    known_wrong = _wrong(key, 1)
    unknown = "mlw_" + ("0" * 12 if key[4:16] != "0" * 12 else "1" * 12) + "_wrong-secret-1"
    for presented in (known_wrong, unknown):
        with pytest.raises(Unauthenticated) as e:
            store.authenticate(presented, "10.0.0.1:5000")
        assert e.value.message == "invalid API key"  # one message for both
    assert len(counted) == 2  # one scrypt each: the unknown id was hashed too, against the dummy record
    rec_salt = bytes.fromhex(next(iter(store._by_id.values())).salt)
    assert counted[0] == rec_salt and counted[1] != rec_salt
    assert counted.kdfs[0] == counted.kdfs[1] == {"n": 1 << 14, "r": 8, "p": 1}  # the same cost parameters, not a cheaper hash
    # neither string costs a second scrypt, and a string that is not shaped like a key costs none
    for presented in (known_wrong, unknown, "not-a-key", "mlw_zz_x"):
        with pytest.raises(Unauthenticated):
            store.authenticate(presented, "10.0.0.1:5000")
    assert len(counted) == 2


def test_wrong_secrets_for_a_valid_id_are_throttled_with_backoff_then_the_key_works(
        tmp_path: Path, counted: Scrypts) -> None:
    path = tmp_path / "keys.json"
    key = create_key(path, "victim")
    clock = Clock()
    policy = FailurePolicy(free=3, base_s=2.0, cap_s=30.0)
    store = KeyStore(path, failures=policy, clock=clock)
    counted.clear()
    # many attackers (one address each) guessing one id: the id's own count locks it
    for i in range(3):
        with pytest.raises(Unauthenticated):
            store.authenticate(_wrong(key, i), f"10.0.1.{i}:40000")
    with pytest.raises(Unauthenticated):
        store.authenticate(_wrong(key, 3), "10.0.1.3:40000")  # the 4th failure: locks the id for 2 s
    assert len(counted) == 4
    refused = 0
    for i in range(4, 54):  # a flood while locked: refused before any scrypt, and it does not extend the lock
        with pytest.raises(TooMany) as e:
            store.authenticate(_wrong(key, i), f"10.0.2.{i}:40000")
        refused += 1
        assert "for this key id" in e.value.message and 0 < e.value.retry_after <= 2.0
    assert refused == 50 and len(counted) == 4
    # even the right key waits out the (bounded) lock if it was never verified here...
    with pytest.raises(TooMany):
        store.authenticate(key, "10.9.9.9:1")
    clock.t += 2.0
    assert store.authenticate(key, "10.9.9.9:1").name == "victim"  # ...and works once it ends
    assert store.limiter.failures("id:" + key[4:16], clock.t) == 0  # a verified key clears its id's count
    # back-off doubles and is capped
    assert [policy.lock_s(n) for n in range(1, 10)] == [0, 0, 0, 2, 4, 8, 16, 30, 30]


def test_a_verified_key_is_never_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = create_key(path, "busy")
    clock = Clock()
    store = KeyStore(path, failures=FailurePolicy(free=1, base_s=60.0, cap_s=600.0), clock=clock)
    assert store.authenticate(key, "10.0.0.5:1").name == "busy"
    for i in range(2):
        with pytest.raises(Unauthenticated):
            store.authenticate(_wrong(key, i), "10.0.0.66:1")
    with pytest.raises(TooMany):
        store.authenticate(_wrong(key, 9), "10.0.0.66:1")
    # the holder, verified before the attack, goes on from memory — from any address
    assert store.authenticate(key, "10.0.0.5:1").name == "busy"
    assert store.authenticate(key, "10.0.0.66:1").name == "busy"


def test_one_address_spraying_random_ids_is_throttled(tmp_path: Path, counted: Scrypts) -> None:
    path = tmp_path / "keys.json"
    create_key(path, "a")
    clock = Clock()
    store = KeyStore(path, failures=FailurePolicy(free=5, base_s=1.0, cap_s=60.0), clock=clock)
    counted.clear()
    statuses = []
    for i in range(40):  # a fresh id each time: only the address count can stop it
        try:
            store.authenticate(f"mlw_{i:012x}_guess", "ipv4:192.0.2.7:5555")
        except Unauthenticated:
            statuses.append(401)
        except TooMany as e:
            statuses.append(429)
            assert "from this address" in e.message
        clock.t += 0.1
    assert statuses[:6] == [401] * 6 and statuses.count(429) >= 30
    assert len(counted) == statuses.count(401)  # each 401 cost one scrypt; no 429 did
    # another address is not affected
    with pytest.raises(Unauthenticated):
        store.authenticate("mlw_ffffffffffff_guess", "ipv4:192.0.2.8:5555")


def test_limiter_forgets_and_stays_bounded() -> None:
    lim = FailureLimiter(FailurePolicy(free=0, base_s=1.0, cap_s=4.0, forget_s=10.0, max_subjects=3))
    lim.fail(["addr:a"], 0.0)
    with pytest.raises(TooMany):
        lim.check(["addr:a"], 0.5)
    lim.check(["addr:a"], 1.0)  # lock over
    assert lim.failures("addr:a", 5.0) == 1 and lim.failures("addr:a", 20.0) == 0  # quiet for 10 s: forgotten
    for s in "bcde":
        lim.fail([f"addr:{s}"], 30.0)
    assert len(lim._subjects) == 3 and lim.failures("addr:b", 30.0) == 0  # oldest dropped


@pytest.mark.parametrize(("peer", "host"), [("127.0.0.1:5000", "127.0.0.1"), ("ipv4:10.1.2.3:80", "10.1.2.3"),
                                            ("ipv6:[::1]:443", "::1"), ("[2001:db8::1]:8080", "2001:db8::1"),
                                            ("?", None), (None, None), ("test", "test")])
def test_client_host(peer: str | None, host: str | None) -> None:
    assert client_host(peer) == host


@pytest.fixture(scope="module")
def limited(guard_pipeline: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("keys-limits")
    keys = work / "keys.json"
    good = create_key(keys, "good")
    g = start_guard(guard_pipeline, keys, work / "run", "--no-detect")
    g.keys = {"good": good}
    yield g
    g.stop()


def test_guard_throttles_a_flood_of_wrong_secrets(limited: Guard) -> None:
    good = limited.keys["good"]
    url = f"{limited.rest}/v2/models/loan/infer"
    with httpx.Client(trust_env=False, timeout=20) as c:
        assert c.post(url, json=body([row()]), headers={"x-api-key": good}).status_code == 200
        seen = []
        for i in range(30):  # the default policy allows 10 failures, then backs off
            r = c.post(url, json=body([row()]), headers={"x-api-key": _wrong(good, i)})
            seen.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                assert r.json() == {"error": r.json()["error"]} and "too many failed API-key attempts" in r.json()["error"]
        assert seen[:10] == [401] * 10 and seen.count(429) >= 15, seen
        # the holder, verified before the flood, is served throughout (from memory, no scrypt)
        assert c.post(url, json=body([row()]), headers={"x-api-key": good}).status_code == 200
        # metadata routes share the limit: same address, so it is locked there too
        assert c.get(f"{limited.rest}/v2/models/loan", headers={"x-api-key": _wrong(good, 99)}).status_code == 429
    # gRPC: the same address is locked on the other protocol as well
    from mlwarden.sources.oip import oip_v2_pb2 as pb

    with grpc.insecure_channel(limited.grpc) as ch:
        call = ch.unary_unary("/inference.GRPCInferenceService/ModelMetadata",
                              request_serializer=pb.ModelMetadataRequest.SerializeToString,
                              response_deserializer=pb.ModelMetadataResponse.FromString)
        with pytest.raises(grpc.RpcError) as e:
            call(pb.ModelMetadataRequest(name="loan"), metadata=(("x-api-key", _wrong(good, 100)),), timeout=10)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(e.value.trailing_metadata() or ())["retry-after"]
