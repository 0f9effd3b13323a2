"""The ML-code scanner's rules: what each one finds, how bad it is, and the call checks behind it.

Severity policy (every rule's description repeats the part that applies to it):

- **critical** — the call runs attacker code as soon as untrusted input reaches it: pickle,
  joblib, dill, cloudpickle, jsonpickle, ``torch.load`` with ``weights_only=False``, an unsafe yaml
  Loader, ``trust_remote_code=True``, ``torch.hub.load``, ``eval``/``exec`` of a non-literal.
- **high** — one default or one library version away from that: ``torch.load`` without
  ``weights_only=True``, ``np.load(allow_pickle=True)``, ``pd.read_pickle``, keras
  ``safe_mode=False``, yaml FullLoader, ``shelve``, ``marshal``, ``compile`` of a non-literal.
- **medium** — a safeguard is missing where input may be hostile: tar extraction without a
  filter, downloads not pinned to a commit, shell commands built from data, and any of the
  above whose safety flag is a variable we cannot read.
- **low** — worth a look, rarely a bug: ``eval`` of a literal, zip extraction, files the
  scanner could not parse.

Checks are plain functions ``(call, shown, resolver) -> list[Hit]`` looked up by the call's
fully-qualified name (after import aliases are resolved by :mod:`mlwarden.scan.code`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..findings import Severity

CRIT, HIGH, MED, LOW = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
UNKNOWN = object()
"""What :meth:`Resolver.constant` returns for an expression that is not a known constant."""


@dataclass(frozen=True, kw_only=True)
class Rule:
    id: str
    title: str
    severity: Severity
    """The usual severity; a single issue may be rated lower or higher (see description)."""
    description: str
    remediation: str
    cwe: str = ""
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    rule: str
    severity: Severity
    message: str


class Resolver(Protocol):
    """Name resolution at the call's position, provided by the scanner."""

    def qualname(self, node: ast.expr) -> str | None: ...
    def constant(self, node: ast.expr) -> object: ...
    def ancestry(self, node: ast.expr) -> tuple[str, ...]: ...


Checker = Callable[[ast.Call, str, Resolver], list[Hit]]

_SUPPLY = ("OWASP-ML06", "AML.T0010.003", "AML.T0011.000")
_DESER_FIX = "Load only formats that cannot carry code (safetensors, ONNX, JSON, parquet); "


def _rule(id: str, title: str, severity: Severity, description: str, remediation: str,
          cwe: str = "CWE-502", references: tuple[str, ...] = _SUPPLY) -> Rule:
    return Rule(id=id, title=title, severity=severity, description=description,
                remediation=remediation, cwe=cwe, references=references)


RULES: dict[str, Rule] = {r.id: r for r in (
    _rule("code.unsafe_deserialization.pickle", "pickle deserialization", CRIT,
          "pickle.load/loads and pickle.Unpickler call any importable function the data names "
          "(os.system, exec …): loading a crafted file runs its code. Critical.",
          _DESER_FIX + "if you must unpickle, subclass pickle.Unpickler with a find_class "
          "allow-list and scan the file first (`mlwarden scan`)."),
    _rule("code.unsafe_deserialization.joblib", "joblib.load", CRIT,
          "joblib.load is pickle underneath: a crafted .joblib/.pkl runs code when loaded. "
          "Critical.",
          _DESER_FIX + "for scikit-learn use skops.io with trusted types, or scan the file "
          "with `mlwarden scan` and load it only from storage you control."),
    _rule("code.unsafe_deserialization.dill", "dill deserialization", CRIT,
          "dill extends pickle to functions and code objects: loading runs arbitrary code. "
          "Critical.",
          _DESER_FIX + "never dill-load files from outside your own pipeline."),
    _rule("code.unsafe_deserialization.cloudpickle", "cloudpickle deserialization", CRIT,
          "cloudpickle.load/loads is pickle.load plus serialised functions: loading runs code. "
          "Critical.", _DESER_FIX + "keep cloudpickle to trusted in-cluster traffic."),
    _rule("code.unsafe_deserialization.jsonpickle", "jsonpickle.decode", CRIT,
          "jsonpickle.decode rebuilds arbitrary objects (py/reduce, py/object): JSON that runs "
          "code when decoded. Critical.", "Use json.loads and build objects explicitly."),
    _rule("code.unsafe_deserialization.shelve", "shelve.open", HIGH,
          "A shelve database stores pickles; reading a key from a crafted db runs code. High "
          "(shelves are usually local files, but they are still pickles).",
          "Use sqlite3 or a JSON/parquet store for anything that crosses a trust boundary."),
    _rule("code.unsafe_deserialization.marshal", "marshal.load(s)", HIGH,
          "marshal yields code objects and is documented as unsafe on untrusted data (crafted "
          "input crashes the interpreter; the code objects are one exec away from running). High.",
          "Never unmarshal data you did not write; use json or a schema'd format."),
    _rule("code.unsafe_deserialization.torch_load", "torch.load without weights_only=True", HIGH,
          "torch.load unpickles the checkpoint. weights_only=True restricts it to tensors and "
          "plain containers; torch >= 2.6 defaults to that, older torch does not, so leaving it "
          "out is high and weights_only=False is critical. A variable we cannot read is medium.",
          "Pass weights_only=True explicitly (torch.serialization.add_safe_globals for extra "
          "types), or save weights as safetensors."),
    _rule("code.unsafe_deserialization.numpy_allow_pickle", "numpy.load(allow_pickle=True)", HIGH,
          "allow_pickle=True lets a crafted .npy/.npz run code through its object arrays. High.",
          "Keep allow_pickle=False (the default) and store object data in a safe format."),
    _rule("code.unsafe_deserialization.pandas_read_pickle", "pandas.read_pickle", HIGH,
          "pandas.read_pickle is pickle.load: a crafted file runs code. High.",
          "Store frames as parquet or feather and read them with read_parquet/read_feather."),
    _rule("code.unsafe_deserialization.yaml", "unsafe yaml load", CRIT,
          "yaml.load with Loader/UnsafeLoader (or yaml.unsafe_load) builds arbitrary Python "
          "objects from !!python/object/apply tags: critical. FullLoader/full_load and a "
          "missing Loader (unsafe before PyYAML 5.1, FullLoader until 6) are high; a Loader "
          "we cannot identify is medium.",
          "Use yaml.safe_load, or yaml.load(..., Loader=yaml.SafeLoader/CSafeLoader).", "CWE-502"),
    _rule("code.unsafe_deserialization.keras_unsafe_mode", "keras load_model(safe_mode=False)",
          HIGH,
          "safe_mode=False lets a .keras file deserialize Lambda layers, i.e. run marshalled "
          "Python bytecode. High.",
          "Keep safe_mode=True (the default); replace Lambda layers with registered custom "
          "layers."),
    _rule("code.remote_code.trust_remote_code", "trust_remote_code=True", CRIT,
          "trust_remote_code=True downloads Python files from the model or dataset repo and "
          "imports them: whoever controls the repo runs code in your pipeline. Critical; a "
          "variable we cannot read is medium.",
          "Use a model whose architecture ships in the library; if you must, pin revision= to a "
          "reviewed commit sha and vendor the code.", "CWE-829",
          ("OWASP-ML06", "AML.T0010.001", "AML.T0010.003")),
    _rule("code.remote_code.torch_hub", "torch.hub.load", CRIT,
          "torch.hub.load clones a GitHub repo and executes its hubconf.py in your process. "
          "Critical (medium with source='local').",
          "Vendor the model code and load weights with torch.load(weights_only=True) or "
          "safetensors.", "CWE-829", ("OWASP-ML06", "AML.T0010.001", "AML.T0010.003")),
    _rule("code.dynamic_execution.eval", "eval/exec/compile", CRIT,
          "eval/exec of anything but a literal runs whatever the string holds (config values, "
          "requests, model metadata): critical; compile() of a non-literal is high; of a "
          "literal, low (usually a smell rather than a hole).",
          "Use ast.literal_eval for data, a dict of allowed callables for names.", "CWE-95", ()),
    _rule("code.archive.tar_unfiltered", "tar extraction without a filter", MED,
          "Before Python 3.14, TarFile.extract/extractall (and shutil.unpack_archive) write "
          "members with absolute paths, '..', links out of the target and device files as-is "
          "(CVE-2007-4559): a crafted dataset or model tarball overwrites files. Medium; "
          "filter='fully_trusted' is high.",
          "Pass filter='data' (Python >= 3.12, or 3.8.17/3.9.17/3.10.12/3.11.4 backports).",
          "CWE-22", ("OWASP-ML06", "AML.T0010.002")),
    _rule("code.archive.zip_extract", "zip extraction", LOW,
          "zipfile sanitises member names (no absolute paths or '..'), so this is not path "
          "traversal; members are still written unchecked (zip bombs, overwrites). Low.",
          "Check member count and file_size totals before extracting untrusted archives.",
          "CWE-409", ()),
    _rule("code.supply_chain.unpinned_download", "download not pinned to a commit", MED,
          "from_pretrained / hf_hub_download / snapshot_download / load_dataset / pipeline "
          "without revision=<40-hex commit sha> fetch whatever the branch holds today: a "
          "compromised or updated repo silently changes your model or data. Medium.",
          "Pass revision='<commit sha>' (a branch or tag can move; a sha cannot).", "CWE-494",
          ("OWASP-ML06", "AML.T0010.002", "AML.T0010.003")),
    _rule("code.command_injection.shell", "subprocess with shell=True", MED,
          "shell=True hands the command to /bin/sh, so any data in it (paths, names from a "
          "dataset or request) can inject commands. Medium; a literal command is low.",
          "Pass an argument list with shell=False.", "CWE-78", ()),
    _rule("code.command_injection.os_system", "os.system/os.popen with a built command", MED,
          "os.system and os.popen run their argument through the shell: a non-literal command "
          "is injectable. Medium.", "Use subprocess.run([...]) with an argument list.",
          "CWE-78", ()),
    _rule("code.parse_error", "file could not be parsed", LOW,
          "The file is not valid Python (or not a valid notebook), so it was not scanned. Low.",
          "Fix the syntax error, or exclude the file if it is not Python.", "", ()),
    _rule("code.decode_error", "file is not valid text in its encoding", LOW,
          "The file was decoded with replacement characters; findings may be incomplete. Low.",
          "Save the file as UTF-8 (or declare its encoding with a coding cookie).", "", ()),
    _rule("code.too_large", "file too large to scan", LOW,
          "The file is larger than the scanner's limit and was not scanned. Low.",
          "Split generated code out of the scanned folders, or scan it separately.", "", ()),
)}

_ABSENT, _HIDDEN = object(), object()


def _arg(call: ast.Call, name: str, pos: int | None = None) -> object:
    """The expression passed as ``name`` (or at ``pos``), _ABSENT, or _HIDDEN behind * / **."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    starred = [i for i, a in enumerate(call.args) if isinstance(a, ast.Starred)]
    if pos is not None and len(call.args) > pos and not any(i <= pos for i in starred):
        return call.args[pos]
    if starred or any(kw.arg is None for kw in call.keywords):
        return _HIDDEN
    return _ABSENT


def _always(rule: str, sev: Severity, why: str) -> Checker:
    return lambda call, shown, r: [Hit(rule, sev, f"{shown} {why}")]


def _flag(rule: str, name: str, pos: int | None, bad: Callable[[object], Severity | None],
          why: str) -> Checker:
    """Fire when the flag ``name`` is a constant ``bad`` rates, medium when it is a variable."""
    def check(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
        v = _arg(call, name, pos)
        if v is _ABSENT or v is _HIDDEN:
            return []
        c = r.constant(v)  # type: ignore[arg-type]
        if c is UNKNOWN:
            return [Hit(rule, MED, f"{shown} passes {name}= a value the scanner cannot read; "
                        f"{why}")]
        sev = bad(c)
        return [Hit(rule, sev, f"{shown} with {name}={c!r}: {why}")] if sev else []
    return check


def _torch_load(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    rule, v = "code.unsafe_deserialization.torch_load", _arg(call, "weights_only")
    c = UNKNOWN if v is _ABSENT or v is _HIDDEN else r.constant(v)  # type: ignore[arg-type]
    if c is True:
        return []
    if v is _ABSENT or c is None:
        return [Hit(rule, HIGH, f"{shown} without weights_only=True unpickles the checkpoint: "
                    "explicitly pass weights_only=True; the default changed in torch 2.6 and "
                    "older torch runs this pickle")]
    if c is UNKNOWN:
        return [Hit(rule, MED, f"{shown}: weights_only is not a constant the scanner can read "
                    "(a variable or **kwargs); pass weights_only=True explicitly")]
    return [Hit(rule, CRIT, f"{shown} with weights_only={c!r} unpickles the checkpoint: a "
                "crafted .pt file runs code when loaded; pass weights_only=True")]


_YAML_SAFE = {f"yaml.{n}" for n in ("SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader")}
_YAML_BAD = {"yaml.Loader": CRIT, "yaml.UnsafeLoader": CRIT, "yaml.CLoader": CRIT,
             "yaml.CUnsafeLoader": CRIT, "yaml.FullLoader": HIGH, "yaml.CFullLoader": HIGH}


def _yaml_load(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    rule, v = "code.unsafe_deserialization.yaml", _arg(call, "Loader", 1)
    if v is _ABSENT:
        return [Hit(rule, HIGH, f"{shown} without Loader=: PyYAML < 5.1 then uses the unsafe "
                    "Loader (!!python/object/apply runs code), 5.1-5.4 FullLoader; use "
                    "yaml.safe_load or Loader=yaml.SafeLoader")]
    names = () if v is _HIDDEN else r.ancestry(v)  # type: ignore[arg-type]
    if any(n in _YAML_SAFE for n in names):
        return []
    for n in names:
        if n in _YAML_BAD:
            return [Hit(rule, _YAML_BAD[n], f"{shown} with Loader={n} builds arbitrary Python "
                        "objects from tags: a crafted YAML file runs code; use yaml.SafeLoader")]
    return [Hit(rule, MED, f"{shown}: the scanner cannot tell whether this Loader is safe; "
                "use yaml.safe_load or Loader=yaml.SafeLoader")]


def _dynamic(name: str, sev: Severity) -> Checker:
    def check(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
        v = _arg(call, "source", 0)
        if v is _ABSENT:
            return []
        if isinstance(v, ast.Constant) and isinstance(v.value, str | bytes):
            return [Hit("code.dynamic_execution.eval", LOW, f"{shown} of a literal string: "
                        "harmless today, but prefer plain code or ast.literal_eval")]
        return [Hit("code.dynamic_execution.eval", sev, f"{shown} {name} a non-literal "
                    "expression: whoever controls that string runs code; use ast.literal_eval "
                    "for data or an allow-list of callables")]
    return check


def _shell(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    v = _arg(call, "shell")
    if v is _ABSENT or v is _HIDDEN:
        return []
    c = r.constant(v)  # type: ignore[arg-type]
    if c is not UNKNOWN and not c:
        return []
    cmd = _arg(call, "args", 0)
    literal = isinstance(cmd, ast.Constant)
    return [Hit("code.command_injection.shell", LOW if literal else MED,
                f"{shown} with shell=True runs {'a literal' if literal else 'a built'} command "
                "through /bin/sh; data in it can inject commands. Pass a list, shell=False")]


def _os_system(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    cmd = _arg(call, "command", 0)
    if cmd is _ABSENT or isinstance(cmd, ast.Constant):
        return []
    return [Hit("code.command_injection.os_system", MED, f"{shown} runs a built command through "
                "the shell: data in it can inject commands; use subprocess.run([...])")]


def _tar_extract(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    rule, v = "code.archive.tar_unfiltered", _arg(call, "filter")
    c = UNKNOWN if v is _ABSENT or v is _HIDDEN else r.constant(v)  # type: ignore[arg-type]
    if c == "fully_trusted":
        return [Hit(rule, HIGH, f"{shown} with filter='fully_trusted' extracts absolute paths, "
                    "'..' and links out of the target as-is; use filter='data'")]
    if v is _ABSENT or v is _HIDDEN:
        return [Hit(rule, MED, f"{shown} without filter=: before Python 3.14 members with "
                    "absolute paths, '..' or links escape the target directory (CVE-2007-4559); "
                    "pass filter='data'")]
    return []


_SHA = re.compile(r"[0-9a-f]{40}\Z")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?\Z")
_FILE_EXT = re.compile(r"\.(bin|pt|pth|ckpt|json|jsonl|safetensors|h5|onnx|gguf|csv|parquet|"
                       r"txt|zip|tar|gz|arrow|pkl|npz|npy)\Z")
_BUILDERS = {"csv", "json", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder",
             "videofolder", "webdataset", "sql", "xml", "generator", "cache", "pdffolder"}


def _hub_id(value: object, always: bool) -> bool:
    """Whether a model/dataset argument names a Hub repo (not a local path or builder)."""
    if value is UNKNOWN:
        return always
    return (isinstance(value, str) and bool(_HUB_ID.match(value))
            and not value.startswith(".") and not _FILE_EXT.search(value)
            and value not in _BUILDERS)


def _pinned(call: ast.Call, shown: str, r: Resolver, what: str) -> list[Hit]:
    rule, v = "code.supply_chain.unpinned_download", _arg(call, "revision")
    if v is _HIDDEN:
        return []
    if v is _ABSENT:
        return [Hit(rule, MED, f"{shown} downloads {what} without revision=: the repo can "
                    "change under you; pin a commit sha")]
    c = r.constant(v)  # type: ignore[arg-type]
    if c is UNKNOWN or (isinstance(c, str) and _SHA.match(c)):
        return []
    return [Hit(rule, MED, f"{shown} downloads {what} at revision={c!r}, a branch or tag that "
                "can move: pin a commit sha")]


def _download(name: str, pos: int, always: bool, what: str) -> Checker:
    def check(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
        v = _arg(call, name, pos)
        if v is _ABSENT or v is _HIDDEN:
            return []
        value = r.constant(v)  # type: ignore[arg-type]
        if not _hub_id(value, always):
            return []
        label = f"{what} {value!r}" if isinstance(value, str) else what
        return _pinned(call, shown, r, label)
    return check


def check_from_pretrained(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    """Any ``X.from_pretrained(repo)``: peft's PeftModel takes the repo id second."""
    assert isinstance(call.func, ast.Attribute)
    recv = call.func.value
    owner = recv.id if isinstance(recv, ast.Name) else getattr(recv, "attr", "")
    peft = owner.startswith("Peft")
    name, pos = ("model_id", 1) if peft else ("pretrained_model_name_or_path", 0)
    return _download(name, pos, False, "model")(call, shown, r)


def _pipeline(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    v = _arg(call, "model", 1)
    if v is _ABSENT:
        return [Hit("code.supply_chain.unpinned_download", MED, f"{shown} without model= "
                    "downloads the task's default model, unpinned; name a model and a commit sha")]
    return _download("model", 1, False, "model")(call, shown, r)


def check_trust_remote_code(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    """``trust_remote_code=`` on any call (from_pretrained, pipeline, load_dataset, …)."""
    for kw in call.keywords:
        if kw.arg == "trust_remote_code":
            return _trust(r.constant(kw.value), f"{shown} with trust_remote_code")
    return []


def check_trust_dict(node: ast.Dict, r: Resolver) -> list[Hit]:
    """``{"trust_remote_code": True}`` handed on as model_kwargs / **kwargs."""
    for k, v in zip(node.keys, node.values, strict=True):
        if isinstance(k, ast.Constant) and k.value == "trust_remote_code":
            return _trust(r.constant(v), "a kwargs dict with 'trust_remote_code'")
    return []


def _trust(value: object, what: str) -> list[Hit]:
    rule = "code.remote_code.trust_remote_code"
    if value is UNKNOWN:
        return [Hit(rule, MED, f"{what} set from a variable: when true, Python files from the "
                    "repo are downloaded and run; keep it False")]
    if value:
        return [Hit(rule, CRIT, f"{what}=True downloads and runs the repo's Python code: "
                    "whoever controls the repo runs code here; keep it False")]
    return []


def _torch_hub(call: ast.Call, shown: str, r: Resolver) -> list[Hit]:
    v = _arg(call, "source")
    local = not (v is _ABSENT or v is _HIDDEN) and r.constant(v) == "local"  # type: ignore[arg-type]
    return [Hit("code.remote_code.torch_hub", MED if local else CRIT,
                f"{shown} executes hubconf.py from {'a local folder' if local else 'a GitHub repo'}"
                " in this process: whoever controls it runs code; vendor the model code")]


def _table() -> dict[str, Checker]:
    t: dict[str, Checker] = {}
    deser = "code.unsafe_deserialization."
    runs = "runs code from a crafted file the moment it loads it"

    def add(names: str, check: Checker) -> None:
        for n in names.split():
            t[n] = check

    add("pickle.load pickle.loads pickle.Unpickler pickle._load pickle._loads pickle._Unpickler",
        _always(deser + "pickle", CRIT, f"deserializes with pickle, which {runs}"))
    add("joblib.load", _always(deser + "joblib", CRIT, f"unpickles: joblib {runs}"))
    add("dill.load dill.loads dill.Unpickler",
        _always(deser + "dill", CRIT, f"deserializes with dill, which {runs}"))
    add("cloudpickle.load cloudpickle.loads",
        _always(deser + "cloudpickle", CRIT, f"deserializes with cloudpickle, which {runs}"))
    add("jsonpickle.decode jsonpickle.loads",
        _always(deser + "jsonpickle", CRIT, "rebuilds arbitrary objects from JSON (py/reduce): "
                "crafted input runs code"))
    add("shelve.open shelve.DbfilenameShelf",
        _always(deser + "shelve", HIGH, "opens a pickle-backed store: reading a crafted db "
                "runs code"))
    add("marshal.load marshal.loads",
        _always(deser + "marshal", HIGH, "unmarshals code objects; marshal is unsafe on "
                "untrusted data"))
    add("pandas.read_pickle",
        _always(deser + "pandas_read_pickle", HIGH, f"is pickle.load, which {runs}"))
    add("torch.load torch.hub.load_state_dict_from_url", _torch_load)
    add("numpy.load", _flag(deser + "numpy_allow_pickle", "allow_pickle", 2,
                            lambda c: HIGH if c else None,
                            "object arrays in a crafted .npy/.npz run code; keep "
                            "allow_pickle=False"))
    add("yaml.load yaml.load_all", _yaml_load)
    add("yaml.unsafe_load yaml.unsafe_load_all",
        _always(deser + "yaml", CRIT, "builds arbitrary Python objects: crafted YAML runs code; "
                "use yaml.safe_load"))
    add("yaml.full_load yaml.full_load_all",
        _always(deser + "yaml", HIGH, "uses FullLoader, which has had code-execution bypasses "
                "(CVE-2020-14343); use yaml.safe_load"))
    add("keras.models.load_model keras.saving.load_model",
        _flag(deser + "keras_unsafe_mode", "safe_mode", None,
              lambda c: HIGH if c is False or c == 0 else None,
              "a crafted .keras file runs Lambda-layer bytecode; keep safe_mode=True"))
    add("builtins.eval", _dynamic("evaluates", CRIT))
    add("builtins.exec", _dynamic("executes", CRIT))
    add("builtins.compile", _dynamic("compiles", HIGH))
    add("subprocess.run subprocess.call subprocess.check_call subprocess.check_output "
        "subprocess.Popen", _shell)
    add("os.system os.popen posix.system subprocess.getoutput subprocess.getstatusoutput",
        _os_system)
    add("shutil.unpack_archive", _tar_extract)
    tar_ctors = ["tarfile.open", "tarfile.TarFile", "tarfile.TarFile.open",
                 "tarfile.TarFile.taropen", "tarfile.TarFile.gzopen", "tarfile.TarFile.bz2open",
                 "tarfile.TarFile.xzopen"]
    for ctor in tar_ctors:
        add(f"{ctor}().extractall {ctor}().extract", _tar_extract)
    for ctor in ("zipfile.ZipFile", "zipfile.PyZipFile"):
        add(f"{ctor}().extractall {ctor}().extract", _always(
            "code.archive.zip_extract", LOW, "writes archive members to disk: zipfile strips "
            "'..' and absolute paths, but check sizes and counts against zip bombs"))
    add("torch.hub.load", _torch_hub)
    add("huggingface_hub.hf_hub_download huggingface_hub.snapshot_download "
        "huggingface_hub.HfApi().hf_hub_download huggingface_hub.HfApi().snapshot_download",
        _download("repo_id", 0, True, "repo"))
    add("datasets.load_dataset", _download("path", 0, False, "dataset"))
    add("transformers.pipeline", _pipeline)
    add("sentence_transformers.SentenceTransformer sentence_transformers.CrossEncoder",
        _download("model_name_or_path", 0, False, "model"))
    return t


CALL_CHECKS: dict[str, Checker] = _table()

CANONICAL: tuple[tuple[str, str], ...] = tuple(sorted({
    "cPickle": "pickle", "_pickle": "pickle", "six.moves.cPickle": "pickle",
    "sklearn.externals.joblib": "joblib", "joblib.numpy_pickle": "joblib",
    "dill._dill": "dill", "cloudpickle.cloudpickle": "cloudpickle",
    "jsonpickle.unpickler": "jsonpickle", "torch.serialization": "torch",
    "numpy.lib.npyio": "numpy", "numpy.lib._npyio_impl": "numpy", "pandas.io.pickle": "pandas",
    "yaml.loader": "yaml", "yaml.cyaml": "yaml",
    "tensorflow.keras": "keras", "tensorflow.python.keras": "keras", "tf_keras": "keras",
    "keras.src": "keras", "keras.api": "keras", "keras.saving.saving_api": "keras.saving",
    "huggingface_hub.file_download": "huggingface_hub",
    "huggingface_hub._snapshot_download": "huggingface_hub",
    "huggingface_hub.hf_api": "huggingface_hub",
    "transformers.pipelines": "transformers", "datasets.load": "datasets",
}.items(), key=lambda kv: -len(kv[0])))
"""Module paths that are aliases of the one the checks are keyed on (longest first)."""
