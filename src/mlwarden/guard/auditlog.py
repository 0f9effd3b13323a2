"""The guard's tamper-evident audit log: an append-only SQLite table chained by hashes.

Each entry is ``(seq, ts, event, prev_hash, hash)`` with ``seq`` counting 1, 2, 3 … without
gaps, ``event`` canonical JSON (sorted keys, no whitespace, no NaN: non-finite floats are
written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` so that a hostile request is
still logged) and::

    hash = H(prev_hash "\\n" seq "\\n" repr(ts) "\\n" event)      prev_hash of entry 1 = 64 zeros

where H is SHA-256, or HMAC-SHA-256 when the log is opened with a ``key``.

Durability: WAL journal with ``synchronous=FULL``; :meth:`AuditLog.append` returns the entry's
seq only after its transaction committed (and the WAL was fsynced), so an entry whose append
returned survives a ``kill -9`` of the writer and a power cut. Threads of one process group-commit
(whoever arrives while a commit is in flight is written with the next one: one fsync for the
batch); processes serialise on SQLite's write lock (``BEGIN IMMEDIATE``) and read the chain's
head inside their own transaction, so every writer extends one chain.

What :func:`verify_log` detects, honestly stated:

- an edited entry (any column), a deleted entry (a gap in seq and a broken link), entries
  reordered or inserted, and entries deleted from the *start*;
- with a key: a chain an attacker rewrote and re-hashed, as long as the key is not on the
  machine the attacker controls (keep it in a secret store; the guard only needs it to write);
- **not** the loss of the newest entries by itself: a log cut after entry N is a valid log of
  N entries. Truncation is caught only against an anchor recorded elsewhere: publish
  :meth:`AuditLog.head` (``"SEQ:HASH"``) to another system periodically and pass it as
  ``expect_head``; every entry up to that anchor is then proven present and unchanged. Without
  a key, an attacker with write access can also rewrite the whole chain consistently; the
  anchor catches that too for the anchored prefix.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from .auditlog_format import (FORMAT, GENESIS, MAX_EVENT_BYTES, AuditLogError, VerifyResult, mac_name,
                              canonical, entry_hash, format_head, parse_head)

__all__ = ["GENESIS", "AuditLog", "AuditLogError", "VerifyResult", "canonical", "entry_hash",
           "format_head", "parse_head", "verify_log"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, event TEXT NOT NULL, "
    "prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
)


class _Slot:
    """One caller's entry waiting for a group commit.

    ``gate`` is held from birth; releasing it wakes the caller, either because its entry is
    committed (``done``) or because it is to commit the queue (``batch``). One lock per
    caller means a commit wakes exactly the callers it concerns, not every waiting thread.
    """

    __slots__ = ("batch", "done", "error", "gate", "seq", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.seq = 0
        self.error: BaseException | None = None
        self.done = False
        self.batch: list[_Slot] | None = None
        self.gate = threading.Lock()
        self.gate.acquire()


class AuditLog:
    """Append-only, hash-chained audit log in one SQLite file. Thread- and multi-process-safe."""

    def __init__(self, path: str | Path, key: bytes | None = None, busy_timeout_s: float = 30.0) -> None:
        if key is not None and len(key) == 0:
            raise AuditLogError("the audit log key is empty")
        self.path = Path(path)
        self._key = key
        self._lock = threading.Condition()
        self._pending: list[_Slot] = []
        self._writing = False
        self._closed = False
        self.commits = 0
        """Transactions committed by :meth:`append` (one fsync each): appends / commits is the batch size."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: transactions are explicit (BEGIN IMMEDIATE … COMMIT)
            self._db = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
        except (OSError, sqlite3.DatabaseError) as e:
            raise AuditLogError(f"cannot open audit log {self.path}: {e}") from None
        try:
            self._wal(busy_timeout_s)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:  # not executescript: it would COMMIT our transaction
                    self._db.execute(statement)
                self._check_meta()
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except BaseException as e:
            self._db.close()
            if isinstance(e, sqlite3.DatabaseError):
                raise AuditLogError(f"cannot open audit log {self.path}: {e}") from None
            raise

    def _wal(self, timeout_s: float) -> None:
        # switching to WAL takes an exclusive lock without SQLite's busy handler, so replicas that
        # create the same new log at once see "database is locked": retry, bounded
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise AuditLogError(f"audit log {self.path}: SQLite refused WAL mode ({mode})")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _check_meta(self) -> None:
        meta = dict(self._db.execute("SELECT k, v FROM meta").fetchall())
        if not meta:
            self._db.executemany("INSERT INTO meta (k, v) VALUES (?, ?)",
                                 [("format", FORMAT), ("mac", mac_name(self._key))])
            return
        if meta.get("format") != FORMAT:
            raise AuditLogError(f"{self.path} is not an mlwarden audit log ({meta.get('format')!r})")
        if meta.get("mac") != mac_name(self._key):
            need = "needs its HMAC key" if meta.get("mac") == "hmac-sha256" else "was created without a key"
            raise AuditLogError(f"audit log {self.path} {need}: open it the way it was created")
        last = self._db.execute("SELECT seq, ts, event, prev_hash, hash FROM log "
                                "ORDER BY seq DESC LIMIT 1").fetchone()
        if last is not None and entry_hash(last[3], last[0], last[1], last[2], self._key) != last[4]:
            # wrong key, or the newest entry was altered: refuse to extend a chain we cannot vouch for
            raise AuditLogError(f"the newest entry of {self.path} does not match its hash (wrong key, "
                                "or the log was altered): run `mlwarden guard verify-log`")

    def append(self, event: dict) -> int:
        """Append one event; returns its seq once the entry is durably committed.

        Group commit: callers that arrive while another thread is committing wait and are then
        written together in one transaction (one fsync), so throughput grows with concurrency
        while every caller still returns only after its own entry is on disk.
        """
        text = canonical(event)
        if len(text.encode("utf-8")) > MAX_EVENT_BYTES:
            raise AuditLogError(f"audit event is {len(text)} characters; the limit is {MAX_EVENT_BYTES} "
                                "bytes (log a summary of large payloads)")
        slot = _Slot(text)
        with self._lock:
            if self._closed:
                raise AuditLogError(f"audit log {self.path} is closed")
            if self._writing:
                self._pending.append(slot)  # a commit is in flight: ours goes with the next one
            else:
                self._writing = True
                slot.batch = [slot]
        if slot.batch is None:
            slot.gate.acquire()  # until our entry is committed, or the queue is handed to us
        if slot.batch is not None and not slot.done:
            # we lead: commit our batch, then hand whatever queued meanwhile to its first caller
            try:
                self._commit(slot.batch)
            finally:
                self._hand_over(slot.batch)
        if slot.error is not None:
            raise slot.error
        return slot.seq

    def _hand_over(self, batch: list[_Slot]) -> None:
        with self._lock:
            queued, self._pending = self._pending, []
            if queued:
                queued[0].batch = queued
            else:
                self._writing = False
                self._lock.notify_all()  # close() may be waiting for the log to go idle
        for s in batch[1:]:  # batch[0] is the leader itself, awake
            s.gate.release()
        if queued:
            queued[0].gate.release()

    def _commit(self, batch: list[_Slot]) -> None:
        db = self._db
        try:
            if self._closed:
                raise AuditLogError(f"audit log {self.path} is closed")
            db.execute("BEGIN IMMEDIATE")  # take the write lock before reading the head
            row = db.execute("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            rows = []
            for slot in batch:
                ts = time.time()
                digest = entry_hash(prev, seq, ts, slot.text, self._key)
                rows.append((seq, ts, slot.text, prev, digest))
                seq, prev = seq + 1, digest
            db.executemany("INSERT INTO log (seq, ts, event, prev_hash, hash) VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
            self.commits += 1  # only the leader commits, so no lock is needed
            seqs = [r[0] for r in rows]
        except BaseException as e:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection is unusable; the original error says why
            err = e if isinstance(e, AuditLogError) else AuditLogError(
                f"audit log {self.path}: append failed: {e}")
            for slot in batch:
                slot.error, slot.done = err, True
            if not isinstance(e, Exception):
                raise  # KeyboardInterrupt and the like still propagate (after the waiters are told)
            return
        for slot, n in zip(batch, seqs):
            slot.seq, slot.done = n, True

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest entry (``(0, GENESIS)`` when empty): record it elsewhere
        as a truncation anchor (``format_head`` renders it as ``SEQ:HASH``)."""
        with self._lock:
            if self._closed:
                raise AuditLogError(f"audit log {self.path} is closed")
            row = self._db.execute("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def close(self) -> None:
        """Close the connection once a commit in flight is done (idempotent); later appends
        raise :class:`AuditLogError`."""
        with self._lock:
            self._closed = True  # first, so queued and new appends are refused and cannot starve us
            while self._writing:
                self._lock.wait()
            self._db.close()

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_log(path: str | Path, key: bytes | None = None,
               expect_head: tuple[int, str] | str | None = None) -> VerifyResult:
    """Walk the whole chain (streaming, constant memory) and report every inconsistency.

    Raises :class:`AuditLogError` when ``path`` is missing or not an mlwarden audit log at all;
    a log that is one but fails any check gives ``ok=False`` with the problems listed.
    """
    from .auditlog_verify import walk

    return walk(Path(path), key, parse_head(expect_head) if isinstance(expect_head, str) else expect_head)
