"""The tamper-evident audit log: every kind of tampering is found, nothing acknowledged is lost.

Tampering is done the way an attacker with write access would do it: straight SQL on the file.
The crash test kills a real writer process with SIGKILL in the middle of its stream (that tests
the commit protocol, not the disk's fsync, which only a power cut would exercise).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mlwarden.cli_guard_log import verify_log_command
from mlwarden.guard.auditlog import (GENESIS, AuditLog, AuditLogError, canonical, entry_hash,
                                     format_head, verify_log)

ROOT = Path(__file__).resolve().parents[2]
KEY = b"k" * 32


def make_log(path: Path, n: int = 8, key: bytes | None = None) -> AuditLog:
    log = AuditLog(path, key=key)
    for i in range(n):
        log.append({"kind": "request", "i": i, "key": f"tenant{i % 3}", "allowed": i % 4 != 0})
    return log


def sql(path: Path, *statements: tuple) -> None:
    db = sqlite3.connect(path)
    for st in statements:
        db.execute(*st)
    db.commit()
    db.close()


def rows(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    out = db.execute("SELECT seq, ts, event, prev_hash, hash FROM log ORDER BY seq").fetchall()
    db.close()
    return out


def rehash_all(path: Path, key: bytes | None) -> None:
    """What an attacker with write access does after editing: recompute the whole chain."""
    prev = GENESIS
    stmts = []
    for i, (seq, ts, event, _, _) in enumerate(rows(path), start=1):
        h = entry_hash(prev, i, ts, event, key)
        stmts.append(("UPDATE log SET seq = ?, prev_hash = ?, hash = ? WHERE seq = ?", (-i, prev, h, seq)))
        prev = h
    stmts.append(("UPDATE log SET seq = -seq",))
    sql(path, *stmts)


# ---------------------------------------------------------------- appending


def test_append_returns_seq_and_chain_verifies(tmp_path):
    p = tmp_path / "audit.db"
    log = make_log(p, 5)
    assert log.append({"kind": "detect"}) == 6
    head = log.head()
    log.close()
    r = verify_log(p)
    assert r.ok and r.entries == 6 and r.problems == [] and r.head == head
    assert [row[0] for row in rows(p)] == [1, 2, 3, 4, 5, 6]
    assert rows(p)[0][3] == GENESIS
    with pytest.raises(AuditLogError, match="closed"):  # a late request during shutdown: a clear error
        log.append({"kind": "late"})
    log.close()


def test_events_are_canonical_json(tmp_path):
    p = tmp_path / "audit.db"
    with AuditLog(p) as log:
        log.append({"z": 1, "a": {"y": float("nan"), "b": float("-inf")},
                    "np": np.float32(0.5), "arr": np.arange(3), "t": (1, "é")})
    event = rows(p)[0][2]
    assert event == ('{"a":{"b":"-Infinity","y":"NaN"},"arr":[0,1,2],"np":0.5,"t":[1,"é"],"z":1}')
    assert json.loads(event)["a"]["y"] == "NaN"  # strict JSON, nothing lost
    assert canonical({"b": 1, "a": 2}) == canonical({"a": 2, "b": 1})


@pytest.mark.parametrize("event", [[1, 2], {"x": object()}, {1: "int key"}, {"big": "x" * (1 << 20)}])
def test_unusable_events_are_refused_clearly(tmp_path, event):
    with AuditLog(tmp_path / "audit.db") as log:
        with pytest.raises(AuditLogError):
            log.append(event)
        assert log.head() == (0, GENESIS)  # nothing half-written


def test_threads_share_one_chain(tmp_path):
    p = tmp_path / "audit.db"
    log = AuditLog(p)
    got: list[int] = []
    lock = threading.Lock()

    def worker(t):
        mine = [log.append({"thread": t, "i": i}) for i in range(40)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    log.close()
    assert sorted(got) == list(range(1, 161))
    assert verify_log(p).ok


def test_close_while_threads_append_loses_nothing_acknowledged(tmp_path):
    p = tmp_path / "audit.db"
    log = AuditLog(p)
    acked: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def worker(t):
        for i in range(10_000):
            try:
                seq = log.append({"thread": t, "i": i})
            except AuditLogError as e:
                with lock:
                    refused.append(str(e))
                return
            with lock:
                acked.append(seq)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    while len(acked) < 60:
        time.sleep(0.01)
    log.close()  # shutdown while requests are still being logged
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)  # nobody hangs on a closed log
    assert len(refused) == 6 and all("closed" in m for m in refused)
    r = verify_log(p)
    assert r.ok and set(acked) <= {row[0] for row in rows(p)}


# ---------------------------------------------------------------- tampering


@pytest.mark.parametrize("column,value", [
    ("event", '{"allowed":false,"i":3,"key":"tenant0","kind":"request"}'),
    ("ts", 1.0),
    ("prev_hash", "1" * 64),
    ("hash", "2" * 64),
])
def test_an_edited_field_is_detected(tmp_path, column, value):
    p = tmp_path / "audit.db"
    make_log(p).close()
    before = rows(p)[3]
    sql(p, (f"UPDATE log SET {column} = ? WHERE seq = 4", (value,)))
    assert rows(p)[3] != before
    r = verify_log(p)
    assert not r.ok
    assert any(s.startswith(("entry 4:", "entry 5:")) for s in r.problems), r.problems


def test_edited_entry_rehashed_alone_breaks_the_next_link(tmp_path):
    p = tmp_path / "audit.db"
    make_log(p).close()
    seq, ts, _, prev, _ = rows(p)[3]
    forged = canonical({"kind": "request", "i": 3, "allowed": True})
    sql(p, ("UPDATE log SET event = ?, hash = ? WHERE seq = 4", (forged, entry_hash(prev, seq, ts, forged, None))))
    r = verify_log(p)
    assert not r.ok and any(s.startswith("entry 5: prev_hash") for s in r.problems)


@pytest.mark.parametrize("seq", [1, 4])
def test_a_deleted_entry_is_detected(tmp_path, seq):
    p = tmp_path / "audit.db"
    make_log(p).close()
    sql(p, ("DELETE FROM log WHERE seq = ?", (seq,)))
    r = verify_log(p)
    assert not r.ok and r.entries == 7
    assert any(f"entries {seq} are missing" in s for s in r.problems), r.problems


def test_reordered_entries_are_detected(tmp_path):
    p = tmp_path / "audit.db"
    make_log(p).close()
    a, b = rows(p)[2], rows(p)[3]
    # swap the contents of entries 3 and 4, each keeping its own (valid) hash
    sql(p, ("UPDATE log SET ts = ?, event = ?, prev_hash = ?, hash = ? WHERE seq = 3", b[1:]),
        ("UPDATE log SET ts = ?, event = ?, prev_hash = ?, hash = ? WHERE seq = 4", a[1:]))
    r = verify_log(p)
    assert not r.ok and len(r.problems) >= 2


def test_an_inserted_entry_is_detected(tmp_path):
    p = tmp_path / "audit.db"
    make_log(p).close()
    # make room after entry 3, then insert a forged entry 4 that links correctly to entry 3
    sql(p, ("UPDATE log SET seq = -(seq + 1) WHERE seq > 3",), ("UPDATE log SET seq = -seq WHERE seq < 0",))
    _, _, _, _, h3 = rows(p)[2]
    ev = canonical({"kind": "request", "key": "attacker", "allowed": True})
    sql(p, ("INSERT INTO log VALUES (4, 5.0, ?, ?, ?)", (ev, h3, entry_hash(h3, 4, 5.0, ev, None))))
    r = verify_log(p)
    assert not r.ok and r.entries == 9
    assert any(s.startswith("entry 5:") for s in r.problems), r.problems


def test_truncation_needs_an_anchor_and_the_anchor_catches_it(tmp_path):
    p = tmp_path / "audit.db"
    log = make_log(p)
    anchor = format_head(log.head())
    log.close()
    sql(p, ("DELETE FROM log WHERE seq > 5",))
    # honest: a log cut after entry 5 is, by itself, a valid log of 5 entries
    assert verify_log(p).ok
    r = verify_log(p, expect_head=anchor)
    assert not r.ok and any("truncated" in s for s in r.problems)


def test_full_rewrite_without_key_needs_the_anchor(tmp_path):
    p = tmp_path / "audit.db"
    log = make_log(p)
    anchor = log.head()
    log.close()
    sql(p, ("DELETE FROM log WHERE seq = 2",))
    rehash_all(p, None)
    assert verify_log(p).ok  # honest: an unkeyed chain can be rebuilt by whoever can write it
    r = verify_log(p, expect_head=anchor)
    assert not r.ok


@pytest.mark.parametrize("attacker_key", [None, b"guessed-key"])
def test_keyed_chain_rewritten_without_the_key_is_detected(tmp_path, attacker_key):
    p = tmp_path / "audit.db"
    make_log(p, key=KEY).close()
    assert verify_log(p, key=KEY).ok
    sql(p, ("UPDATE log SET event = ? WHERE seq = 3", (canonical({"kind": "request", "allowed": True}),)),
        ("DELETE FROM log WHERE seq = 6",))
    rehash_all(p, attacker_key)
    if attacker_key is None:  # the attacker also relabels the log as unkeyed
        sql(p, ("UPDATE meta SET v = 'sha256' WHERE k = 'mac'",))
    r = verify_log(p, key=KEY)
    assert not r.ok
    assert sum("re-hashed without the key" in s for s in r.problems) == 7


def test_keyed_log_needs_its_key(tmp_path):
    p = tmp_path / "audit.db"
    make_log(p, key=KEY).close()
    with pytest.raises(AuditLogError, match="needs the key"):
        verify_log(p)
    with pytest.raises(AuditLogError, match="needs its HMAC key"):
        AuditLog(p)
    with pytest.raises(AuditLogError, match="wrong key"):
        AuditLog(p, key=b"another key")
    assert not verify_log(p, key=b"another key").ok
    with AuditLog(p, key=KEY) as log:  # the right key extends the chain
        assert log.append({"kind": "restart"}) == 9
    assert verify_log(p, key=KEY).ok


def test_opening_something_else_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"definitely not sqlite" * 200)
    with pytest.raises(AuditLogError, match="cannot open"):
        AuditLog(junk)
    other = tmp_path / "other.db"
    sql(other, ("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",),
        ("INSERT INTO meta VALUES ('format', 'someone-else/3')",))
    with pytest.raises(AuditLogError, match="not an mlwarden audit log"):
        AuditLog(other)
    with pytest.raises(AuditLogError, match="key is empty"):
        AuditLog(tmp_path / "k.db", key=b"")


def test_an_altered_head_is_refused_before_extending(tmp_path):
    p = tmp_path / "audit.db"
    make_log(p).close()
    sql(p, ("UPDATE log SET event = '{}' WHERE seq = 8",))
    with pytest.raises(AuditLogError, match="does not match"):
        AuditLog(p)


# ---------------------------------------------------------------- crashes and several writers

_WRITER = r"""
import sys, threading
from mlwarden.guard.auditlog import AuditLog
log = AuditLog(sys.argv[1])
tag, n, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[5])
out = threading.Lock()
sys.stdout.write("ready\n"); sys.stdout.flush()
if sys.argv[4] == "wait":
    sys.stdin.readline()

def work(t):
    for i in range(n):
        seq = log.append({"writer": tag, "thread": t, "i": i, "pad": "x" * 300})
        with out:  # one whole line per acknowledged seq
            sys.stdout.write(f"{seq}\n"); sys.stdout.flush()

ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
log.close()
"""


def _writer(path: Path, tag: str, n: int, wait: bool, threads: int = 1) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag, str(n), "wait" if wait else "go",
                          str(threads)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    return p


def test_kill_9_mid_stream_loses_no_acknowledged_entry(tmp_path):
    p = tmp_path / "audit.db"
    acknowledged: list[int] = []
    # three crashes in a row, each writer extending the same chain; the last one writes from 4
    # threads, so it dies in the middle of group commits
    for round_, threads in enumerate([1, 1, 4]):
        w = _writer(p, f"r{round_}", 1_000_000, wait=False, threads=threads)
        try:
            for _ in range(150 + 37 * round_):
                acknowledged.append(int(w.stdout.readline()))
            os.kill(w.pid, signal.SIGKILL)
            w.wait(30)
            rest = w.stdout.read()  # lines written before the kill; a torn last line is not an ack
            acknowledged += [int(x) for x in rest.split(b"\n")[:-1]]
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
        assert w.returncode == -signal.SIGKILL
    stored = {r[0] for r in rows(p)}
    assert set(acknowledged) <= stored
    assert len(set(acknowledged)) == len(acknowledged)
    r = verify_log(p)
    assert r.ok, r.problems
    with AuditLog(p) as log:  # and the guard restarts on it
        assert log.append({"kind": "restart"}) == r.entries + 1
    assert verify_log(p).ok


def test_two_writer_processes_keep_one_chain(tmp_path):
    p = tmp_path / "audit.db"
    AuditLog(p).close()
    ws = [_writer(p, tag, 150, wait=True) for tag in ("a", "b")]
    try:
        for w in ws:
            w.stdin.write(b"go\n")
            w.stdin.flush()
        outs = [w.communicate(timeout=300)[0] for w in ws]
    finally:
        for w in ws:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert [w.returncode for w in ws] == [0, 0]
    seqs = [[int(x) for x in o.split()] for o in outs]
    assert sorted(seqs[0] + seqs[1]) == list(range(1, 301))
    r = verify_log(p)
    assert r.ok and r.entries == 300
    by_seq = {seq: json.loads(ev)["writer"] for seq, _, ev, _, _ in rows(p)}
    assert [by_seq[s] for s in seqs[0]] == ["a"] * 150 and [by_seq[s] for s in seqs[1]] == ["b"] * 150


def test_replicas_creating_the_same_new_log_at_once(tmp_path):
    # switching a new file to WAL is not covered by SQLite's busy timeout; the log retries it
    code = ("import sys; from mlwarden.guard.auditlog import AuditLog; "
            "l = AuditLog(sys.argv[1]); l.append({'pid': 1}); l.close()")
    for trial in range(3):
        p = tmp_path / f"new{trial}.db"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(p)], cwd=ROOT, stderr=subprocess.PIPE)
                 for _ in range(4)]
        errs = [q.communicate(timeout=120)[1] for q in procs]
        assert [q.returncode for q in procs] == [0] * 4, errs
        r = verify_log(p)
        assert r.ok and r.entries == 4


# ---------------------------------------------------------------- the command


def test_verify_log_command_exit_codes(tmp_path, capsys):
    p = tmp_path / "audit.db"
    log = make_log(p)
    head = format_head(log.head())
    log.close()
    assert verify_log_command(p, None) == 0
    assert verify_log_command(p, head) == 0
    assert head in capsys.readouterr().out
    sql(p, ("DELETE FROM log WHERE seq = 8",))
    assert verify_log_command(p, None) == 0  # truncation alone: not visible without the anchor
    assert verify_log_command(p, head) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "truncated" in out

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    for args in [(tmp_path / "missing.db", None), (junk, None), (p, "42"), (p, "x:" + "0" * 64)]:
        assert verify_log_command(*args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_verify_log_command_with_key_file(tmp_path, capsys):
    p = tmp_path / "audit.db"
    make_log(p, key=KEY).close()
    kf = tmp_path / "audit.key"
    kf.write_bytes(KEY + b"\n")
    assert verify_log_command(p, None) == 2
    assert "key" in capsys.readouterr().err
    assert verify_log_command(p, None, key_file=kf) == 0
    kf.write_bytes(hashlib.sha256(b"other").hexdigest().encode())
    assert verify_log_command(p, None, key_file=kf) == 1
    assert verify_log_command(p, None, key_file=tmp_path / "nokey") == 2
