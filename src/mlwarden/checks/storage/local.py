"""storage.local.* — who on this host can change (or read) the data and the model files.

Every local data file or folder of the spec (folders walked recursively, up to
``MAX_PATHS`` entries) and the model artifact, plus their parent folders up to the spec's
folder, are examined with ``os.lstat``: a symlink's own mode means nothing, so a link is
reported for where it points and its target is judged with ``os.stat`` (the evidence says
``via_symlink``); links inside a dataset folder are not walked into. Whether "others" can
actually reach a path (execute permission on every folder above it) decides whether a
world-writable path is exploitable now or only latent.

Two ids, one per pipeline stage, so the report colours the data and the artifact stage
separately: ``storage.local.data`` and ``storage.local.artifact``. A parent folder shared
by both (typically the spec's folder) is reported by each, because the consequence differs:
swapped training data in one, a swapped model in the other.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...findings import Location, Severity
from ...registry import AuditContext, Check, Outcome, Skip, register
from ...spec import Spec

MAX_PATHS = 100_000
SAMPLE = 20

# Role → how much a write by someone else hurts: training inputs and the model are poisoning
# targets (critical); test and production data only skew what the team measures (high).
_CRITICAL_ROLES = ("train", "feedback", "artifact")
_ORDER = ("train", "feedback", "test", "production", "artifact")

_S = Severity
# kind → (severity for critical roles, for the others, title template, why, fix)
_KINDS: dict[str, tuple[Severity, Severity, str, str, str]] = {
    "world_writable": (
        _S.CRITICAL, _S.HIGH, "{what} writable by every user on the host",
        "Any account on the machine (a compromised service, another tenant) can rewrite or add files "
        "here and so poison what the pipeline trains on or serves; new files in a dataset folder join "
        "the split silently.",
        "Remove write access for others: chmod o-w (and g-w unless the group is trusted) on the files "
        "and folders listed; keep data and models in folders only the pipeline's account can write."),
    "world_writable_parent_sticky": (
        _S.HIGH, _S.MEDIUM, "{what} lies in a folder every user can write (sticky bit set)",
        "The sticky bit stops others renaming or deleting files they don't own, but they can still "
        "create files beside them: a file the pipeline writes next, or a look-alike it may pick up.",
        "Move the data and model out of shared, world-writable folders such as /tmp."),
    "world_writable_latent": (
        _S.LOW, _S.LOW, "{what} world-writable, but others cannot reach it now",
        "The mode grants write to everyone; a folder above it currently denies others access, so it is "
        "not exploitable today, but one chmod on that folder (or a copy with preserved modes) makes it so.",
        "chmod o-w on the paths listed; don't rely on a parent folder to hide loose permissions."),
    "group_writable": (
        _S.MEDIUM, _S.LOW, "{what} writable by its group",
        "Every member of the owning group can alter the data or model; acceptable only when that group "
        "is exactly the team that owns the pipeline.",
        "chmod g-w, or make sure the group holds only the pipeline's owners."),
    "world_readable": (
        _S.LOW, _S.LOW, "{what} readable by every user on the host",
        "Matters when the data is sensitive (personal data, proprietary features) or the model is an "
        "asset: any account on the host can copy it (exfiltration, model theft).",
        "chmod o-r on the files (and o-rx on their folders) if the data or model is sensitive."),
    "foreign_owner": (
        _S.MEDIUM, _S.MEDIUM, "{what} owned by another user",
        "Files owned neither by the user running the audit, nor by the spec file's owner, nor by root "
        "are controlled by someone else: that owner can change their content and their permissions at "
        "any time.",
        "chown the files to the pipeline's account, or confirm the owner is trusted."),
    "symlink_outside": (
        _S.MEDIUM, _S.MEDIUM, "{what} a symlink pointing outside the spec's folder",
        "What the pipeline reads is decided by wherever the link points; whoever controls that "
        "location controls the data, and reviews of the spec's folder miss it.",
        "Copy the data into the pipeline's folder, or point the spec at the real location."),
}
_WHAT = {"data": "Data files or folders are", "artifact": "The model artifact or its folders are"}


@dataclass
class _Seen:
    """What was found per (kind, role): paths with their evidence, and a total count."""

    items: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    examined: int = 0
    truncated: bool = False


class _LocalPermissions(Check):
    target: ClassVar[str]

    def locations(self, spec: Spec) -> list[tuple[str, Path]]:
        raise NotImplementedError

    def run(self, ctx: AuditContext) -> Outcome:
        spec = self.spec
        base = spec.base_dir.resolve()
        locs = self.locations(spec)
        if not locs:
            raise Skip(f"no local {self.target} location in the spec (remote storage is audited by storage.s3.*)")
        trusted = trusted_uids(spec)
        seen = _Seen()
        walker = _Walker(base, trusted, seen)
        missing = []
        for role, path in sorted(locs, key=lambda rp: _ORDER.index(rp[0])):
            if not os.path.lexists(path):
                missing.append(role)
                continue
            walker.visit(path, role, deep=True)
            for parent in _parents(path, base):
                walker.visit(parent, role, deep=False, parent=True)
        findings = [self._finding(kind, role, paths, spec) for (kind, role), paths in sorted(seen.items.items())]
        metrics = {"paths_examined": seen.examined, "path_limit": MAX_PATHS, "truncated": seen.truncated,
                   "trusted_uids": sorted(trusted), "missing": missing,
                   "by_kind": {k: sum(len(v) for (kk, _), v in seen.items.items() if kk == k)
                               for k in sorted({k for k, _ in seen.items})}}
        if seen.truncated:
            findings.append(self.finding(
                key=("truncated",), severity=Severity.INFO,
                title=f"Only the first {MAX_PATHS} paths were examined",
                description="The data folders hold more entries than the bound; the rest were not checked.",
                remediation="Audit the remaining folders separately, or check them with find -perm.",
                evidence={"path_limit": MAX_PATHS}))
        return Outcome(findings=findings, metrics=metrics)

    def _finding(self, kind: str, role: str, paths: list[dict[str, Any]], spec: Spec) -> Any:
        crit, other, title, why, fix = _KINDS[kind]
        severity = crit if role in _CRITICAL_ROLES else other
        if kind == "group_writable" and all(p.get("private_group") for p in paths):
            severity = Severity.INFO
        paths = sorted(paths, key=lambda p: p["path"])
        where = "the model artifact" if role == "artifact" else f"data.{role}"
        return self.finding(
            key=(kind, role), severity=severity,
            title=f"{title.format(what=_WHAT[self.target])} ({len(paths)} path(s) of {where})",
            description=why, remediation=fix,
            evidence={"kind": kind, "role": role, "count": len(paths), "paths": paths[:SAMPLE]},
            location=Location(artifact=paths[0]["path"]),
        )


class _Walker:
    def __init__(self, base: Path, trusted: frozenset[int], seen: _Seen) -> None:
        self.base, self.trusted, self.seen = base, trusted, seen
        self.done: set[str] = set()
        self.reach: dict[str, str | None] = {}

    def visit(self, path: Path, role: str, *, deep: bool, parent: bool = False) -> None:
        """Judge one path; ``deep`` walks a folder's content, ``parent`` marks a folder above the data."""
        key = str(path)
        if key in self.done:
            return
        if self.seen.examined >= MAX_PATHS:
            self.seen.truncated = True
            return
        self.done.add(key)
        self.seen.examined += 1
        try:
            st = os.lstat(path)
        except OSError:
            return
        via: str | None = None
        if stat.S_ISLNK(st.st_mode):
            real = path.resolve()
            if not _inside(real, self.base):
                self._add("symlink_outside", role, path, st, target=str(real))
            try:
                st = os.stat(path)  # judge the target, and say so
            except OSError:
                return
            via, path = str(path), real
        self._judge(path, st, role, via, parent=parent)
        if deep and stat.S_ISDIR(st.st_mode):
            self._walk(path, role)  # the spec's own location may be a link to a folder: walk its target

    def _walk(self, root: Path, role: str) -> None:
        stack = [root]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if self.seen.examined >= MAX_PATHS:
                    self.seen.truncated = True
                    return
                p = Path(e.path)
                if e.is_dir(follow_symlinks=False):
                    self.visit(p, role, deep=False)
                    stack.append(p)
                else:
                    self.visit(p, role, deep=False)

    def _judge(self, path: Path, st: os.stat_result, role: str, via: str | None, *, parent: bool) -> None:
        mode, isdir = st.st_mode, stat.S_ISDIR(st.st_mode)
        blocked = self._blocked(path)
        extra = {"via_symlink": via} if via else {}
        if mode & stat.S_IWOTH:
            if blocked:
                self._add("world_writable_latent", role, path, st, blocked_by=blocked, **extra)
            elif parent and isdir and mode & stat.S_ISVTX:
                self._add("world_writable_parent_sticky", role, path, st, **extra)
            else:
                self._add("world_writable", role, path, st, **extra)
        elif mode & stat.S_IWGRP:
            self._add("group_writable", role, path, st, private_group=_private_group(st), **extra)
        if not isdir and mode & stat.S_IROTH and not blocked:
            self._add("world_readable", role, path, st, **extra)
        if st.st_uid not in self.trusted:
            self._add("foreign_owner", role, path, st, **extra)

    def _blocked(self, path: Path) -> str | None:
        """The first folder above ``path`` that others cannot traverse, or None."""
        for d in reversed(path.parents):
            k = str(d)
            if k not in self.reach:
                try:
                    ok = bool(os.stat(d).st_mode & stat.S_IXOTH)
                except OSError:
                    ok = False
                self.reach[k] = None if ok else k
            if self.reach[k]:
                return self.reach[k]
        return None

    def _add(self, kind: str, role: str, path: Path, st: os.stat_result, **extra: Any) -> None:
        shown = str(path.relative_to(self.base)) if _inside(path, self.base) else str(path)
        item = {"path": shown or ".", "mode": f"{stat.S_IMODE(st.st_mode):04o}",
                "owner_uid": st.st_uid, "owner": _user(st.st_uid), "group": _group(st.st_gid), **extra}
        self.seen.items.setdefault((kind, role), []).append(item)


def trusted_uids(spec: Spec) -> frozenset[int]:
    """Owners whose files are not "someone else's": the auditor, the spec's owner, root."""
    uids = {os.geteuid(), 0}
    if spec.path is not None:
        try:
            uids.add(os.stat(spec.path).st_uid)
        except OSError:
            pass
    return frozenset(uids)


def _unresolved(spec: Spec, location: str) -> Path:
    """The location as written, made absolute without resolving symlinks (spec.resolve does)."""
    p = Path(location).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else spec.base_dir / p))


def _parents(path: Path, base: Path) -> list[Path]:
    """Folders from ``path``'s parent up to the spec's folder (just the parent when outside it)."""
    if not _inside(path, base):
        return [path.parent]
    out, d = [], path.parent
    while _inside(d, base):
        out.append(d)
        if d == base:
            break
        d = d.parent
    return out


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def _private_group(st: os.stat_result) -> bool:
    """A user-private group: named after the owner and with no other members."""
    try:
        g = grp.getgrgid(st.st_gid)
        return g.gr_name == _user(st.st_uid) and not [m for m in g.gr_mem if m != g.gr_name]
    except KeyError:
        return False


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@register
class LocalDataPermissions(_LocalPermissions):
    """Finds local data files and folders that other users on the host can change or read.

    **What it finds.** Over every local dataset of the spec (folders walked recursively, up
    to 100,000 paths — the metrics say when the bound was hit) and the folders above them up
    to the spec's folder: world-writable paths; world-writable paths that a folder above
    currently hides from others (latent); paths in a world-writable folder with the sticky
    bit; group-writable paths (info when the group is the owner's private group); files
    readable by every user; paths owned by someone other than the auditor, the spec file's
    owner or root; symlinks pointing outside the spec's folder. Evidence: each path relative
    to the spec, its octal mode, owner and group. Symlinks are never judged by their own
    mode: their target is, with ``via_symlink`` in the evidence.

    **Severity.** World-writable: critical for train and feedback data (they feed training),
    high for test and production. Sticky world-writable parent: high / medium. Group-writable:
    medium / low. Foreign owner and symlinks outside: medium. World-readable and latent: low.

    **Why it matters.** Write access is all an attacker needs to poison training data
    (OWASP ML02, ATLAS AML.T0020); read access matters when the data is sensitive.

    **How to fix.** chmod o-w (and g-w) on the paths listed, chown them to the pipeline's
    account, keep data out of shared folders such as /tmp, and copy linked data in.
    """

    id = "storage.local.data"
    title = "Local data files are writable only by their owner"
    needs = ("data",)
    stage = "data"
    target = "data"
    references = ("OWASP-ML02", "AML.T0020", "AML.T0010.002", "NIST-MANAGE")

    def locations(self, spec: Spec) -> list[tuple[str, Path]]:
        return [(split, _unresolved(spec, loc)) for split, loc in spec.data.splits().items() if "://" not in loc]


@register
class LocalArtifactPermissions(_LocalPermissions):
    """Finds a local model artifact that other users on the host can replace or copy.

    **What it finds.** The model artifact and the folders above it up to the spec's folder
    (the whole folder tree when the artifact is a folder, up to 100,000 paths): world-writable
    paths (latent when a folder above hides them from others), a sticky world-writable parent,
    group-writable paths, an artifact readable by every user, paths owned by someone other
    than the auditor, the spec file's owner or root, and a symlink pointing outside the spec's
    folder. Evidence: paths relative to the spec, octal modes, owners and groups.

    **Severity.** World-writable: critical; sticky world-writable parent: high; group-writable,
    foreign owner, symlink outside: medium; world-readable and latent: low.

    **Why it matters.** Whoever can replace the model file decides what is served — and a
    pickle-based model runs their code when loaded (OWASP ML06, ATLAS AML.T0010.003); anyone
    who can read it can steal it (OWASP ML05).

    **How to fix.** chmod go-w (and o-r) on the artifact and its folders, chown them to the
    pipeline's account, and sign the artifact (``mlwarden manifest sign``).
    """

    id = "storage.local.artifact"
    title = "The local model artifact is writable only by its owner"
    needs = ("artifact",)
    stage = "artifact"
    target = "artifact"
    references = ("OWASP-ML06", "OWASP-ML05", "AML.T0010.003", "AML.M0014", "NIST-MANAGE")

    def locations(self, spec: Spec) -> list[tuple[str, Path]]:
        art = spec.model.artifact if spec.model else None
        return [("artifact", _unresolved(spec, art))] if art and "://" not in art else []
