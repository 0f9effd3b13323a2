"""An image's final filesystem, rebuilt from its layers without unpacking them.

The first pass streams every layer once, base first, and keeps only tar headers (and the first
bytes of each file, to recognise a pickle without a model suffix). Whiteouts apply to the
layers below the one that holds them, as the overlay filesystem does: ``dir/.wh.NAME`` deletes
``dir/NAME`` and everything under it, ``dir/.wh..wh..opq`` hides everything below ``dir``
that came from lower layers. The result is the final view (path → the member that supplies
it) plus the *buried* files: deleted or replaced in a later layer, absent from the running
container but still shipped, byte for byte, in the image. The second pass
(:func:`walk_layer` with a visitor) re-streams only the layers that hold files someone asked to read.

Member names that climb out of the root, hardlinks that point out of it and symlinks that
resolve above it are findings; so is every digest that does not match.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field

from ..findings import Severity
from .base import InfraIssue
from .image_layout import ImageRef, LayerRef, mismatch
from .image_store import BlobStore, Report, incomplete, normalize
from .image_stream import Budget, LayerStream, LimitHit, open_tar

WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
HEAD = 8  # bytes kept per file: enough for pickle, numpy, GGUF and legacy torch magic


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One path of the image as a layer supplies it (tar header facts only)."""

    path: str
    layer: int
    seq: int  # ordinal of the member in its layer tar
    kind: str  # file, dir, symlink, hardlink, other
    mode: int
    size: int
    uid: int
    link: str = ""
    head: bytes = b""
    content: tuple[int, int] | None = None  # (layer, seq) of the member holding the bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Buried:
    """A file present in a lower layer but gone from the final view: it still ships in the image."""

    entry: Entry
    removed_in: int
    how: str


@dataclass(kw_only=True)
class FileView:
    entries: dict[str, Entry] = field(default_factory=dict)
    buried: list[Buried] = field(default_factory=list)
    complete: bool = True
    members: int = 0


def member_problem(name: str) -> str | None:
    """Why a layer member name escapes the root. Not the zip rules: Linux names may hold ``\\``."""
    if name.startswith("/"):
        return "is an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "climbs out of the root with '..'"
    if "\0" in name:
        return "contains a NUL byte"
    return None


def layer_where(label: str, layer: LayerRef, path: str) -> str:
    return f"{label}!/{layer.label}/{path}"


def walk_layer(store: BlobStore, image: ImageRef, index: int, budget: Budget, report: Report, *, label: str,
               verify: bool, visit: Callable[[int, tarfile.TarInfo, tarfile.TarFile], bool]) -> bool:
    """Call ``visit(seq, header, tar)`` for each member of one layer until it returns False.

    Limits and corruption, met by the walk or by ``visit`` reading a member, become findings.
    With ``verify`` the blob is read to its end and its digests are checked against the
    manifest and config. True when the walk reached the end (or ``visit`` stopped it).
    """
    layer = image.layers[index]
    where = f"{label}!/{layer.label}"
    if layer.key not in store.names():
        report(incomplete(where, f"layer blob {layer.key} is missing from the image archive"))
        return False
    with store.open(layer.key) as raw:
        stream = LayerStream(raw, budget)
        seq = 0
        try:
            tar = open_tar(stream, budget.limits)
            while (info := tar.next()) is not None:
                tar.members = []  # type: ignore[attr-defined]  # stream mode keeps every header otherwise: memory grows with the layer
                if not visit(seq, info, tar):
                    return True
                seq += 1
                if seq >= budget.limits.max_members:
                    raise LimitHit(f"the layer holds more than {budget.limits.max_members} members")
            if not verify:
                return True
            buffered = getattr(tar.fileobj, "buf", b"")  # tarfile's read-ahead past the end blocks
            trailing = stream.finish(buffered)
        except (LimitHit, tarfile.TarError, OSError, EOFError, ValueError) as exc:
            why = str(exc) if isinstance(exc, LimitHit) else f"the layer tar is corrupt ({exc})"
            report(incomplete(where, f"{why} after {seq} members"))
            if verify:  # the blob's own digest still tells a damaged or swapped blob from a hostile one
                stream.blob.drain()
                _check_digests(where, layer, stream, report, uncompressed=False)
            return False
    _check_digests(where, layer, stream, report, uncompressed=True)
    if trailing:
        report(incomplete(where, f"the layer's tar ends after {seq} members but data follows: a corrupt "
                          "header stopped the walk"))
    if stream.truncated:
        report(incomplete(where, "the layer's gzip stream is truncated"))
    return not trailing and not stream.truncated


def _check_digests(where: str, layer: LayerRef, stream: LayerStream, report: Report, *, uncompressed: bool) -> None:
    if layer.digest and layer.digest.startswith("sha256:") and stream.blob_digest != layer.digest:
        report(mismatch(where, f"layer blob {layer.key}", layer.digest, stream.blob_digest))
    if layer.size is not None and layer.size != stream.blob.count:
        report(mismatch(where, f"layer blob {layer.key}", f"{layer.size} bytes", f"{stream.blob.count} bytes"))
    if uncompressed and layer.diff_id and layer.diff_id.startswith("sha256:") and stream.diff_id != layer.diff_id:
        report(mismatch(where, f"the uncompressed layer {layer.key} (config rootfs.diff_ids)",
                        layer.diff_id, stream.diff_id))


def build_view(store: BlobStore, image: ImageRef, budget: Budget, report: Report, *, label: str,
               keep_buried: Callable[[Entry], bool]) -> FileView:
    """Walk every layer once and apply whiteouts: the image's final file view."""
    view = FileView()
    layers = image.layers[: budget.limits.max_layers]
    if len(image.layers) > len(layers):
        report(incomplete(label, f"the image has {len(image.layers)} layers; only {len(layers)} are read"))
        view.complete = False
    for index, layer in enumerate(layers):
        walk = _LayerWalk(view, index, layer, report, label)
        done = walk_layer(store, image, index, budget, report, label=label, verify=True, visit=walk.visit)
        view.complete = view.complete and done
        _apply(view, walk.here, walk.deleted, walk.opaque, index, keep_buried)
    return view


class _LayerWalk:
    """What the first pass keeps of one layer: its entries and its whiteouts, applied after it."""

    def __init__(self, view: FileView, index: int, layer: LayerRef, report: Report, label: str) -> None:
        self.view, self.index, self.layer, self.report, self.label = view, index, layer, report, label
        self.here: list[Entry] = []
        self.deleted: set[str] = set()
        self.opaque: set[str] = set()
        self.files_here: dict[str, int] = {}

    def visit(self, seq: int, info: tarfile.TarInfo, tar: tarfile.TarFile) -> bool:
        self.view.members += 1
        entry = _entry(info, self.index, seq, tar, self.files_here, self.view.entries, self.report, self.layer,
                       self.label)
        if entry is not None:
            base = posixpath.basename(entry.path)
            if base == OPAQUE:
                self.opaque.add(posixpath.dirname(entry.path))
            elif base.startswith(WHITEOUT):
                self.deleted.add(posixpath.join(posixpath.dirname(entry.path), base[len(WHITEOUT):]))
            else:
                self.here.append(entry)
        return True


def _entry(info: tarfile.TarInfo, index: int, seq: int, tar: tarfile.TarFile, files_here: dict[str, int],
           lower: dict[str, Entry], report: Report, layer: LayerRef, label: str) -> Entry | None:
    problem = member_problem(info.name)
    if problem:
        report(InfraIssue(rule="infra.image.layer.path_traversal", severity=Severity.HIGH,
                          path=layer_where(label, layer, info.name), evidence={"member": info.name},
                          message=f"layer member {info.name!r} {problem}: a tool that unpacks this layer "
                          "naively writes outside its target folder",
                          remediation="Do not unpack or run this image; rebuild it from a trusted Dockerfile."))
        return None
    path = normalize(info.name)
    if not path:
        return None
    kind = ("file" if info.isreg() else "dir" if info.isdir() else "symlink" if info.issym()
            else "hardlink" if info.islnk() else "other")
    head, content, size = b"", None, info.size
    if kind == "file":
        files_here[path] = seq
        content = (index, seq)
        if info.size:
            fh = tar.extractfile(info)
            head = fh.read(HEAD) if fh else b""
    elif kind == "hardlink":
        target = normalize(info.linkname)
        if member_problem(info.linkname):
            report(InfraIssue(rule="infra.image.layer.link_escape", severity=Severity.HIGH,
                              path=layer_where(label, layer, path), evidence={"target": info.linkname},
                              message=f"hard link {path!r} points to {info.linkname!r}, outside the image root: "
                              "unpacking it naively links a host file",
                              remediation="Do not unpack or run this image; rebuild it from a trusted Dockerfile."))
        elif target in files_here:
            content = (index, files_here[target])
        elif target in lower and lower[target].content:
            content, size = lower[target].content, lower[target].size
    elif kind == "symlink" and not info.linkname.startswith("/"):
        resolved = posixpath.normpath(posixpath.join("/", posixpath.dirname(path), info.linkname))
        climbs = posixpath.normpath(posixpath.join(posixpath.dirname(path), info.linkname)).startswith("..")
        if climbs:
            report(InfraIssue(rule="infra.image.layer.link_escape", severity=Severity.MEDIUM,
                              path=layer_where(label, layer, path), evidence={"target": info.linkname},
                              message=f"symbolic link {path!r} → {info.linkname!r} climbs above the image root: "
                              f"a runtime clamps it to {resolved!r}, a tool unpacking the layer follows it out",
                              remediation="Use links that stay inside the image."))
    elif kind == "other" and (info.ischr() or info.isblk()):
        report(InfraIssue(rule="infra.image.layer.device", severity=Severity.MEDIUM,
                          path=layer_where(label, layer, path), evidence={"type": "char" if info.ischr() else "block"},
                          message=f"layer holds a device node {path!r}; images never need one (the runtime "
                          "provides /dev)", remediation="Rebuild the image without device nodes."))
    return Entry(path=path, layer=index, seq=seq, kind=kind, mode=info.mode, size=size, uid=info.uid,
                 link=info.linkname, head=head, content=content)


def _apply(view: FileView, here: list[Entry], deleted: set[str], opaque: set[str], index: int,
           keep_buried: Callable[[Entry], bool]) -> None:
    """Lay one layer over the view: its whiteouts first (they only hide lower layers), then its files."""
    entries = view.entries
    subtree = set(deleted) | {e.path for e in here if e.kind != "dir" and e.path in entries
                              and entries[e.path].kind == "dir"}
    if subtree or opaque:
        for path in list(entries):
            how = _hidden(path, subtree, opaque, deleted)
            if how:
                gone = entries.pop(path)
                if gone.kind in ("file", "hardlink") and keep_buried(gone):
                    view.buried.append(Buried(entry=gone, removed_in=index, how=how))
    for e in here:
        old = entries.get(e.path)
        if old is not None and old.kind in ("file", "hardlink") and keep_buried(old):
            view.buried.append(Buried(entry=old, removed_in=index, how="replaced by a later layer"))
        entries[e.path] = e


def _hidden(path: str, subtree: set[str], opaque: set[str], deleted: set[str]) -> str | None:
    if path in subtree:
        return "deleted by a whiteout" if path in deleted else "replaced by a later layer"
    parent = path
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        if parent in subtree:
            return "deleted by a whiteout" if parent in deleted else "replaced by a later layer"
        if parent in opaque:
            return "hidden by an opaque directory"
    if "" in opaque:  # an opaque marker at the root hides every lower path
        return "hidden by an opaque directory"
    return None

