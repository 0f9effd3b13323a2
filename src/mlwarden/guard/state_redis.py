"""Shared state in Redis, so several guard replicas enforce one set of quotas and see one history.

Each operation is one round trip and atomic across replicas: the token bucket, the daily
budget and the history push are Lua scripts run with EVALSHA (redis-py's ``Script`` loads them
on first use and after a ``SCRIPT FLUSH``). Every script touches exactly one key, so the layout
also works on Redis Cluster.

Layout (``prefix`` defaults to ``mlwarden:guard:``):

- ``{prefix}bucket:{key}`` — hash ``t`` (tokens), ``ts`` (last update, caller's clock), written
  with ``%.17g`` so floats survive the round trip exactly (Lua's default ``tostring`` keeps 14
  digits); expires once the bucket would be full again, because a missing bucket *is* a full one;
- ``{prefix}budget:{len(day)}:{day}:{key}`` — integer, expires after two days;
- ``{prefix}hist:{key}`` — list of rows, each packed little-endian float64, newest at the tail,
  capped with LTRIM; expires ``history_ttl_s`` after the last push.

The float arithmetic of the bucket script mirrors :func:`state.bucket_step` operation by
operation, so memory and Redis decide alike on the same calls.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis

from .state import EPS, StateError, as_rows, check_budget, check_maxlen, check_take

_BUCKET = """
local n = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local eps = tonumber(ARGV[6])
local s = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(s[1])
local ts = tonumber(s[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
ts = math.max(ts, now)
local allowed = 0
local retry = '0'
if n > burst then
  retry = 'inf'
elseif tokens + eps >= n then
  allowed = 1
  tokens = tokens - n
else
  retry = string.format('%.17g', (n - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {allowed, retry}
"""

_BUDGET = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""

_PUSH = """
local width = tonumber(ARGV[3])
local last = redis.call('LINDEX', KEYS[1], -1)
if last and string.len(last) ~= width then
  return redis.error_reply('history row width mismatch: stored ' .. (string.len(last) / 8) ..
                           ' values per row, got ' .. (width / 8))
end
local i = 4
while i <= #ARGV do
  local j = math.min(i + 3999, #ARGV)
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

BUDGET_TTL_S = 2 * 86400
# Keep a bucket at least this long after its last use even when it refills faster: callers that
# drive time by hand (tests, replays) must not see it vanish in wall-clock time.
MIN_BUCKET_TTL_MS = 60_000


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisState:
    """State shared through Redis; thread-safe and fork-safe (redis-py's connection pool)."""

    def __init__(self, client: redis.Redis, *, prefix: str = "mlwarden:guard:",
                 history_ttl_s: int = 86400, label: str = "redis") -> None:
        self.client = client
        self.prefix = prefix
        self.history_ttl_s = int(history_ttl_s)
        self.label = label
        self._bucket = client.register_script(_BUCKET)
        self._budget = client.register_script(_BUDGET)
        self._push = client.register_script(_PUSH)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "mlwarden:guard:", timeout_s: float = 2.0,
                 history_ttl_s: int = 86400) -> "RedisState":
        """Connect (bounded by ``timeout_s``) and PING; :class:`StateError` when that fails."""
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise StateError(f"--state must be redis://host:port/db, rediss://… or unix://…, "
                             f"got {redact(url)!r}")
        try:
            client = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                          socket_connect_timeout=timeout_s,
                                          health_check_interval=30)
            client.ping()
        except (redis.RedisError, ValueError, OSError) as e:
            raise StateError(f"cannot reach Redis at {redact(url)}: {e}") from None
        return cls(client, prefix=prefix, history_ttl_s=history_ttl_s, label=redact(url))

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.ResponseError as e:
            raise StateError(f"Redis state ({self.label}): {e}") from None
        except redis.RedisError as e:
            raise StateError(f"Redis state unavailable ({self.label}): {e}") from None

    def take(self, key: str, n: int, rate: float, burst: int, now: float) -> tuple[bool, float]:
        check_take(n, rate, burst)
        ttl_ms = max(MIN_BUCKET_TTL_MS, math.ceil(burst / rate * 1000.0) + 1000)
        allowed, retry = self._call(self._bucket, [f"{self.prefix}bucket:{key}"],
                                    [int(n), float(rate), int(burst), float(now), ttl_ms, EPS])
        return bool(allowed), float(retry)

    def spend_budget(self, key: str, day: str, n: int, limit: int) -> tuple[bool, int]:
        check_budget(n, limit)
        allowed, used = self._call(self._budget, [f"{self.prefix}budget:{len(day)}:{day}:{key}"],
                                   [int(n), int(limit), BUDGET_TTL_S])
        return bool(allowed), int(used)

    def push_history(self, key: str, rows: np.ndarray, maxlen: int) -> None:
        check_maxlen(maxlen)
        a = as_rows(rows)[-maxlen:]  # older rows would be trimmed at once: do not ship them
        packed = [row.tobytes() for row in a]
        self._call(self._push, [f"{self.prefix}hist:{key}"],
                   [int(maxlen), self.history_ttl_s, a.shape[1] * 8, *packed])

    def history(self, key: str) -> np.ndarray:
        try:
            items: list[bytes] = self.client.lrange(f"{self.prefix}hist:{key}", 0, -1)  # type: ignore[assignment]
        except redis.RedisError as e:
            raise StateError(f"Redis state unavailable ({self.label}): {e}") from None
        if not items:
            return np.empty((0, 0), dtype=np.float64)
        width = len(items[0])
        if width == 0 or width % 8 or any(len(it) != width for it in items):
            raise StateError(f"history of {key!r} in Redis holds rows that are not packed float64 "
                             "of one width")
        out = np.frombuffer(b"".join(items), dtype="<f8").reshape(len(items), width // 8)
        return out.astype(np.float64)  # native byte order, writable copy

    def close(self) -> None:
        self.client.close()
