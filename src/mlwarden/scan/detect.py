"""Format sniffing: which scanner a stream needs, decided by its first bytes.

Content decides, never the extension alone: a pickle named ``.bin`` is a pickle, and a
pickle is recognised by walking it (``picklesniff``), whatever opcode it opens with. Names
only break ties for formats without a magic number (ONNX and SavedModel are bare
protobuf) and decide whether an unrecognised file *should* have been a model
(``.pkl`` full of random bytes is suspicious; ``notes.txt`` is not).
"""

from __future__ import annotations

import struct
import zlib

from .picklesniff import MORE, YES, head_verdict

HEAD_BYTES = 4096  # how much of a stream the sniffers look at

MODEL_SUFFIXES = frozenset(
    [".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt", ".h5", ".hdf5", ".keras", ".onnx", ".safetensors", ".gguf", ".npy", ".npz", ".pb", ".model", ".sav", ".tar", ".zip", ".gz", ".bz2", ".xz", ".lzma", ".z"]
)
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".lzma", ".z", ".zlib")

ZIP_LOCAL = b"PK\x03\x04"
ZIP_EOCD = b"PK\x05\x06"
GZIP = b"\x1f\x8b"
BZ2 = b"BZh"
XZ = b"\xfd7zXZ\x00"
SEVEN_ZIP = b"7z\xbc\xaf\x27\x1c"
NPY = b"\x93NUMPY"
GGUF = b"GGUF"
HDF5 = b"\x89HDF\r\n\x1a\n"
JOBLIB_ZF = b"ZF"  # joblib < 0.10: "ZF" + 19 bytes of hex length + zlib stream
# protocol-2 pickle of the legacy torch magic number 0x1950a86a20f9469cfc6c (LONG1, 10 bytes)
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def suffix_of(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return "." + base.rsplit(".", 1)[-1] if "." in base else ""


def is_model_name(name: str) -> bool:
    """True when a file's name says it should hold a model (or an archive of one)."""
    return suffix_of(name) in MODEL_SUFFIXES


def strip_compression_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def looks_like_zlib(head: bytes) -> bool:
    if len(head) < 2 or head[0] & 0x0F != 8 or head[0] >> 4 > 7:
        return False
    if (head[0] * 256 + head[1]) % 31:
        return False
    try:  # a header check passes by chance 1 in 31 times; make sure it inflates
        zlib.decompressobj().decompress(head[:256], 64)
    except zlib.error:
        return False
    return True


def looks_like_lzma_alone(head: bytes) -> bool:
    """The legacy .lzma ("alone") header joblib's ``lzma`` compressor writes: props 0x5d."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dict_size = struct.unpack_from("<I", head, 1)[0]
    return dict_size & (dict_size - 1) == 0 or dict_size == 0xFFFFFFFF or head[1] == 0


def looks_like_safetensors(head: bytes, size: int | None = None) -> bool:
    """``u64`` header length, then a JSON object. A length past the end of the file still
    counts (the scanner reports it); an absurd one (over 1 TiB) does not."""
    if len(head) < 10:
        return False
    (n,) = struct.unpack_from("<Q", head, 0)
    return 2 <= n < 1 << 40 and head[8:9] == b"{"


def looks_like_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:  # v7 tar: no magic, only a header checksum
        stored = int(head[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    block = head[:148] + b" " * 8 + head[156:512]
    return stored == sum(block) and head[0] != 0


def looks_like_hdf5(head: bytes) -> bool:
    # HDF5 may sit after a user block of 512, 1024, 2048 … bytes
    return any(head[off : off + 8] == HDF5 for off in (0, 512, 1024, 2048) if off < len(head))


def looks_like_protobuf(head: bytes, fields: int = 4) -> bool:
    """Protobuf has no magic: accept a head that parses as a few well-formed fields."""
    pos, seen = 0, 0
    while pos < len(head) and seen < fields:
        tag, pos = _varint(head, pos)
        if tag is None or tag >> 3 == 0 or tag >> 3 > 536870911:
            return False
        wire = tag & 7
        if wire == 0:
            value, pos = _varint(head, pos)
            if value is None:
                return False
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(head, pos)
            if length is None:
                return False
            pos += length
            if pos > len(head):
                return seen >= 1  # a long field running past the head is fine
        else:
            return False
        seen += 1
    return seen >= 1 and pos <= len(head)


def _varint(data: bytes, pos: int) -> tuple[int | None, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None, pos


def looks_like_pickle(head: bytes, size: int | None = None) -> bool:
    """A PROTO opening, or a head the unpickler walks without failing (``picklesniff``).

    ``size`` is the full content's size: when the head ends before the walk decides,
    this answers False and :func:`pickle_undecided` True, and the caller walks the stream.
    """
    if head[:1] == b"\x80" and (len(head) < 2 or head[1] <= 5):
        return True
    return head_verdict(head, size) == YES


def pickle_undecided(head: bytes, size: int | None) -> bool:
    """True when only the whole stream can tell whether ``head`` opens a pickle."""
    return head_verdict(head, size) == MORE


def looks_like_text(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the head's end is fine
        return exc.start >= len(head) - 3
    return True


def sniff(head: bytes, name: str, size: int | None = None) -> str | None:
    """The format of a stream whose first bytes are ``head``; None when nothing matches."""
    checks: tuple[tuple[str, bool], ...] = (
        ("zip", head.startswith(ZIP_LOCAL) or head.startswith(ZIP_EOCD)),
        ("npy", head.startswith(NPY)),
        ("gguf", head.startswith(GGUF)),
        ("hdf5", looks_like_hdf5(head)),
        ("7z", head.startswith(SEVEN_ZIP)),
        ("gzip", head.startswith(GZIP)),
        ("bz2", head.startswith(BZ2)),
        ("xz", head.startswith(XZ)),
        ("pytorch-legacy", head.startswith(TORCH_LEGACY_MAGIC)),
        ("tar", looks_like_tar(head)),
        ("safetensors", looks_like_safetensors(head, size)),
        ("pickle", looks_like_pickle(head, size)),
        ("joblib-zfile", head.startswith(JOBLIB_ZF) and looks_like_zlib(head[21:])),
        ("zlib", looks_like_zlib(head)),
        ("lzma", looks_like_lzma_alone(head) and suffix_of(name) not in (".txt", ".csv")),
    )
    for fmt, hit in checks:
        if hit:
            return fmt
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if looks_like_protobuf(head):
        if base.endswith(".onnx"):
            return "onnx"
        if base.endswith(".pb") and ("saved_model" in base or base.endswith("model.pb")):
            return "savedmodel"
    return None
