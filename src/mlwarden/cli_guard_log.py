"""``mlwarden guard verify-log DB``: check the guard's audit log and say plainly what was found.

Exit codes: 0 — the chain is intact (and reaches the recorded head, when one is given);
1 — tampering found, each problem on its own line; 2 — bad input (no such file, not an audit
log, malformed ``--expect-head``, a keyed log without ``--key-file``), one line on stderr.

Without ``--expect-head`` a log whose newest entries were cut off still verifies: record
``head`` (printed on success) somewhere the guard's host cannot write, and pass it next time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import MlwardenError


def read_key(key_file: Path) -> bytes:
    """The HMAC key: the file's bytes with surrounding whitespace (a trailing newline) removed."""
    try:
        key = key_file.read_bytes().strip()
    except OSError as e:
        raise MlwardenError(f"cannot read key file {key_file}: {e.strerror or e}") from None
    if not key:
        raise MlwardenError(f"key file {key_file} is empty")
    return key


def verify_log_command(db: Path, expect_head: str | None, key_file: Path | None = None) -> int:
    from .guard.auditlog import format_head, parse_head, verify_log

    try:
        anchor = parse_head(expect_head) if expect_head else None
        key = read_key(key_file) if key_file is not None else None
        result = verify_log(db, key=key, expect_head=anchor)
    except MlwardenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.ok:
        anchored = f", reaches the recorded head {anchor[0]}" if anchor else ""
        print(f"audit log OK: {result.entries} entries, chain intact{anchored}; "
              f"head {format_head(result.head)}")
        return 0
    print(f"audit log TAMPERED: {result.entries} entries read, {len(result.problems)} problem(s)")
    for p in result.problems:
        print(f"  {p}")
    return 1
