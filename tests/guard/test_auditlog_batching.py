"""Group commit: appends that arrive while a commit is in flight share the next one (one fsync).

The commit in flight is held up the way a slow disk or a second replica would hold it: another
connection owns SQLite's write lock, so the first append waits inside its transaction while the
others queue. Releasing the lock must then take exactly two commits for all of them.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from mlwarden.guard.auditlog import AuditLog, verify_log


def _wait_for(cond, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_appends_queued_behind_a_commit_share_the_next_one(tmp_path):
    p = tmp_path / "audit.db"
    log = AuditLog(p)
    log.append({"i": "warm-up"})
    assert log.commits == 1
    blocker = sqlite3.connect(str(p), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the leader's BEGIN IMMEDIATE now waits on the busy handler
    seqs: list[int] = []
    lock = threading.Lock()

    def append(i: int) -> None:
        s = log.append({"i": i})
        with lock:
            seqs.append(s)

    leader = threading.Thread(target=append, args=(0,))
    leader.start()
    assert _wait_for(lambda: log._writing)  # the leader is inside its commit, stuck on the lock
    followers = [threading.Thread(target=append, args=(i,)) for i in range(1, 6)]
    for t in followers:
        t.start()
    assert _wait_for(lambda: len(log._pending) == 5)  # all five queued behind it, none acknowledged
    assert seqs == []
    blocker.execute("COMMIT")
    blocker.close()
    for t in [leader, *followers]:
        t.join(30)
    assert sorted(seqs) == [2, 3, 4, 5, 6, 7]
    assert log.commits == 3  # warm-up, the leader alone, then the five together
    log.close()
    assert verify_log(p).ok and verify_log(p).entries == 7
