"""Failed-key limits: exponential back-off per key id and per client address, bounded in time and memory.

Every presented key the guard has not seen before costs one scrypt (~40 ms of a core). Without a
limit, a client sending fresh wrong secrets burns the guard's CPU at will, and guesses a key as
fast as the guard can hash. So each *subject* — the key id a request names (known or not, so the
limit itself does not reveal which ids exist) and the client's address — counts its failures:
the first ``free`` cost nothing more; after that each failure locks the subject for
``base_s × 2^(extra failures)``, capped at ``cap_s``. A locked subject is refused with 429 and
Retry-After *before* any scrypt runs.

The lock-out is bounded on purpose: attempts while locked neither count nor extend the lock, so
an attacker cannot keep a legitimate holder out for longer than ``cap_s`` at a time, and a key
that verified once in this process is served from the key store's memory without consulting the
limiter at all. A subject is forgotten ``forget_s`` after its last failure, or when the table is
full (least recently failed first), and a verified key clears its id's and address's counts.

Counts live in the process: several replicas each allow ``free`` failures, which bounds CPU per
replica, the thing this limit is for. Behind a reverse proxy every client has the proxy's address,
so the per-address count throttles new (unverified) keys of all its clients together — still for
a bounded time, and keys already verified are not affected.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from .errors import TooMany


@dataclass(frozen=True, kw_only=True)
class FailurePolicy:
    free: int = 10
    """Failures allowed before any back-off (typos, a stale key in a config)."""
    base_s: float = 1.0
    cap_s: float = 300.0
    forget_s: float = 3600.0
    max_subjects: int = 100_000

    def __post_init__(self) -> None:
        if self.free < 0 or self.base_s <= 0 or self.cap_s < self.base_s or self.forget_s <= 0 or self.max_subjects < 1:
            raise ValueError("failure policy needs free >= 0, 0 < base_s <= cap_s, forget_s > 0 and max_subjects >= 1")

    def lock_s(self, failures: int) -> float:
        """How long the ``failures``-th failure locks its subject (0 while within ``free``)."""
        extra = failures - self.free
        if extra <= 0:
            return 0.0
        return min(self.cap_s, self.base_s * 2.0 ** min(extra - 1, 62))


def client_host(peer: str | None) -> str | None:
    """The address of a peer as uvicorn (``host:port``) or grpcio (``ipv4:h:p``, ``ipv6:[h]:p``) names it."""
    if not peer or peer == "?":
        return None
    for scheme in ("ipv4:", "ipv6:", "unix:"):
        if peer.startswith(scheme):
            peer = peer[len(scheme):]
            break
    if peer.startswith("["):
        return peer[1:peer.find("]")] if "]" in peer else peer
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() and host.count(":") == 0 else peer


class FailureLimiter:
    """Thread-safe failure counts and locks per subject (``id:…``, ``addr:…``); time is passed in."""

    def __init__(self, policy: FailurePolicy | None = None) -> None:
        self.policy = policy or FailurePolicy()
        self._lock = threading.Lock()
        self._subjects: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # failures, locked until, last

    def check(self, subjects: list[str], now: float) -> None:
        """:class:`TooMany` (with the longest remaining wait) when any subject is locked at ``now``."""
        wait, which = 0.0, ""
        with self._lock:
            for s in subjects:
                entry = self._live(s, now)
                if entry is not None and entry[1] - now > wait:
                    wait, which = entry[1] - now, s
        if wait > 0:
            what = "from this address" if which.startswith("addr:") else "for this key id"
            raise TooMany(f"too many failed API-key attempts {what}; retry after {max(1, round(wait))} s",
                          retry_after=wait)

    def fail(self, subjects: list[str], now: float) -> None:
        p = self.policy
        with self._lock:
            for s in subjects:
                entry = self._live(s, now)
                failures = (entry[0] if entry else 0) + 1
                self._subjects[s] = (failures, now + p.lock_s(failures) if p.lock_s(failures) else 0.0, now)
                self._subjects.move_to_end(s)
            while len(self._subjects) > p.max_subjects:
                self._subjects.popitem(last=False)

    def succeed(self, subjects: list[str]) -> None:
        with self._lock:
            for s in subjects:
                self._subjects.pop(s, None)

    def failures(self, subject: str, now: float) -> int:
        with self._lock:
            entry = self._live(subject, now)
            return entry[0] if entry else 0

    def _live(self, subject: str, now: float) -> tuple[int, float, float] | None:
        entry = self._subjects.get(subject)
        if entry is not None and now - entry[2] > self.policy.forget_s and now >= entry[1]:
            del self._subjects[subject]  # quiet long enough: a fresh start
            return None
        return entry
