"""Walk an audit log's hash chain and list every inconsistency (see ``auditlog.py`` for the format).

Opens the database read-only, streams the entries in seq order (constant memory at any log
size) and checks, entry by entry: seq continues without a gap from 1, ``prev_hash`` equals the
stored hash of the entry before, and ``hash`` recomputes from the entry's own columns (with the
HMAC key when one is given). Against an anchor (``expect_head``) it also checks that the anchored
entry is present with the recorded hash, which is what catches a log cut short.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .auditlog_format import FORMAT, GENESIS, MAX_PROBLEMS, AuditLogError, VerifyResult, entry_hash


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise AuditLogError(f"no audit log at {path}")
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30.0)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise AuditLogError(f"{path} is not a readable SQLite database: {e}") from None
    if "log" not in tables:
        db.close()
        raise AuditLogError(f"{path} is not an mlwarden audit log (no log table)")
    return db


def _mac(db: sqlite3.Connection, path: Path, key: bytes | None, problems: list[str]) -> None:
    try:
        meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
    except sqlite3.DatabaseError:
        meta = {}
    if not meta:
        problems.append("the meta table is missing or empty (the log's header was removed)")
        return
    if meta.get("format") != FORMAT:
        problems.append(f"unknown log format {meta.get('format')!r} (expected {FORMAT})")
    mac = meta.get("mac")
    if mac == "hmac-sha256" and key is None:
        db.close()
        raise AuditLogError(f"{path} is chained with HMAC-SHA-256: verifying it needs the key (--key-file)")
    if mac == "sha256" and key is not None:
        problems.append("the log says it was written without a key, but a key was given: either the "
                        "header was altered or the wrong log/key pair was chosen")


def walk(path: Path, key: bytes | None, expect: tuple[int, str] | None) -> VerifyResult:
    db = _connect(path)
    problems: list[str] = []
    more = 0

    def problem(text: str) -> None:
        nonlocal more
        if len(problems) < MAX_PROBLEMS:
            problems.append(text)
        else:
            more += 1

    try:
        _mac(db, path, key, problems)
        expected, prev, entries = 1, GENESIS, 0
        anchored = expect is None or expect == (0, GENESIS)
        cursor = db.execute("SELECT seq, ts, event, prev_hash, hash FROM log ORDER BY seq")
        for seq, ts, event, prev_hash, digest in cursor:
            entries += 1
            if seq != expected:
                gap = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                problem(f"entry {seq}: entries {gap} are missing (deleted, or seq rewritten)")
            if prev_hash != prev:
                problem(f"entry {seq}: prev_hash does not match entry {seq - 1}'s hash "
                        "(an entry before it was deleted, inserted, reordered or edited)")
            try:
                ok = isinstance(event, str) and entry_hash(str(prev_hash), seq, float(ts), event, key) == digest
            except (TypeError, ValueError):
                ok = False
            if not ok:
                problem(f"entry {seq}: hash does not match its contents (edited"
                        + (", or re-hashed without the key)" if key is not None else ")"))
            if expect is not None and seq == expect[0]:
                anchored = True
                if digest != expect[1]:
                    problem(f"entry {seq}: hash differs from the recorded head {expect[1][:16]}… "
                            "(the chain was rewritten up to the anchor)")
            prev, expected = digest, seq + 1
    except sqlite3.DatabaseError as e:
        problem(f"the log could not be read to the end: {e}")
    finally:
        db.close()
    if not anchored and expect is not None:
        if expected - 1 < expect[0]:
            problem(f"entry {expect[0]} (the recorded head) is missing: the log ends at entry "
                    f"{expected - 1}, so entries were removed from its end (truncated)")
        else:
            problem(f"entry {expect[0]} (the recorded head) is missing from the log")
    if more:
        problems.append(f"… and {more} more problems")
    return VerifyResult(ok=not problems, entries=entries, problems=problems, head=(expected - 1, prev))
