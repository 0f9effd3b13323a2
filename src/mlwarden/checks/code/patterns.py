"""code.* checks: one per family of rules of :mod:`mlwarden.scan.code_rules`.

The code directories are scanned once per audit (the result is shared through the audit
context); each check reports the issues of its rule family. Checks are made from a
table, not written out one by one: they differ only in which rules they own and what
their documentation says.
"""

from __future__ import annotations

from typing import Any

from ...findings import Location
from ...registry import AuditContext, Check, Outcome
from ..common import Family, family_check
from ...scan.code import CodeIssue, scan_code_paths
from ...scan.code_rules import RULES


FAMILIES = (
    Family("code.unsafe_deserialization", "No unsafe deserialization of models or data",
           "Calls that unpickle or otherwise execute what they load: pickle/joblib/dill/cloudpickle/"
           "jsonpickle loads, torch.load without weights_only=True, numpy.load(allow_pickle=True), "
           "pandas.read_pickle, yaml.load without a safe loader, Keras load_model(safe_mode=False), "
           "shelve and marshal.",
           "A pickled model runs code the moment it loads: whoever can swap the file, or publish the model "
           "you download, runs code in your training job or your server.",
           "Load weights with formats that cannot carry code (safetensors, ONNX, skops with a trust list), "
           "pass weights_only=True to torch.load, use yaml.safe_load, and load pickles only through "
           "mlwarden.load_model after `mlwarden scan`.",
           ("OWASP-ML06", "AML.T0011.000", "AML.T0010.003")),
    Family("code.remote_code", "No remote code pulled in at load time",
           "trust_remote_code=True (Hugging Face) and torch.hub.load, which import and run Python from a "
           "model repository.",
           "The model repository's code runs with your job's rights; a compromised or typo-squatted "
           "repository is a supply-chain attack.",
           "Vendor and review the model code, or pin the repository to a reviewed commit sha.",
           ("OWASP-ML06", "AML.T0010.001", "AML.T0010.003")),
    Family("code.dynamic_execution", "No eval/exec of data",
           "eval, exec and compile applied to anything but a literal.",
           "Evaluating strings that come from data, configs or requests is remote code execution.",
           "Parse data with json/ast.literal_eval or an explicit parser instead of eval.",
           ("OWASP-ML06", "AML.T0011.000")),
    Family("code.archive", "Archives are extracted safely",
           "tarfile extract/extractall and shutil.unpack_archive without a filter; zip extraction.",
           "Archive members named ../../… or absolute paths, and symlinks, overwrite files outside the "
           "target folder (CVE-2007-4559 and its many descendants in ML tooling).",
           "Pass filter='data' to tarfile extraction (Python ≥ 3.12, backported to 3.8+ security releases).",
           ("OWASP-ML06", "AML.T0010.002")),
    Family("code.supply_chain", "Models and datasets are pinned to a commit",
           "from_pretrained, hf_hub_download, snapshot_download, load_dataset and pipelines without "
           "revision= set to a 40-hex commit sha.",
           "A branch or tag can be moved: the artifact you load tomorrow may not be the one you reviewed.",
           "Pass revision='<commit sha>' and record the digest in a manifest.",
           ("OWASP-ML06", "AML.T0010.002", "AML.T0010.003")),
    Family("code.command_injection", "No shell commands built from data",
           "subprocess with shell=True and os.system/os.popen with built command strings.",
           "Command strings assembled from file names, configs or requests let their author run commands.",
           "Pass argument lists to subprocess without shell=True.",
           ("OWASP-ML06", "AML.T0011.000")),
    Family("code.unscannable", "All code could be scanned",
           "Files that do not parse, are not valid text, or are too large to scan.",
           "Code the scanner cannot read is code nobody checked; a parse error can also hide a payload "
           "in a notebook cell.",
           "Fix the syntax error or encoding, or exclude generated files from `code:`.",
           ("OWASP-ML06",)),
)

_FAMILY_OF = {"code.parse_error": "code.unscannable", "code.decode_error": "code.unscannable",
              "code.too_large": "code.unscannable"}


def family_of(rule: str) -> str:
    return _FAMILY_OF.get(rule) or ".".join(rule.split(".")[:2])


def scan_once(ctx: AuditContext) -> tuple[list[CodeIssue], int]:
    if "code.scan" not in ctx.cache:
        ctx.cache["code.scan"] = scan_code_paths(ctx.spec.resolve(p) for p in ctx.spec.code)
    return ctx.cache["code.scan"]


class CodeCheck(Check):
    needs = ("code",)
    stage = "training"
    family: Family

    def run(self, ctx: AuditContext) -> Outcome:
        issues, scanned = scan_once(ctx)
        mine = [i for i in issues if family_of(i.rule) == self.id]
        by_rule: dict[str, int] = {}
        for i in mine:
            by_rule[i.rule] = by_rule.get(i.rule, 0) + 1
        return Outcome(findings=[self._finding(i) for i in mine],
                       metrics={"files_scanned": scanned, "issues_by_rule": dict(sorted(by_rule.items()))})

    def _finding(self, i: CodeIssue) -> Any:
        rule = RULES.get(i.rule)
        path = self.spec.display(i.path.split("#", 1)[0]) + (("#" + i.path.split("#", 1)[1]) if "#" in i.path else "")
        return self.finding(
            key=(i.rule, path, i.snippet), severity=i.severity,
            title=f"{rule.title if rule else i.rule} at {path}:{i.line}",
            description=i.message, remediation=i.remediation,
            evidence={"rule": i.rule, "snippet": i.snippet, "column": i.col},
            location=Location(artifact=path, line=i.line),
            references=tuple(getattr(rule, "references", ()) or self.references),
        )


CHECKS = [family_check(CodeCheck, f, __name__) for f in FAMILIES]
