"""How scanner issues become findings: each issue kind belongs to one artifact.* family.

Shared by the audit's artifact checks and by ``mlwarden scan``, so both report the same
findings with the same ids for the same file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ...findings import Finding, Location, fingerprint
from ...scan import FileScan
from ...scan.base import ScanIssue
from ..common import Family


FAMILIES = (
    Family("artifact.code_execution", "Model files cannot run code when loaded",
           "Pickle globals outside the allowlist (known code-execution and I/O gadgets are critical, "
           "including any submodule of a dangerous module; unknown globals are medium or high), globals the "
           "scanner cannot resolve, joblib streams laid out to hide opcodes, Keras Lambda layers and custom "
           "objects, TensorFlow ops that run Python or touch files, ONNX custom operator domains, TorchScript "
           "code and Jinja2 template injection in GGUF chat templates.",
           "Loading a pickle calls whatever it names: a poisoned model runs code on the machine that loads it, "
           "with that machine's credentials (OWASP ML06, ATLAS AML.T0011.000). Denylist scanners have been "
           "bypassed dozens of times by gadgets nobody listed; mlwarden admits only what it knows is safe.",
           "Do not load the file. Get the model from its producer again and verify its digest, or convert it "
           "to a format that cannot carry code (safetensors, ONNX). If a flagged global is legitimate, allow it "
           "with `--allow module.name` or `model.allow` in the spec.",
           ("OWASP-ML06", "AML.T0011.000", "AML.T0010.003", "AML.T0018.002"),
           ("pickle.global", "pickle.call", "pickle.joblib", "pickle.memo", "joblib.", "keras.lambda",
            "keras.custom", "keras.dangerous", "savedmodel.dangerous", "onnx.custom_op", "onnx.vendor_op",
            "torch.torchscript", "gguf.template", "numpy.object_array")),
    Family("artifact.archive", "Archives and paths are safe to unpack",
           "Archive members with traversal names or absolute paths, symlinks and hard links, device files, "
           "decompression bombs, zip tricks that make tools disagree on the members (flag bits, bad CRCs, "
           "local headers that differ from the central directory, duplicate names, data before the archive), "
           "ONNX external data outside the model folder, and links out of scanned folders.",
           "Extracting such an archive writes outside its folder or exhausts the disk; members that one tool "
           "sees and another does not are how payloads slip past scanners (ARTIFACT_THREATS: zip tricks).",
           "Rebuild the archive from trusted parts; extract with tarfile's filter='data'; keep external data "
           "next to the model.",
           ("OWASP-ML06", "AML.T0010.003"),
           ("zip.", "tar.", "archive.", "path.", "onnx.external_data")),
    Family("artifact.integrity", "Model files are well-formed and fully scanned",
           "Files the scanner could not parse or finish (truncated pickles, garbage after STOP, broken "
           "headers, out-of-range or overlapping safetensors offsets, unknown formats under model names, "
           "resource limits hit, unreadable files).",
           "A scanner error must never read as clean: a payload can sit before a corrupt tail, and a file that "
           "could not be vetted is an unvetted file.",
           "Re-export the model with its framework's own saver and rescan; raise the limits only for files "
           "you trust.",
           ("OWASP-ML06", "AML.T0010.003", "AML.M0014"),
           ()),
)

BY_ID = {f.id: f for f in FAMILIES}


def family_of(kind: str) -> Family:
    for f in FAMILIES:
        if any(kind.startswith(p) for p in f.prefixes):
            return f
    return BY_ID["artifact.integrity"]


def issue_finding(issue: ScanIssue, display: Callable[[str], str]) -> Finding:
    fam = family_of(issue.kind)
    artifact = display(issue.where.path)
    member = issue.where.member
    place = f"{artifact}!/{member}" if member else artifact
    at = f" at byte {issue.offset}" if issue.offset is not None else ""
    glob = issue.detail.get("global")
    return Finding(
        id=fingerprint(fam.id, issue.kind, artifact, member or "", glob or issue.message),
        check=fam.id, severity=issue.severity,
        title=f"{place}: {issue.message}"[:300],
        description=f"{issue.message}{at}" + (f" (in {member})" if member else "") + ".",
        remediation=issue.remediation or fam.fix,
        evidence={"kind": issue.kind, **({"offset": issue.offset} if issue.offset is not None else {}),
                  **{k: v for k, v in issue.detail.items() if isinstance(v, (str, int, float, bool, list))}},
        location=Location(artifact=artifact, member=member),
        references=fam.references,
    )


def group(scans: Iterable[FileScan], display: Callable[[str], str]) -> dict[str, tuple[list[Finding], dict]]:
    """Family id → (findings, metrics) for a set of scanned files."""
    scans = list(scans)
    out: dict[str, tuple[list[Finding], dict]] = {f.id: ([], {}) for f in FAMILIES}
    for s in scans:
        for issue in s.issues:
            out[family_of(issue.kind).id][0].append(issue_finding(issue, display))
    files = [{"path": display(s.path), "format": s.format, "size": s.size, "issues": len(s.issues)} for s in scans]
    imported = sorted({g for s in scans for gs in s.globals.values() for g in gs})
    for fid, (findings, metrics) in out.items():
        findings.sort(key=lambda f: (-f.severity.rank, f.location.artifact or "", f.id))
        metrics["files_scanned"] = len(scans)
        if fid == "artifact.integrity":
            metrics["files"] = files
        if fid == "artifact.code_execution":
            metrics["pickle_globals"] = imported
    return out
