"""Time and peak memory of ``scan_image`` on generated images with one huge gzip layer.

Each image is an OCI layout tar (the form ``docker save`` writes since Docker 25) with a base
layer holding a small malicious pickle and a sklearn-like text config, and a second layer with
one file of N GB of zeros (gzip level 1, ~1000:1). The scan runs in a fresh child process so
its peak RSS (``ru_maxrss``) is its own; the point is that it stays flat as N grows — layers
are streamed, never held. Prints a table; asserts nothing.

    .venv/bin/python bench/bench_image.py                # 0.2 GB and 2 GB layers
    .venv/bin/python bench/bench_image.py --gb 0.1 0.5   # other sizes
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

CHUNK = 1 << 20

CHILD = """
import json, resource, sys, time
from mlwarden.infra.image import scan_image
t0 = time.perf_counter()
issues = scan_image(sys.argv[1])
wall = time.perf_counter() - t0
summary = next(i for i in issues if i.rule == "infra.image.summary")
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "findings": len(issues), "critical": sum(i.severity == "critical" for i in issues),
                  "incomplete": sum(i.rule == "infra.image.incomplete" for i in issues),
                  "complete": summary.evidence["complete"]}))
"""


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


class _HashWriter(io.RawIOBase):
    """Hashes what passes through to ``out`` (the uncompressed layer: its diff_id)."""

    def __init__(self, out) -> None:  # type: ignore[no-untyped-def]
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        self.sha.update(b)
        self.size += len(b)
        return self.out.write(b)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo bench",))


def write_layer(path: Path, files: list[tuple[str, int | bytes]]) -> tuple[str, str, int]:
    """A gzip layer blob at ``path``: (blob digest, diff_id, blob size)."""
    with open(path, "wb") as raw:
        gz = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0)
        hashed = _HashWriter(gz)
        with tarfile.open(fileobj=hashed, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for name, content in files:
                info = tarfile.TarInfo(name)
                info.size = content if isinstance(content, int) else len(content)
                data = _Zeros(content) if isinstance(content, int) else io.BytesIO(content)
                tar.addfile(info, io.BufferedReader(data, CHUNK) if isinstance(content, int) else data)
        gz.close()
    blob_sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            blob_sha.update(chunk)
    return "sha256:" + blob_sha.hexdigest(), "sha256:" + hashed.sha.hexdigest(), path.stat().st_size


def build_image(root: Path, gb: float) -> Path:
    base = root / "base.gz"
    big = root / "big.gz"
    layers = [write_layer(base, [("app/model.pkl", pickle.dumps({"x": _Evil()})),
                                 ("app/config.yaml", b"threshold: 0.5\n")]),
              write_layer(big, [("var/lib/sparse.img", int(gb * (1 << 30)))])]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": "1000"},
                         "rootfs": {"type": "layers", "diff_ids": [d for _, d, _ in layers]}}).encode()
    cfg_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": cfg_digest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": d, "size": s} for d, _, s in layers]}).encode()
    man_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [{"digest": man_digest, "size": len(manifest)}]}).encode()
    out = root / f"image-{gb:g}gb.tar"
    with tarfile.open(out, "w") as tar:
        for name, data in (("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", index),
                           (f"blobs/sha256/{man_digest[7:]}", manifest), (f"blobs/sha256/{cfg_digest[7:]}", config)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for path, (digest, _, _) in zip((base, big), layers):
            tar.add(path, arcname=f"blobs/sha256/{digest[7:]}")
    base.unlink()
    big.unlink()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, nargs="+", default=[0.2, 2.0])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gb in args.gb:
            t0 = time.perf_counter()
            image = build_image(Path(tmp), gb)
            built = time.perf_counter() - t0
            run = subprocess.run([sys.executable, "-c", CHILD, str(image)], capture_output=True, text=True, check=True)
            result = json.loads(run.stdout.strip().splitlines()[-1])
            rows.append((gb, image.stat().st_size / 1e6, built, result))
            image.unlink()
    print(f"{'layer (GB of zeros)':>20} {'archive MB':>11} {'build s':>8} {'scan s':>7} {'GB/s':>6} "
          f"{'peak RSS MB':>12} {'critical':>9} {'incomplete':>11} {'complete':>9}")
    for gb, mb, built, r in rows:
        print(f"{gb:>20g} {mb:>11.1f} {built:>8.1f} {r['wall_s']:>7.1f} {gb / r['wall_s']:>6.2f} "
              f"{r['peak_rss_mb']:>12.0f} {r['critical']:>9} {r['incomplete']:>11} {r['complete']!s:>9}")


if __name__ == "__main__":
    main()
