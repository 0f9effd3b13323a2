"""Opcode-heavy pickle: whole-process time and peak memory of ``mlwarden scan`` (and picklescan).

Generates ``pickle.dumps([(i, i * 2.5, str(i)) for i in range(N)], protocol=4)`` (N = 3M
by default: ~21M opcodes, ~77 MB) and runs each scanner as its own process under
``/usr/bin/time -v``, printing wall seconds, CPU seconds (user + system: steadier than wall
on a shared machine) and maximum RSS. mlwarden runs twice: as installed (the compiled pickle
machine when it is built, see ``mlwarden.scan.compiled``) and with ``MLWARDEN_PURE_PYTHON=1``.
Peers come from the venv ``bench/bench_scan.py`` uses (``bench/out/peers-venv``), found by
its ``find_peers``. Prints figures and picklescan's time over mlwarden's; asserts nothing.

    python bench/bench_pickle_speed.py [--n 3000000] [--repeat 1] [--no-peers] [--no-pure]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scan import PEERS, find_peers

PURE = "MLWARDEN_PURE_PYTHON"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB, exit code) of one process."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, check=False)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)
    if not (wall and rss and len(cpu) == 2):
        raise SystemExit(f"/usr/bin/time gave no figures for {cmd[0]}: {proc.stderr[-300:]}")
    h, m, s = wall.groups()
    return (int(h or 0) * 3600 + int(m) * 60 + float(s), sum(map(float, cpu)), int(rss.group(1)) / 1024,
            proc.returncode)


def build_in_use(env: dict[str, str]) -> str:
    code = "import json; from mlwarden.scan import compiled; print(json.dumps(compiled.active()))"
    active = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                       check=True).stdout)
    return "compiled" if all(active.values()) else "pure Python" if not any(active.values()) else f"mixed {active}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3_000_000, help="tuples in the pickle")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-pure", action="store_true", help="skip the MLWARDEN_PURE_PYTHON=1 row")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != PURE}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "opcode_heavy.pkl"
        path.write_bytes(pickle.dumps([(i, i * 2.5, str(i)) for i in range(args.n)], protocol=4))
        size = path.stat().st_size / 1e6
        scan = [sys.executable, "-m", "mlwarden", "scan", str(path)]
        rows = [(f"mlwarden ({build_in_use(env)})", scan, env)]
        if not args.no_pure:
            rows.append(("mlwarden (pure Python)", scan, {**env, PURE: "1"}))
        if not args.no_peers:
            for peer, exe in find_peers(None).items():
                if exe and peer == "picklescan":
                    rows.append((peer, [exe, *PEERS[peer](str(path))], env))
        print(f"opcode-heavy pickle: {args.n:,} tuples, {size:.1f} MB, protocol 4;"
              f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'scanner':<26} {'wall s':>8} {'CPU s':>7} {'peak MiB':>9} {'rc':>3}")
        best: dict[str, tuple[float, float]] = {}
        for name, cmd, run_env in rows:
            for _ in range(args.repeat):
                wall, cpu, rss, rc = timed(cmd, run_env)
                print(f"{name:<26} {wall:8.2f} {cpu:7.2f} {rss:9.0f} {rc:3d}", flush=True)
                w, c = best.get(name, (wall, cpu))
                best[name] = (min(w, wall), min(c, cpu))
        if "picklescan" in best:
            pw, pc = best["picklescan"]
            for name, (w, c) in best.items():
                if name.startswith("mlwarden"):
                    print(f"picklescan / {name}: {pw / w:.1f}x wall, {pc / c:.1f}x CPU (best of {args.repeat})")


if __name__ == "__main__":
    main()
