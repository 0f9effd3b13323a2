"""The guard's shared state: token buckets, daily query budgets and per-key query histories.

One small protocol, :class:`State`, with two implementations that make the same decisions on
the same sequence of calls:

- :class:`MemoryState` — in-process and thread-safe (one lock; every operation is a few
  microseconds), the default for a single guard;
- :class:`RedisState` (``state_redis.py``) — several guard replicas behind a load balancer
  share quotas and histories through one Redis; the bucket, the budget and the history push
  each run as one Lua script (EVALSHA), so they are atomic across replicas.

Time is always passed in by the caller (``now``, seconds): the state never reads a clock, so
both implementations compute identical decisions and tests can drive time by hand. Replicas
should run NTP-synced clocks; a replica whose clock lags only sees a bucket refill later,
never earlier (elapsed time is clamped at zero).

Use :func:`open_state` to get one: ``None`` → memory, ``redis://host:port/db`` → Redis.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import MlwardenError

# A take() that is short by less than this many tokens is allowed: float rounding must not turn
# "wait exactly retry_after seconds" into a second refusal.
EPS = 1e-9


class StateError(MlwardenError):
    """The shared state cannot be opened or used (bad URL, Redis unreachable, bad rows)."""


@runtime_checkable
class State(Protocol):
    """What the gateway and the detectors need from shared state. Every method is atomic."""

    def take(self, key: str, n: int, rate: float, burst: int, now: float) -> tuple[bool, float]:
        """Token bucket (``burst`` tokens, refilled at ``rate``/s): take ``n`` tokens at ``now``.

        Returns ``(allowed, retry_after_s)``; ``retry_after_s`` is 0 when allowed, the wait
        until ``n`` tokens will be there when refused, and ``inf`` when ``n > burst`` (never).
        """
        ...

    def spend_budget(self, key: str, day: str, n: int, limit: int) -> tuple[bool, int]:
        """Daily budget: spend ``n`` queries of ``limit`` for ``day`` if they all fit.

        Returns ``(allowed, used)`` with ``used`` the day's total after the call; a refused
        call spends nothing, so concurrent callers never over-spend.
        """
        ...

    def push_history(self, key: str, rows: np.ndarray, maxlen: int) -> None:
        """Append query rows (2-D, or one 1-D row) to the key's history, keeping the newest ``maxlen``."""
        ...

    def history(self, key: str) -> np.ndarray:
        """The key's recent rows, oldest first, float64 of shape (k, d); (0, 0) when none."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def check_take(n: int, rate: float, burst: int) -> None:
    if n < 1 or burst < 1 or not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"token bucket needs n >= 1, burst >= 1 and a finite rate > 0 (got n={n}, "
                         f"burst={burst}, rate={rate})")


def bucket_step(tokens: float, ts: float, n: int, rate: float, burst: int,
                now: float) -> tuple[bool, float, float, float]:
    """One bucket decision: ``(allowed, retry_after, tokens', ts')``.

    The Lua script in ``state_redis.py`` performs exactly these float operations in the same
    order, which is what makes memory and Redis decisions identical.
    """
    elapsed = now - ts
    if elapsed < 0:
        elapsed = 0.0
    tokens = min(float(burst), tokens + elapsed * rate)
    ts = max(ts, now)
    if n > burst:
        return False, math.inf, tokens, ts
    if tokens + EPS >= n:
        return True, 0.0, tokens - n, ts
    return False, (n - tokens) / rate, tokens, ts


def check_budget(n: int, limit: int) -> None:
    if n < 0 or limit < 0:
        raise ValueError(f"budget needs n >= 0 and limit >= 0 (got n={n}, limit={limit})")


def as_rows(rows: Any) -> np.ndarray:
    """Rows as a C-contiguous little-endian float64 2-D array (one 1-D row becomes (1, d))."""
    a = np.asarray(rows, dtype="<f8")
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] == 0:
        raise StateError(f"history rows must be a non-empty 2-D array, got shape {a.shape}")
    return np.ascontiguousarray(a)


def check_maxlen(maxlen: int) -> None:
    if maxlen < 1:
        raise ValueError(f"history maxlen must be >= 1 (got {maxlen})")


class _Ring:
    """A fixed-capacity ring of float64 rows: O(rows) pushes, no reallocation."""

    __slots__ = ("buf", "start", "count")

    def __init__(self, maxlen: int, width: int) -> None:
        self.buf = np.empty((maxlen, width), dtype=np.float64)
        self.start = 0
        self.count = 0

    def push(self, rows: np.ndarray) -> None:
        cap = self.buf.shape[0]
        if rows.shape[0] >= cap:
            self.buf[:] = rows[-cap:]
            self.start, self.count = 0, cap
            return
        end = (self.start + self.count) % cap
        first = min(rows.shape[0], cap - end)
        self.buf[end:end + first] = rows[:first]
        self.buf[:rows.shape[0] - first] = rows[first:]
        overflow = max(0, self.count + rows.shape[0] - cap)
        self.start = (self.start + overflow) % cap
        self.count = min(cap, self.count + rows.shape[0])

    def rows(self) -> np.ndarray:
        idx = (self.start + np.arange(self.count)) % self.buf.shape[0]
        return self.buf[idx]  # fancy indexing copies: callers may keep or mutate the result


class MemoryState:
    """In-process state, thread-safe. Bounded: at most ``max_keys`` histories (least recently
    pushed dropped first), and buckets that have refilled completely are swept away, since a
    missing bucket and a full one are the same thing."""

    SWEEP_EVERY = 4096

    def __init__(self, max_keys: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float, float, int]] = {}
        self._budgets: dict[str, OrderedDict[str, int]] = {}
        self._hist: OrderedDict[str, _Ring] = OrderedDict()
        self._max_keys = max_keys
        self._takes = 0

    def take(self, key: str, n: int, rate: float, burst: int, now: float) -> tuple[bool, float]:
        check_take(n, rate, burst)
        with self._lock:
            tokens, ts, _, _ = self._buckets.get(key, (float(burst), now, rate, burst))
            allowed, retry, tokens, ts = bucket_step(tokens, ts, n, rate, burst, now)
            self._buckets[key] = (tokens, ts, rate, burst)
            self._takes += 1
            if self._takes % self.SWEEP_EVERY == 0:
                self._sweep(now)
            return allowed, retry

    def _sweep(self, now: float) -> None:
        full = [k for k, (tok, ts, rate, burst) in self._buckets.items()
                if tok + max(0.0, now - ts) * rate >= burst]
        for k in full:
            del self._buckets[k]

    def spend_budget(self, key: str, day: str, n: int, limit: int) -> tuple[bool, int]:
        check_budget(n, limit)
        with self._lock:
            days = self._budgets.setdefault(key, OrderedDict())
            used = days.get(day, 0)
            if used + n > limit:
                return False, used
            days[day] = used + n
            days.move_to_end(day)
            while len(days) > 2:  # today and yesterday (time zones, midnight races); older is done
                days.popitem(last=False)
            return True, used + n

    def push_history(self, key: str, rows: np.ndarray, maxlen: int) -> None:
        check_maxlen(maxlen)
        a = as_rows(rows)
        with self._lock:
            ring = self._hist.get(key)
            if ring is not None and ring.buf.shape[1] != a.shape[1]:
                raise StateError(f"history of {key!r} holds rows of width {ring.buf.shape[1]}, "
                                 f"got width {a.shape[1]}")
            if ring is None or ring.buf.shape[0] != maxlen:
                old = ring.rows() if ring is not None else a[:0]
                ring = _Ring(maxlen, a.shape[1])
                if len(old):
                    ring.push(old)
            ring.push(a)
            self._hist[key] = ring
            self._hist.move_to_end(key)
            while len(self._hist) > self._max_keys:
                self._hist.popitem(last=False)

    def history(self, key: str) -> np.ndarray:
        with self._lock:
            ring = self._hist.get(key)
            return ring.rows() if ring is not None else np.empty((0, 0), dtype=np.float64)

    def close(self) -> None:
        pass


def open_state(url: str | None, **options: Any) -> State:
    """``None`` or ``""`` → :class:`MemoryState`; ``redis://``, ``rediss://`` or ``unix://`` →
    :class:`RedisState` (options: ``prefix``, ``timeout_s``, ``history_ttl_s``).

    Raises :class:`StateError` for any other URL or when Redis cannot be reached.
    """
    if not url:
        return MemoryState(**options)
    from .state_redis import RedisState

    return RedisState.from_url(url, **options)


def __getattr__(name: str) -> Any:
    # RedisState lives beside this module (it needs redis-py); re-exported lazily so that the
    # in-process guard does not import redis at all.
    if name == "RedisState":
        from .state_redis import RedisState

        return RedisState
    raise AttributeError(name)
