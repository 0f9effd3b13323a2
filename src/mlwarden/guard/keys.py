"""API keys: created once, stored only as a salted scrypt hash, compared in constant time.

A key reads ``mlw_<id>_<secret>``: ``id`` (12 hex digits) is public and finds the record, so
a request costs at most one scrypt; ``secret`` is 256 random bits. The keys file (JSON,
mode 0600) holds per key its name, salt, scrypt parameters and hash, the models it may
query (``*`` = all), its output policy, quota and whether it may post feedback — never the
key itself. ``keys create`` prints the key once.

scrypt is deliberately slow (~40 ms), which a gateway cannot pay per request: a key that
verified once is remembered in memory under an HMAC of the presented key (with a
per-process secret), and so is a key that failed, so neither a client nor a brute-forcer
makes the guard run scrypt twice for the same string. The file is re-read when it changes
and an unknown id is presented, so ``keys create`` takes effect without a restart.

Two attacks remain on keys never seen: fresh wrong secrets each cost a scrypt (CPU burn, and
guessing), and an id the guard does not know would answer faster than one it does (learning
which ids exist by timing). So an unknown id is verified against a dummy hash with the same
parameters — the same work, the same answer — and failures are limited per key id and per
client address with exponential back-off (:mod:`.authlimit`): 429 with Retry-After, checked
before any scrypt runs, for a bounded time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .authlimit import FailureLimiter, FailurePolicy, client_host
from .errors import Forbidden, GuardConfigError, Unauthenticated

PREFIX = "mlw_"
ID_HEX = 12
SCRYPT = {"n": 1 << 14, "r": 8, "p": 1}
CACHE = 10_000
OutputMode = Literal["label", "topk", "proba"]


@dataclass(frozen=True, kw_only=True)
class OutputPolicy:
    """What a key sees of the model's answer: labels only, the top-k classes, or every score."""

    mode: OutputMode = "label"
    top_k: int = 1
    decimals: int | None = 2
    """Scores are rounded to this many decimals (None: full precision)."""


@dataclass(frozen=True, kw_only=True)
class Quota:
    rate: float = 10.0
    """Requests per second, refilled continuously (token bucket)."""
    burst: int = 20
    daily: int = 10_000
    """Rows (queries) per UTC day."""


@dataclass(frozen=True, kw_only=True)
class KeyRecord:
    id: str
    name: str
    salt: str
    hash: str
    kdf: dict[str, int] = field(default_factory=lambda: dict(SCRYPT))
    models: tuple[str, ...] = ("*",)
    output: OutputPolicy = OutputPolicy()
    quota: Quota = Quota()
    feedback: bool = False
    metrics: bool = False
    created: str = ""

    def may_query(self, model: str) -> bool:
        return "*" in self.models or model in self.models

    def require_model(self, model: str) -> None:
        if not self.may_query(model):
            raise Forbidden(f"API key '{self.name}' may not query model '{model}'")


def _digest(secret: str, salt: bytes, kdf: dict[str, int]) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=kdf["n"], r=kdf["r"], p=kdf["p"], maxmem=64 << 20, dklen=32)


def _split(key: str) -> tuple[str, str] | None:
    if not key.startswith(PREFIX) or len(key) < len(PREFIX) + ID_HEX + 2 or len(key) > 200:
        return None
    kid, sep, secret = key[len(PREFIX):len(PREFIX) + ID_HEX], key[len(PREFIX) + ID_HEX], key[len(PREFIX) + ID_HEX + 1:]
    if sep != "_" or not all(c in "0123456789abcdef" for c in kid):
        return None
    return kid, secret


def _record(d: dict[str, Any], where: str) -> KeyRecord:
    try:
        return KeyRecord(id=d["id"], name=d["name"], salt=d["salt"], hash=d["hash"], kdf=dict(d.get("kdf", SCRYPT)),
                         models=tuple(d.get("models", ["*"])), output=OutputPolicy(**d.get("output", {})),
                         quota=Quota(**d.get("quota", {})), feedback=bool(d.get("feedback", False)),
                         metrics=bool(d.get("metrics", False)), created=str(d.get("created", "")))
    except (KeyError, TypeError) as e:
        raise GuardConfigError(f"{where}: a key record is malformed ({e}); recreate it with `mlwarden guard keys create`") from None


def read_keys(path: str | Path) -> list[KeyRecord]:
    p = Path(path)
    if not p.exists():
        return []
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GuardConfigError(f"{p}: cannot read the keys file ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise GuardConfigError(f"{p}: not a mlwarden keys file (expected {{\"keys\": [...]}})")
    return [_record(d, str(p)) for d in doc["keys"]]


def create_key(path: str | Path, name: str, *, models: tuple[str, ...] = ("*",), output: OutputPolicy = OutputPolicy(),
               quota: Quota = Quota(), feedback: bool = False, metrics: bool = False) -> str:
    """Add a key named ``name`` to the keys file and return it (the only time it is seen)."""
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise GuardConfigError(f"key name {name!r}: use 1-100 letters, digits, '-', '_' or '.'")
    if output.mode == "topk" and output.top_k < 1:
        raise GuardConfigError("--top-k must be at least 1")
    if quota.rate <= 0 or quota.burst < 1 or quota.daily < 1:
        raise GuardConfigError("quotas must be positive (--rate > 0, --burst >= 1, --daily >= 1)")
    p = Path(path)
    keys = read_keys(p)
    if any(k.name == name for k in keys):
        raise GuardConfigError(f"{p}: a key named {name!r} exists; pick another name")
    kid, secret, salt = secrets.token_hex(ID_HEX // 2), secrets.token_urlsafe(32), secrets.token_bytes(16)
    rec = KeyRecord(id=kid, name=name, salt=salt.hex(), hash=_digest(secret, salt, SCRYPT).hex(), models=models,
                    output=output, quota=quota, feedback=feedback, metrics=metrics,
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    body = json.dumps({"keys": [asdict(k) for k in [*keys, rec]]}, indent=1)
    tmp = p.with_name(p.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the hashes are not for other users
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(tmp, p)
    return f"{PREFIX}{kid}_{secret}"


class KeyStore:
    """The keys of one keys file, verified with a bounded memory of keys seen."""

    def __init__(self, path: str | Path, *, failures: FailurePolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._pepper = secrets.token_bytes(32)
        # what an unknown id is checked against: same parameters as every key made here, matches nothing
        self._dummy = KeyRecord(id="", name="", salt=secrets.token_hex(16), hash=secrets.token_hex(32))
        self.limiter = FailureLimiter(failures)
        self._seen: OrderedDict[bytes, str | None] = OrderedDict()  # HMAC(key) → key id, or None if it failed
        self._by_id: dict[str, KeyRecord] = {}
        self._mtime = -1.0
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            mtime = 0.0
        if mtime != self._mtime:
            self._by_id = {k.id: k for k in read_keys(self.path)}
            self._mtime = mtime
            self._seen.clear()  # a changed file may have revoked a key

    def __len__(self) -> int:
        return len(self._by_id)

    def authenticate(self, presented: str | None, peer: str | None = None) -> KeyRecord:
        """The record of a valid key, else :class:`Unauthenticated` (one message for every bad key).

        ``peer`` (the client's address) is what the failure limit counts besides the key id;
        :class:`~.errors.TooMany` when either is locked out.
        """
        if not presented:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key')")
        mac = hmac.new(self._pepper, presented.encode("utf-8", "replace"), hashlib.sha256).digest()
        with self._lock:
            if mac in self._seen:  # a string already judged costs no scrypt: no limit needed either way
                kid = self._seen[mac]
                self._seen.move_to_end(mac)
                rec = self._by_id.get(kid) if kid else None
                if rec is not None:
                    return rec
                raise Unauthenticated("invalid API key")
        parts = _split(presented)
        host = client_host(peer)
        subjects = ([f"id:{parts[0]}"] if parts else []) + ([f"addr:{host}"] if host else [])
        now = self._clock()
        self.limiter.check(subjects, now)
        rec = None
        if parts:
            with self._lock:
                self._reload()  # for known and unknown ids alike (a stat), so that path takes the same time too
                rec = self._by_id.get(parts[0])
            # an unknown id costs what a known one does, so timing does not tell them apart
            against = rec or self._dummy
            ok = hmac.compare_digest(_digest(parts[1], bytes.fromhex(against.salt), against.kdf),
                                     bytes.fromhex(against.hash)) and rec is not None
        else:
            ok = False  # not even shaped like a key: no id to learn about, nothing to hash
        with self._lock:
            self._seen[mac] = rec.id if ok and rec else None
            while len(self._seen) > CACHE:
                self._seen.popitem(last=False)
        if not ok or rec is None:
            self.limiter.fail(subjects, now)
            raise Unauthenticated("invalid API key")
        self.limiter.succeed(subjects)
        return rec


def bearer(authorization: str | None, api_key: str | None) -> str | None:
    """The key from an ``Authorization: Bearer`` header, else from ``x-api-key``."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return api_key.strip() if api_key else None
