"""Benchmark the artifact scanner: detection against its peers, and the cost of a big checkpoint.

    python bench/bench_scan.py [--dir DIR] [--jobs 4] [--timeout 120] [--peers-bin DIR] [--long]
    python bench/bench_scan.py --big 2 [--dir DIR] [--keep]

Detection: builds the corpus of ``scan_corpus.py`` (one generated file per technique ×
container, plus benign models), scans every file with mlwarden in-process
(``scan_path`` with the default ``Policy()``) and with each peer CLI found — picklescan
(``--path F``), modelscan (``-p F``) and fickling (``--check-safety F``), each in a
subprocess with a timeout, from a scratch working directory. mlwarden *flags* a file when
an issue is high or critical; the ``≥medium`` figures count medium too. A peer detects a
file when it exits 1; exit 2+ (or a Python traceback) is an *error* and counts as not
detected, as a CI step reading "issues found" would; a timeout too. Prints a Markdown
matrix (technique × container; one letter per scanner) and summary rows.

``--big N``: writes a PyTorch-style zip (stored members, like ``torch.save``) with N GB of
tensor data and a small ``data.pkl``, and a raw pickle whose payload follows an N GB
BINBYTES8 blob, both streamed to disk; then, each in a fresh child process, measures
mlwarden's scan, reading only the pickle member with ``zipfile``, and the peers; and
times ``cat FILE > /dev/null``. Reported: wall time, bytes read from the file (a
counting wrapper around the file mlwarden opens, and ``rchar`` from /proc/self/io), and
peak RSS. Nothing is ever unpickled.

Peers are not project dependencies: install them into a separate virtual environment,
e.g. ``python -m venv bench/out/peers-venv && bench/out/peers-venv/bin/pip install
picklescan modelscan fickling typing_extensions`` (fickling 0.1.12 imports
typing_extensions without declaring it; modelscan pins rich<15, which is why it stays
out of the project's venv). ``--peers-bin`` defaults to that folder's ``bin``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scan_corpus import (
    CONTAINERS,
    TECHNIQUES,
    Case,
    CorpusPickler,
    Storage,
    build_corpus,
)

HERE = Path(__file__).resolve().parent
MLWARDEN = [str(Path(sys.executable).with_name("mlwarden"))]  # the console script, as users run it
PEERS = {
    "picklescan": lambda f: ["--path", f],
    "modelscan": lambda f: ["-p", f],
    "fickling": lambda f: ["--check-safety", f],
}
SCANNERS = ["mlwarden", *PEERS]
LETTER = {"mlwarden": "W", "picklescan": "P", "modelscan": "M", "fickling": "F"}
# Known cases where mlwarden is wrong, with why; the matrix shows them, tests/scan mark them.
KNOWN = {
    ("L1-sparse weights (4M float64, 500 non-zero)", "joblib-zlib"):
        "mostly zeros compress past the 200:1 bomb ratio of scan/compressed.py",
}



def mlwarden_verdict(path: Path, timeout: float = 600, cwd: str | None = None) -> dict[str, Any]:
    """One whole ``mlwarden scan`` process per file, as the peers run: start-up included."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([*MLWARDEN, "scan", "--format", "json", "--fail-on", "none", str(path.resolve())],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
    except subprocess.TimeoutExpired:
        return {"flagged": False, "medium": False, "error": True, "status": "timeout",
                "seconds": time.perf_counter() - t0, "detail": ""}
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"flagged": False, "medium": False, "error": True, "status": "error", "seconds": seconds,
                "detail": proc.stderr.strip()[-200:]}
    findings = json.loads(proc.stdout)["findings"]
    rank = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
    worst = max((rank[f["severity"]] for f in findings), default=-1)
    kinds = sorted({f["evidence"].get("kind", "") for f in findings if rank[f["severity"]] >= 2})
    return {"flagged": worst >= 3, "medium": worst >= 2, "error": False, "status": "ok",
            "seconds": seconds, "detail": ", ".join(kinds[:4])}


def peer_verdict(exe: str, peer: str, path: Path, timeout: float, cwd: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([exe, *PEERS[peer](str(path.resolve()))], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd, errors="replace", check=False)
    except subprocess.TimeoutExpired:
        return {"flagged": False, "error": True, "status": "timeout", "rc": None,
                "seconds": time.perf_counter() - t0}
    rc = proc.returncode
    crashed = "Traceback (most recent call last)" in proc.stderr and rc == 1
    status = "detected" if rc == 1 and not crashed else "clean" if rc == 0 else \
        "unsupported" if peer == "modelscan" and rc == 3 else "error"
    return {"flagged": status == "detected", "error": status in ("error", "unsupported"), "status": status,
            "rc": rc, "seconds": time.perf_counter() - t0}


def find_peers(bin_dir: Path | None) -> dict[str, str | None]:
    dirs = [bin_dir] if bin_dir else [HERE / "out" / "peers-venv" / "bin", Path(sys.executable).parent]
    found: dict[str, str | None] = {}
    for peer in PEERS:
        hits = [str(d / peer) for d in dirs if d and (d / peer).exists()]
        found[peer] = hits[0] if hits else shutil.which(peer)
    return found


def run_detection(cases: list[Case], peers: dict[str, str | None], jobs: int, timeout: float) -> dict[tuple[str, str], dict[str, Any]]:
    results: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as cwd, ThreadPoolExecutor(jobs) as pool:
        futures = {(c.name, "mlwarden"): pool.submit(mlwarden_verdict, c.path, timeout, cwd) for c in cases}
        futures |= {(c.name, p): pool.submit(peer_verdict, exe, p, c.path, timeout, cwd)
                    for c in cases for p, exe in peers.items() if exe}
        for i, (key, fut) in enumerate(futures.items(), 1):
            results[key] = fut.result()
            if i % 200 == 0:
                print(f"  … {i}/{len(futures)} peer runs", file=sys.stderr)
    return results


def _cell(case: Case, results: dict[tuple[str, str], dict[str, Any]], scanners: list[str]) -> str:
    out = []
    for s in scanners:
        r = results[(case.name, s)]
        if r["flagged"]:
            out.append(LETTER[s])
        elif s == "mlwarden" and r.get("medium"):
            out.append("w")
        else:
            out.append({"error": "e", "timeout": "t", "unsupported": "u"}.get(r["status"], "·"))
    return "".join(out)


def render(cases: list[Case], results: dict[tuple[str, str], dict[str, Any]], scanners: list[str], long: bool) -> str:
    lines: list[str] = []
    mal = [c for c in cases if c.malicious]
    ben = [c for c in cases if not c.malicious]
    containers = [k for k in CONTAINERS if any(c.container == k for c in mal)]
    order = [t.id for t in TECHNIQUES if any(c.technique == t.id for c in mal)]
    by = {(c.technique, c.container): c for c in mal}
    legend = " ".join(f"{LETTER[s]}={s}" for s in scanners)
    lines += [(f"Each cell: one letter per scanner that flagged the file ({legend}); `w` = mlwarden at"
               " medium only; `·` = not detected; `e` = scanner error (exit 2+ or crash);"
               " `u` = modelscan: no supported file; `t` = timeout; blank = technique does not"
               " apply to that container."), ""]
    lines.append("| technique | " + " | ".join(containers) + " |")
    lines.append("|---|" + "---|" * len(containers))
    for t in order:
        cells = [_cell(by[(t, k)], results, scanners) if (t, k) in by else "" for k in containers]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines += ["", "Benign files:", "", "| benign file | container | " + " | ".join(scanners) + " |",
              "|---|---|" + "---|" * len(scanners)]
    for c in ben:
        row = []
        for s in scanners:
            r = results[(c.name, s)]
            row.append("FP" if r["flagged"] else "FP (medium)" if r.get("medium") else
                       {"error": "error", "timeout": "timeout", "unsupported": "unsupported"}.get(r["status"], "ok"))
        note = f" ({KNOWN[(c.technique, c.container)]})" if (c.technique, c.container) in KNOWN else ""
        lines.append(f"| {c.technique}{note} | {c.container} | " + " | ".join(row) + " |")
    lines += ["", _summary(mal, ben, results, scanners), "", _by_container(mal, results, scanners, containers)]
    if long:
        lines += ["", "| file | " + " | ".join(scanners) + " |", "|---|" + "---|" * len(scanners)]
        for c in cases:
            lines.append(f"| {c.name} | " + " | ".join(
                f"{results[(c.name, s)]['status']}" + (f" ({results[(c.name, s)].get('detail')})" if s == "mlwarden" else "")
                for s in scanners) + " |")
    return "\n".join(lines)


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f} %)" if d else "–"


def _summary(mal: list[Case], ben: list[Case], results: dict[tuple[str, str], dict[str, Any]], scanners: list[str]) -> str:
    rows = {
        "detection rate, malicious (flagged)": lambda s: _pct(sum(results[(c.name, s)]["flagged"] for c in mal), len(mal)),
        "… mlwarden counting medium": lambda s: _pct(sum(results[(c.name, s)].get("medium", False) for c in mal), len(mal))
        if s == "mlwarden" else "",
        "… detected or errored (a CI step failing on any non-zero exit)": lambda s: _pct(
            sum(results[(c.name, s)]["flagged"] or results[(c.name, s)]["error"] for c in mal), len(mal)),
        "errors on malicious files": lambda s: str(sum(results[(c.name, s)]["error"] for c in mal)),
        "false-positive rate, benign (flagged)": lambda s: _pct(sum(results[(c.name, s)]["flagged"] for c in ben), len(ben)),
        "… mlwarden counting medium ": lambda s: _pct(sum(results[(c.name, s)].get("medium", False) for c in ben), len(ben))
        if s == "mlwarden" else "",
        "errors on benign files": lambda s: str(sum(results[(c.name, s)]["error"] for c in ben)),
        "total scan time, s": lambda s: f"{sum(results[(c.name, s)]['seconds'] for c in mal + ben):.1f}",
    }
    lines = ["| summary | " + " | ".join(scanners) + " |", "|---|" + "---:|" * len(scanners)]
    lines += [f"| {name} | " + " | ".join(fn(s) for s in scanners) + " |" for name, fn in rows.items()]
    return "\n".join(lines)


def _by_container(mal: list[Case], results: dict[tuple[str, str], dict[str, Any]], scanners: list[str], containers: list[str]) -> str:
    lines = ["| detection by container | files | " + " | ".join(scanners) + " |", "|---|---:|" + "---:|" * len(scanners)]
    for k in containers:
        cs = [c for c in mal if c.container == k]
        lines.append(f"| {k} | {len(cs)} | " + " | ".join(
            f"{100 * sum(results[(c.name, s)]['flagged'] for c in cs) / len(cs):.0f} %" for s in scanners) + " |")
    return "\n".join(lines)



CHUNK = 16 << 20


def write_big_zip(path: Path, gbytes: float, tensors: int = 8) -> None:
    """A torch.save-like zip: ``tensors`` stored float32 members totalling ``gbytes`` GB."""
    from collections import OrderedDict

    from scan_corpus import Call, Ref

    per = int(gbytes * (1 << 30)) // tensors // 4 * 4
    state = OrderedDict(
        (f"layer{i}.weight", Call(Ref("torch._utils", "_rebuild_tensor_v2"),
                                  (Storage(str(i), per // 4), 0, (per // 4,), (1,), False, OrderedDict())))
        for i in range(tensors))
    buf = io.BytesIO()
    CorpusPickler(buf, 2).dump(state)
    block = os.urandom(CHUNK)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("big/data.pkl", buf.getvalue())
        zf.writestr("big/byteorder", "little")
        for i in range(tensors):
            with zf.open(f"big/data/{i}", "w", force_zip64=True) as out:
                left = per
                while left:
                    n = min(left, CHUNK)
                    out.write(block[:n])
                    left -= n
        zf.writestr("big/version", "3\n")


def write_big_pickle(path: Path, gbytes: float) -> None:
    """Protocol 4: (BINBYTES8 blob of ``gbytes`` GB, os.system('echo pwned')) — written, never loaded."""
    n = int(gbytes * (1 << 30))

    def u(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()

    block = os.urandom(CHUNK)
    with open(path, "wb") as f:
        f.write(b"\x80\x04\x8e" + struct.pack("<Q", n))
        left = n
        while left:
            k = min(left, CHUNK)
            f.write(block[:k])
            left -= k
        f.write(b"\x94" + u("os") + u("system") + b"\x93" + u("echo pwned") + b"\x85R\x86.")


def _io_counters() -> dict[str, int]:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def measure(kind: str, path: str) -> dict[str, Any]:
    """Run in a child process: one measurement, with its own RSS and I/O counters."""
    counted = {"bytes": 0, "reads": 0, "seeks": 0}

    class CountingFileIO(io.FileIO):
        def readinto(self, b: Any) -> Any:
            n = super().readinto(b)
            counted["bytes"] += n or 0
            counted["reads"] += 1
            return n

        def readall(self) -> bytes:
            data = super().readall()
            counted["bytes"] += len(data)
            counted["reads"] += 1
            return data

        def seek(self, pos: int, whence: int = 0) -> int:
            counted["seeks"] += 1
            return super().seek(pos, whence)

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode == "rb" and str(file) == path:
            return io.BufferedReader(CountingFileIO(file, "r"))
        return open(file, mode, *args, **kwargs)

    detail = ""
    if kind == "mlwarden":
        import mlwarden.scan as scan_pkg
        from mlwarden.scan.policy import Policy

        Policy().classify("os", "system")  # warm the allowlist outside the timing
        scan_pkg.open = counting_open  # type: ignore[attr-defined]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    io0 = _io_counters()
    t0 = time.perf_counter()
    if kind == "mlwarden":
        result = scan_pkg.scan_path(path, policy=Policy())
        worst = max((i.severity for i in result.issues), key=lambda s: s.rank, default=None)
        detail = f"{result.format}; {len(result.issues)} issue(s), worst {worst}; " + \
                 ", ".join(sorted({i.kind for i in result.issues}))
    elif kind == "read-pickle-member":
        with zipfile.ZipFile(counting_open(path, "rb")) as zf:
            name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
            detail = f"{len(zf.read(name))} bytes of {name}"
    wall = time.perf_counter() - t0
    io1 = _io_counters()
    return {"kind": kind, "wall_s": wall, "counted_bytes": counted["bytes"], "reads": counted["reads"],
            "seeks": counted["seeks"], "rchar": io1.get("rchar", 0) - io0.get("rchar", 0),
            "read_bytes": io1.get("read_bytes", 0) - io0.get("read_bytes", 0),
            "rss_before_mib": rss0 / 1024, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "detail": detail}


def _evict(path: Path) -> None:
    """Drop the file's pages from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _child(kind: str, path: Path, cold: bool) -> dict[str, Any]:
    if cold:
        _evict(path)
    out = subprocess.run([sys.executable, __file__, "--measure", kind, str(path)], capture_output=True, text=True, check=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "cache": "cold" if cold else "warm"}


def _peer_big(exe: str, peer: str, path: Path, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as cwd:
        cmd = ["/usr/bin/time", "-f", "%M %e", exe, *PEERS[peer](str(path.resolve()))]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, errors="replace",
                                  check=False)
        except subprocess.TimeoutExpired:
            return {"kind": peer, "cache": "warm", "wall_s": time.perf_counter() - t0,
                    "detail": f"timeout after {timeout:.0f}s"}
    wall = time.perf_counter() - t0
    last = proc.stderr.strip().splitlines()[-1].split() if proc.stderr.strip() else []
    rss = float(last[0]) / 1024 if len(last) == 2 and last[0].isdigit() else float("nan")
    return {"kind": peer, "cache": "warm", "wall_s": wall, "peak_rss_mib": rss, "detail": f"exit {proc.returncode}"}


def _cat(path: Path, cold: bool) -> dict[str, Any]:
    if cold:
        _evict(path)
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["cat", str(path)], stdout=null, check=True)
    return {"kind": "cat FILE > /dev/null", "cache": "cold" if cold else "warm", "wall_s": time.perf_counter() - t0,
            "counted_bytes": path.stat().st_size, "detail": ""}


def run_big(gbytes: float, folder: Path, keep: bool, peers: dict[str, str | None], timeout: float) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"zip": folder / f"big-{gbytes:g}GB.pt", "pickle": folder / f"big-{gbytes:g}GB-payload-after-blob.pkl"}
    t0 = time.perf_counter()
    write_big_zip(files["zip"], gbytes)
    write_big_pickle(files["pickle"], gbytes)
    print(f"wrote {gbytes:g} GB × 2 in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    lines = []
    try:
        for label, path in files.items():
            kinds = ["mlwarden"] + (["read-pickle-member"] if label == "zip" else [])
            rows = [_cat(path, cold=True), *(_child(k, path, cold=True) for k in kinds)]
            _cat(path, cold=False)  # into the page cache for the warm runs
            rows += [_cat(path, cold=False), *(_child(k, path, cold=False) for k in kinds)]
            rows += [_peer_big(exe, p, path, timeout) for p, exe in peers.items() if exe]
            lines += [f"**{path.name}** — {path.stat().st_size / (1 << 30):.2f} GiB", "",
                      ("| what | page cache | wall s | bytes read (counted) | rchar | read_bytes (disk) |"
                       " peak RSS MiB (at start) | notes |"),
                      "|---|---|---:|---:|---:|---:|---:|---|"]
            for r in rows:
                num = {k: f"{r[k]:,}" if k in r else "–" for k in ("counted_bytes", "rchar", "read_bytes")}
                start = f" ({r['rss_before_mib']:.0f})" if "rss_before_mib" in r else ""
                rss = f"{r['peak_rss_mib']:.0f}{start}" if "peak_rss_mib" in r else "–"
                lines.append(f"| {r['kind']} | {r['cache']} | {r['wall_s']:.2f} | {num['counted_bytes']} |"
                             f" {num['rchar']} | {num['read_bytes']} | {rss} | {r['detail']} |")
            lines.append("")
    finally:
        if not keep:
            for path in files.values():
                path.unlink(missing_ok=True)
    return "\n".join(lines)


def run_speed(folder: Path, peers: dict[str, str], repeat: int, timeout: float) -> str:
    """Start-up, opcode-heavy and (when ``folder`` holds a corpus) whole-corpus rows, one process per tool."""
    from scan_speed import speed_table, write_opcode_heavy, write_small

    folder.mkdir(parents=True, exist_ok=True)
    files = {"small pickle (start-up)": write_small(folder / "small.pkl"),
             "opcode-heavy pickle (p4, 3M tuples)": write_opcode_heavy(folder / "opcode-heavy.pkl")}
    corpus = folder / "corpus"
    if corpus.is_dir():
        files["whole corpus, one process"] = corpus
    tools = {"mlwarden": [*MLWARDEN, "scan", "--fail-on", "none"],
             **{p: [exe, *PEERS[p]("")[:-1]] for p, exe in peers.items() if p != "fickling"}}
    return speed_table(tools, files, repeat, timeout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, help="where to build the corpus / big files (default: a temp folder)")
    ap.add_argument("--jobs", type=int, default=4, help="peer subprocesses at once")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per peer run")
    ap.add_argument("--peers-bin", type=Path, help="folder holding the picklescan/modelscan/fickling executables")
    ap.add_argument("--no-peers", action="store_true", help="mlwarden only")
    ap.add_argument("--blob-mb", type=int, default=64, help="size of the corpus' 'large blob' in MiB")
    ap.add_argument("--long", action="store_true", help="also print one row per file")
    ap.add_argument("--big", type=float, help="measure a big checkpoint of this many GB instead")
    ap.add_argument("--keep", action="store_true", help="keep the big files")
    ap.add_argument("--speed", action="store_true", help="whole-process start-up and opcode-heavy rows instead")
    ap.add_argument("--repeat", type=int, default=3, help="runs per --speed cell (median)")
    ap.add_argument("--measure", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    peers = {} if args.no_peers else find_peers(args.peers_bin)
    missing = [p for p, exe in peers.items() if not exe]
    if missing:
        print(f"skipped (not installed): {', '.join(missing)}; see the module docstring", file=sys.stderr)
    peers = {p: exe for p, exe in peers.items() if exe}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        if args.big:
            print(run_big(args.big, folder, args.keep, peers, args.timeout))
            return
        if args.speed:
            print(run_speed(folder, peers, args.repeat, args.timeout))
            return
        t0 = time.perf_counter()
        cases = build_corpus(folder, blob_bytes=args.blob_mb << 20)
        print(f"corpus: {sum(c.malicious for c in cases)} malicious + {sum(not c.malicious for c in cases)} benign"
              f" files in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        results = run_detection(cases, peers, args.jobs, args.timeout)
        print(render(cases, results, ["mlwarden", *peers], args.long))


if __name__ == "__main__":
    main()
