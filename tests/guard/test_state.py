"""The guard's shared state: token buckets, daily budgets and histories, in memory and in a real Redis.

Every behavioural test runs against both implementations; one test replays a random sequence
through both and demands identical decisions, and the replica tests run two OS processes
against one redis-server, as two guard replicas behind a load balancer would.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mlwarden.errors import MlwardenError
from mlwarden.guard.state import MemoryState, StateError, open_state
from tests.guard.redis_fixture import free_port, redis_server, redis_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["memory", "redis"])
def state(request):
    if request.param == "memory":
        s = MemoryState()
    else:
        s = open_state(request.getfixturevalue("redis_url"))
    yield s
    s.close()


# ---------------------------------------------------------------- token bucket


def test_bucket_allows_burst_then_refuses_with_exact_retry_after(state):
    # burst 5, 2 tokens/s: five immediate takes pass, the sixth waits for half a second
    assert [state.take("k", 1, 2.0, 5, 100.0)[0] for _ in range(5)] == [True] * 5
    allowed, retry = state.take("k", 1, 2.0, 5, 100.0)
    assert not allowed and retry == pytest.approx(0.5, abs=1e-12)
    # just before retry_after: still refused; at retry_after: allowed
    assert state.take("k", 1, 2.0, 5, 100.0 + retry - 1e-3)[0] is False
    allowed, after = state.take("k", 1, 2.0, 5, 100.0 + retry)
    assert allowed and after == 0.0


def test_bucket_retry_after_for_several_tokens(state):
    assert state.take("k", 4, 1.0, 4, 0.0) == (True, 0.0)
    allowed, retry = state.take("k", 3, 1.0, 4, 1.0)  # one token back after 1 s, three wanted
    assert not allowed and retry == pytest.approx(2.0)
    assert state.take("k", 3, 1.0, 4, 3.0) == (True, 0.0)


def test_bucket_refills_only_to_burst_and_keys_are_independent(state):
    assert state.take("a", 3, 1.0, 3, 0.0)[0]
    # an hour later the bucket holds 3, not 3603
    assert [state.take("a", 1, 1.0, 3, 3600.0)[0] for _ in range(4)] == [True, True, True, False]
    assert state.take("b", 3, 1.0, 3, 3600.0) == (True, 0.0)


def test_bucket_request_larger_than_burst_is_never_allowed(state):
    allowed, retry = state.take("k", 11, 5.0, 10, 0.0)
    assert not allowed and math.isinf(retry)


def test_bucket_clock_going_backwards_gives_no_tokens(state):
    assert state.take("k", 2, 1.0, 2, 50.0)[0]
    # another replica with a lagging clock must not mint tokens from negative elapsed time
    assert state.take("k", 1, 1.0, 2, 40.0) == (False, pytest.approx(1.0))
    assert state.take("k", 1, 1.0, 2, 50.5)[0] is False
    assert state.take("k", 1, 1.0, 2, 51.0)[0] is True


def test_bucket_rejects_nonsense_parameters(state):
    for n, rate, burst in [(0, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0), (1, math.inf, 1)]:
        with pytest.raises(ValueError):
            state.take("k", n, rate, burst, 0.0)


def test_bucket_exact_under_threads(state):
    # 8 threads x 40 takes against 100 tokens that (practically) never refill: exactly 100 pass
    allowed = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker():
        start.wait()
        mine = sum(state.take("shared", 1, 1e-9, 100, 7.0)[0] for _ in range(40))
        with lock:
            allowed.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(allowed) == 8 and sum(allowed) == 100


# ---------------------------------------------------------------- daily budget


def test_budget_spends_until_limit_and_refusal_spends_nothing(state):
    assert state.spend_budget("k", "2025-03-01", 4, 10) == (True, 4)
    assert state.spend_budget("k", "2025-03-01", 6, 10) == (True, 10)
    assert state.spend_budget("k", "2025-03-01", 1, 10) == (False, 10)
    assert state.spend_budget("k", "2025-03-01", 0, 10) == (True, 10)
    # a new day starts from zero; another key has its own budget
    assert state.spend_budget("k", "2025-03-02", 3, 10) == (True, 3)
    assert state.spend_budget("other", "2025-03-01", 10, 10) == (True, 10)
    # a batch that does not fit is refused whole
    assert state.spend_budget("k", "2025-03-02", 8, 10) == (False, 3)


def test_budget_keys_and_days_do_not_collide(state):
    # "a:b" on day "c" vs "a" on day "b:c" would share a naive "a:b:c" key
    assert state.spend_budget("a:b", "c", 5, 5) == (True, 5)
    assert state.spend_budget("a", "b:c", 5, 5) == (True, 5)


def test_budget_exact_under_threads(state):
    results: list[tuple[bool, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def worker():
        start.wait()
        mine = [state.spend_budget("shared", "d", 1, 137) for _ in range(50)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 300
    assert sum(a for a, _ in results) == 137
    assert max(u for _, u in results) == 137
    # every successful spend saw a distinct running total: no two callers got the same slot
    assert sorted(u for a, u in results if a) == list(range(1, 138))


# ---------------------------------------------------------------- history


def test_history_is_bounded_and_ordered(state):
    assert state.history("k").shape == (0, 0)
    rows = np.arange(75, dtype=np.float64).reshape(25, 3)
    for i in range(0, 25, 4):
        state.push_history("k", rows[i:i + 4], maxlen=10)
    h = state.history("k")
    assert h.dtype == np.float64 and h.shape == (10, 3)
    np.testing.assert_array_equal(h, rows[-10:])
    # one push larger than maxlen keeps only its newest rows
    state.push_history("k", rows, maxlen=10)
    np.testing.assert_array_equal(state.history("k"), rows[-10:])


def test_history_single_row_exact_values_and_shrinking_maxlen(state):
    vals = [0.1, -1e300, 5e-324, 123456789.123456789]
    state.push_history("k", np.array(vals), maxlen=5)
    state.push_history("k", np.array([vals[::-1], vals]), maxlen=5)
    h = state.history("k")
    assert h.shape == (3, 4)
    np.testing.assert_array_equal(h[0], vals)  # bit-exact through the packing
    state.push_history("k", np.array([[9.0, 9.0, 9.0, 9.0]]), maxlen=2)
    np.testing.assert_array_equal(state.history("k"), [vals, [9.0] * 4])
    h = state.history("k")
    h[0, 0] = 42.0  # the caller's copy: mutating it leaves the stored history alone
    assert state.history("k")[0, 0] == vals[0]


def test_history_width_mismatch_is_refused(state):
    state.push_history("k", np.zeros((2, 3)), maxlen=10)
    with pytest.raises(StateError, match="width"):
        state.push_history("k", np.zeros((1, 4)), maxlen=10)
    assert state.history("k").shape == (2, 3)
    with pytest.raises(StateError):
        state.push_history("k", np.zeros((0, 0)), maxlen=10)


# ---------------------------------------------------------------- memory and Redis agree


def _replay(s, ops):
    out = []
    for op in ops:
        if op[0] == "take":
            out.append(s.take(*op[1:]))
        elif op[0] == "spend":
            out.append(s.spend_budget(*op[1:]))
        else:
            s.push_history(op[1], op[2], op[3])
            out.append(s.history(op[1]).tobytes())
    return out


def test_memory_and_redis_decide_identically(redis_url):  # noqa: F811
    rng = np.random.default_rng(11)
    ops, now = [], 1.7e9
    for _ in range(1500):
        now += float(rng.exponential(0.05))
        key = f"k{rng.integers(4)}"
        kind = rng.random()
        if kind < 0.6:
            ops.append(("take", key, int(rng.integers(1, 4)), 7.3, 9, now))
        elif kind < 0.9:
            ops.append(("spend", key, f"d{int(now - 1.7e9) // 20}", int(rng.integers(0, 5)), 60))
        else:
            ops.append(("push", key, rng.normal(size=(int(rng.integers(1, 6)), 3)), 12))
    mem, red = MemoryState(), open_state(redis_url)
    a, b = _replay(mem, ops), _replay(red, ops)
    red.close()
    assert a == b  # floats compared exactly: same arithmetic in Lua and Python
    takes = [r for op, r in zip(ops, a) if op[0] == "take"]
    assert any(ok for ok, _ in takes) and any(not ok for ok, _ in takes)  # the sequence bites


# ---------------------------------------------------------------- replicas share one Redis

_CHILD = r"""
import sys, time, numpy as np
from mlwarden.guard.state import open_state
url, what, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = open_state(url)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()                 # the parent releases both replicas at once
allowed = 0
for i in range(n):
    if what == "budget":
        allowed += s.spend_budget("tenant", "2025-03-01", 1, 30)[0]
    elif what == "bucket":
        allowed += s.take("tenant", 1, 1e-9, 30, 1000.0)[0]
    else:
        s.push_history("tenant", np.array([[float(sys.argv[4]), i]]), maxlen=40)
        allowed += 1
print(allowed)
"""


def _two_replicas(url: str, what: str, n: int) -> list[int]:
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, url, what, str(n), str(r)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for r in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0]
    return [int(o.strip()) for o in outs]


def test_two_replicas_share_the_daily_budget_exactly(redis_url):  # noqa: F811
    counts = _two_replicas(redis_url, "budget", 50)
    assert sum(counts) == 30
    assert open_state(redis_url).spend_budget("tenant", "2025-03-01", 0, 30) == (True, 30)


def test_two_replicas_share_the_token_bucket_exactly(redis_url):  # noqa: F811
    assert sum(_two_replicas(redis_url, "bucket", 50)) == 30


def test_two_replicas_share_one_bounded_history(redis_url):  # noqa: F811
    assert _two_replicas(redis_url, "history", 30) == [30, 30]
    h = open_state(redis_url).history("tenant")
    assert h.shape == (40, 2)  # 60 rows pushed, capped at 40
    for replica in (0.0, 1.0):
        seq = h[h[:, 0] == replica, 1]
        assert len(seq) > 0
        # each replica's rows are its newest ones, in its own order
        np.testing.assert_array_equal(seq, np.arange(30 - len(seq), 30))


# ---------------------------------------------------------------- opening and failures


def test_open_state_memory_and_bad_urls():
    assert isinstance(open_state(None), MemoryState)
    with pytest.raises(StateError, match="redis://"):
        open_state("http://127.0.0.1:6379/0")
    port = free_port()  # nobody listens there
    t0 = time.monotonic()
    with pytest.raises(StateError, match="cannot reach Redis") as e:
        open_state(f"redis://user:s3cret@127.0.0.1:{port}/0", timeout_s=1.0)
    assert "s3cret" not in str(e.value) and isinstance(e.value, MlwardenError)
    assert time.monotonic() - t0 < 30  # bounded, never a hang


def test_redis_scripts_survive_script_flush(redis_url):  # noqa: F811
    s = open_state(redis_url)
    assert s.take("k", 1, 1.0, 2, 0.0) == (True, 0.0)
    s.client.script_flush()  # e.g. a Redis restart or failover: EVALSHA must reload the script
    assert s.take("k", 1, 1.0, 2, 0.0) == (True, 0.0)
    assert s.take("k", 1, 1.0, 2, 0.0)[0] is False


def test_redis_keys_expire(redis_url):  # noqa: F811
    s = open_state(redis_url)
    s.take("k", 1, 1.0, 2, 0.0)
    s.spend_budget("k", "d", 1, 2)
    s.push_history("k", np.zeros((1, 2)), 5)
    for key in s.client.keys(f"{s.prefix}*"):
        assert s.client.ttl(key) > 0, key  # nothing lingers forever in a shared Redis


def test_memory_sweep_drops_only_full_buckets():
    s = MemoryState()
    s.SWEEP_EVERY = 3
    s.take("idle", 1, 1.0, 2, 0.0)
    s.take("busy", 2, 0.001, 2, 0.0)
    s.take("busy", 1, 0.001, 2, 10.0)  # third take: sweep at now=10; "idle" is full again
    assert "idle" not in s._buckets and "busy" in s._buckets
    assert s.take("busy", 1, 0.001, 2, 10.0)[0] is False
