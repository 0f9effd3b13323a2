"""One layer blob as a stream of tar bytes: decompressed, hashed and bounded as it is read.

A layer may be gigabytes, so nothing here buffers more than a chunk. The blob is hashed as
it is read (its digest must match the manifest), decompressed by content — gzip (several
members allowed, as ``pigz`` writes), zstd, or a plain tar — and the tar bytes are hashed
again (the config's ``diff_id``). Decompression is ours rather than ``tarfile``'s ``r|*`` so
the output can be capped per read: a compression bomb costs time, never memory, and the
ratio and size limits stop it (:class:`LimitHit`). ``tarfile`` then reads the plain tar in
stream mode (``r|``) through :class:`SafeTarInfo`, which refuses giant pax/GNU headers that
``tarfile`` would otherwise read whole into memory.
"""

from __future__ import annotations

import hashlib
import tarfile
import time
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

CHUNK = 1 << 20
GZIP, ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True, kw_only=True)
class ImageLimits:
    """Limits on one image scan; hitting one is a HIGH "not fully scanned" finding.

    * ``max_layer_bytes`` 64 GiB and ``max_total_bytes`` 256 GiB of uncompressed tar.
    * ``max_ratio`` 1000:1 once ``bomb_min_bytes`` (4 GiB) came out of one layer: gzip peaks
      near 1030:1 on zeros, so only multi-GB runs of zeros (the sparse ``lastlog`` of a huge
      UID) or a crafted zstd stream trip it.
    * ``max_header_bytes`` 1 MiB for one pax or GNU long-name header (real ones are < 1 KB).
    * ``max_members`` 2M per layer, ``max_layers`` 256 (Docker refuses more than 127).
    * ``model_bytes`` 32 GiB: a model file larger than this is not scanned (spilled to a
      temporary file past ``spool_bytes``); ``text_bytes`` 1 MiB per file read for secrets,
      ``max_text_files`` 20,000 such files per image.
    * ``max_seconds`` 900 for the whole image.
    """

    max_layer_bytes: int = 64 << 30
    max_total_bytes: int = 256 << 30
    max_ratio: float = 1000.0
    bomb_min_bytes: int = 4 << 30
    max_header_bytes: int = 1 << 20
    max_members: int = 2_000_000
    max_layers: int = 256
    model_bytes: int = 32 << 30
    spool_bytes: int = 16 << 20
    text_bytes: int = 1 << 20
    max_text_files: int = 20_000
    max_seconds: float = 900.0


class LimitHit(Exception):
    """A limit stopped the walk; the message says which."""


class Budget:
    """What the whole image scan may still spend: uncompressed bytes and time."""

    def __init__(self, limits: ImageLimits) -> None:
        self.limits = limits
        self.total = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline


class _Hashing:
    """Reads the raw blob, counting and hashing every byte."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.sha, self.count = raw, hashlib.sha256(), 0

    def read(self, n: int = CHUNK) -> bytes:
        data = self.raw.read(n if n and n > 0 else CHUNK)
        self.sha.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class LayerStream:
    """The uncompressed tar bytes of one layer blob, read with limits."""

    def __init__(self, raw: BinaryIO, budget: Budget) -> None:
        self.blob = _Hashing(raw)
        self.budget = budget
        self.sha = hashlib.sha256()
        self.out = 0
        self.truncated = False
        head = self.blob.read(4)
        self.compression = "gzip" if head[:2] == GZIP else "zstd" if head == ZSTD else "none"
        self._pending = head
        self._gz: Any = None
        self._gz_started = False  # a gzip member began: ending before its end is truncation
        self._gz_done = False
        self._zs: Any = None
        if self.compression == "gzip":
            self._gz = zlib.decompressobj(31)
        elif self.compression == "zstd":
            import zstandard

            self._zs = zstandard.ZstdDecompressor().stream_reader(
                _Prefixed(head, self.blob), read_across_frames=True)  # type: ignore[arg-type]
            self._pending = b""

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n is None or n < 0 else n
        if self.compression == "none":
            head, self._pending = self._pending, b""
            data = head + self.blob.read(n - len(head)) if n > len(head) else head
        elif self.compression == "zstd":
            try:
                data = self._zs.read(n)
            except Exception as exc:  # zstandard.ZstdError: a corrupt frame ends the layer
                raise LimitHit(f"the zstd stream is corrupt ({exc})") from exc
        else:
            data = self._gunzip(n)
        self._account(data)
        return data

    def _gunzip(self, n: int) -> bytes:
        out = b""
        while len(out) < n and not self._gz_done:
            if not self._pending:
                self._pending = self.blob.read(CHUNK)
                if not self._pending:
                    self.truncated = self._gz_started and not self._gz.eof
                    break
            self._gz_started = True
            try:
                out += self._gz.decompress(self._pending, n - len(out))
            except zlib.error as exc:
                raise LimitHit(f"the gzip stream is corrupt ({exc})") from exc
            self._pending = self._gz.unconsumed_tail
            if self._gz.eof:  # gzip allows several members back to back (pigz, concatenated layers)
                rest = self._gz.unused_data + self._pending
                self._gz, self._gz_started = zlib.decompressobj(31), False
                self._pending = rest
                if rest and rest[:2] != GZIP:
                    # bytes after the last member are not gzip: stop there, as tar stops at its end
                    # blocks; finish() still hashes them with the blob
                    self._pending, self._gz_done = b"", True
        return out

    def _account(self, data: bytes) -> None:
        self.sha.update(data)
        self.out += len(data)
        self.budget.total += len(data)
        limits = self.budget.limits
        if self.out > limits.max_layer_bytes:
            raise LimitHit(f"the layer unpacks to more than {limits.max_layer_bytes} bytes")
        if self.budget.total > limits.max_total_bytes:
            raise LimitHit(f"the image unpacks to more than {limits.max_total_bytes} bytes")
        if self.out > limits.bomb_min_bytes and self.out > limits.max_ratio * max(self.blob.count, 1):
            raise LimitHit(f"the layer expands more than {limits.max_ratio:g}:1 past {limits.bomb_min_bytes} "
                           "bytes (a compression bomb)")
        if self.budget.out_of_time():
            raise LimitHit(f"the image scan time limit of {limits.max_seconds:g}s was reached")

    def finish(self, buffered: bytes) -> bool:
        """Read what ``tarfile`` left so both digests cover the whole blob; True when anything
        but zero padding follows the end of the archive (``buffered``: what ``tarfile`` had read
        ahead). ``tarfile`` ends quietly at a corrupt header, so this is how a walk that stopped
        early is told from a complete one."""
        trailing = bool(buffered.strip(b"\0"))
        while data := self.read(CHUNK):
            trailing = trailing or bool(data.strip(b"\0"))
        self.blob.drain()
        return trailing

    @property
    def blob_digest(self) -> str:
        return "sha256:" + self.blob.sha.hexdigest()

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class _Prefixed:
    """The 4 bytes already read to sniff the compression, then the rest of the blob."""

    def __init__(self, head: bytes, rest: _Hashing) -> None:
        self._head, self._rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        return self._rest.read(n)


class SafeTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses extended headers (pax, GNU long names) over a size cap."""

    max_header_bytes = 1 << 20

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                         tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) and self.size > self.max_header_bytes:
            raise GiantHeader(f"an extended tar header claims {self.size} bytes (cap {self.max_header_bytes})")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


class GiantHeader(tarfile.HeaderError):
    """An extended header too large to read into memory."""


def open_tar(stream: LayerStream, limits: ImageLimits) -> tarfile.TarFile:
    info_cls = type("BoundTarInfo", (SafeTarInfo,), {"max_header_bytes": limits.max_header_bytes})
    # 1 MiB reads: the default 10 KiB record makes skipping a GB member a million small reads
    return tarfile.open(fileobj=stream, mode="r|", tarinfo=info_cls, bufsize=CHUNK)  # type: ignore[call-overload]
