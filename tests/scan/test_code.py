"""Tests for the ML-code scanner: a table of snippets that must (or must not) fire, import
aliasing, notebooks, unparsable files and folder discovery. Nothing here runs the snippets."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mlwarden.errors import SourceError
from mlwarden.findings import Severity
from mlwarden.scan.code import (RULES, CodeIssue, scan_code_paths, scan_notebook_file,
                                scan_python_file, scan_source)

D = "code.unsafe_deserialization."
SHA = "0123456789abcdef0123456789abcdef01234567"

# (source, rule, severity, line) — the issue must be reported at that line.
POSITIVE = [
    ("import pickle\npickle.load(f)", D + "pickle", "critical", 2),
    ("import pickle as pk\n\npk.loads(b)", D + "pickle", "critical", 3),
    ("from pickle import loads as L\nL(b)", D + "pickle", "critical", 2),
    ("import pickle\nu = pickle.Unpickler(f)", D + "pickle", "critical", 2),
    ("import _pickle\n_pickle.loads(b)", D + "pickle", "critical", 2),
    ("from pickle import *\nload(f)", D + "pickle", "critical", 2),
    ("import joblib\nm = joblib.load('m.joblib')", D + "joblib", "critical", 2),
    ("import dill\ndill.load(f)", D + "dill", "critical", 2),
    ("import cloudpickle\ncloudpickle.loads(b)", D + "cloudpickle", "critical", 2),
    ("import marshal\nmarshal.loads(b)", D + "marshal", "high", 2),
    ("import shelve\ndb = shelve.open(p)", D + "shelve", "high", 2),
    ("import jsonpickle\njsonpickle.decode(s)", D + "jsonpickle", "critical", 2),
    ("import torch\ntorch.load(p)", D + "torch_load", "high", 2),
    ("from torch import load\nload(p, map_location='cpu')", D + "torch_load", "high", 2),
    ("import torch\ntorch.load(p, weights_only=False)", D + "torch_load", "critical", 2),
    ("import torch\ntorch.serialization.load(p)", D + "torch_load", "high", 2),
    ("import torch\ntorch.load(p, weights_only=flag)", D + "torch_load", "medium", 2),
    ("import numpy as np\nnp.load(p, allow_pickle=True)", D + "numpy_allow_pickle", "high", 2),
    ("import numpy as np\nnp.lib.npyio.load(p, None, True)", D + "numpy_allow_pickle", "high", 2),
    ("import pandas as pd\ndf = pd.read_pickle(p)", D + "pandas_read_pickle", "high", 2),
    ("import yaml\nyaml.load(s)", D + "yaml", "high", 2),
    ("import yaml\nyaml.load(s, Loader=yaml.Loader)", D + "yaml", "critical", 2),
    ("import yaml\nyaml.load(s, yaml.UnsafeLoader)", D + "yaml", "critical", 2),
    ("import yaml\nyaml.load(s, Loader=yaml.FullLoader)", D + "yaml", "high", 2),
    ("import yaml\nyaml.unsafe_load(s)", D + "yaml", "critical", 2),
    ("import yaml\nyaml.full_load(s)", D + "yaml", "high", 2),
    ("import tensorflow as tf\ntf.keras.models.load_model(p, safe_mode=False)",
     D + "keras_unsafe_mode", "high", 2),
    ("import keras\nkeras.saving.load_model(p, safe_mode=False)",
     D + "keras_unsafe_mode", "high", 2),
    (f"from transformers import AutoModel\nAutoModel.from_pretrained('o/m', revision='{SHA}',\n"
     "    trust_remote_code=True)", "code.remote_code.trust_remote_code", "critical", 2),
    (f"import datasets\ndatasets.load_dataset('o/d', revision='{SHA}', trust_remote_code=True)",
     "code.remote_code.trust_remote_code", "critical", 2),
    (f"from transformers import pipeline\npipeline('t', model='o/m', revision='{SHA}',"
     " model_kwargs={'trust_remote_code': True})",
     "code.remote_code.trust_remote_code", "critical", 2),
    ("import torch\nm = torch.hub.load('org/repo', 'resnet')", "code.remote_code.torch_hub",
     "critical", 2),
    ("x = input()\neval(x)", "code.dynamic_execution.eval", "critical", 2),
    ("exec(cfg['code'])", "code.dynamic_execution.eval", "critical", 1),
    ("eval('1 + 1')", "code.dynamic_execution.eval", "low", 1),
    ("import tarfile\ntarfile.open(p).extractall(d)", "code.archive.tar_unfiltered", "medium", 2),
    ("import tarfile\nwith tarfile.open(p) as tf:\n    tf.extractall(d)",
     "code.archive.tar_unfiltered", "medium", 3),
    ("import tarfile\ndef f(t: tarfile.TarFile):\n    t.extract('m')",
     "code.archive.tar_unfiltered", "medium", 3),
    ("import tarfile\ntarfile.open(p).extractall(d, filter='fully_trusted')",
     "code.archive.tar_unfiltered", "high", 2),
    ("import zipfile\nzipfile.ZipFile(p).extractall(d)", "code.archive.zip_extract", "low", 2),
    ("from transformers import AutoModel\nAutoModel.from_pretrained('org/name')",
     "code.supply_chain.unpinned_download", "medium", 2),
    ("from transformers import AutoModel\nAutoModel.from_pretrained('org/name', revision='main')",
     "code.supply_chain.unpinned_download", "medium", 2),
    ("from huggingface_hub import hf_hub_download\nhf_hub_download(repo, 'model.safetensors')",
     "code.supply_chain.unpinned_download", "medium", 2),
    ("import huggingface_hub as hh\nhh.snapshot_download('o/m', revision='v1.0')",
     "code.supply_chain.unpinned_download", "medium", 2),
    ("from datasets import load_dataset\nNAME = 'org/data'\nds = load_dataset(NAME)",
     "code.supply_chain.unpinned_download", "medium", 3),
    ("import subprocess\nsubprocess.run(f'tar xf {p}', shell=True)",
     "code.command_injection.shell", "medium", 2),
    ("import os\nos.system('rm -rf ' + path)", "code.command_injection.os_system", "medium", 2),
    ("try:\n    import torch\nexcept ImportError:\n    torch = None\ntorch.load(p)",
     D + "torch_load", "high", 5),
    ("import pickle\ndef restore(path):\n    with open(path, 'rb') as f:\n"
     "        return pickle.load(f)",
     D + "pickle", "critical", 4),
]

NEGATIVE = [
    "import torch\ntorch.load(p, weights_only=True)",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
    "import yaml\nyaml.load(s, Loader=yaml.CSafeLoader)",
    "import yaml\nclass L(yaml.SafeLoader):\n    pass\nyaml.load(s, Loader=L)",
    "import yaml\nyaml.safe_load(s)",
    "import numpy as np\nnp.load(p)",
    "import numpy as np\nnp.load(p, allow_pickle=False)",
    "class A:\n    def f(self):\n        return self.store.load()",
    "import json\njson.load(f)",
    "def load(p):\n    return p\nload('x.pkl')",
    "import pickle\ndef f(pickle):\n    return pickle.load(x)",
    "import pickle\npickle.dumps(obj)",
    "import keras\nkeras.models.load_model(p)",
    f"from transformers import AutoModel\nAutoModel.from_pretrained('org/n', revision='{SHA}')",
    "from transformers import AutoModel\nAutoModel.from_pretrained('./checkpoints/best')",
    "from transformers import AutoModel\nAutoModel.from_pretrained(args.model_dir)",
    f"from transformers import AutoModel\nAutoModel.from_pretrained('o/m', revision='{SHA}',"
    " trust_remote_code=False)",
    "from datasets import load_dataset\nload_dataset('csv', data_files='train.csv')",
    "import tarfile\nwith tarfile.open(p) as t:\n    t.extractall(d, filter='data')",
    "import subprocess\nsubprocess.run(['ls', p])",
    "import os\nos.system('nvidia-smi')",
    "import ast\nast.literal_eval(s)",
    "import re\nre.compile(pattern)",
    "def eval(x):\n    return x\neval(data)",
    "from .utils import load\nload(p)",
]


def rules_of(issues: list[CodeIssue]) -> list[str]:
    return [i.rule for i in issues]


@pytest.mark.parametrize(("source", "rule", "severity", "line"), POSITIVE,
                         ids=[f"{r}@{i}" for i, (_, r, _, _) in enumerate(POSITIVE)])
def test_positive_snippet_is_reported(source: str, rule: str, severity: str, line: int) -> None:
    issues = scan_source(source, "t.py")
    matching = [i for i in issues if i.rule == rule]
    assert matching, f"expected {rule}, got {rules_of(issues)}"
    assert matching[0].severity == Severity(severity)
    assert matching[0].line == line
    assert matching[0].path == "t.py"
    assert matching[0].snippet == source.split("\n")[line - 1].strip()


@pytest.mark.parametrize("source", NEGATIVE)
def test_negative_snippet_is_clean(source: str) -> None:
    assert scan_source(source, "t.py") == []


def test_every_rule_fired_by_the_table_is_registered_and_documented() -> None:
    fired = {r for _, r, _, _ in POSITIVE}
    assert fired <= set(RULES)
    for rule in RULES.values():
        assert rule.id.startswith("code.") and rule.title and rule.description and rule.remediation
    assert {r for r in RULES if not r.endswith(("_error", "too_large"))} <= fired


def test_issue_carries_position_message_and_remediation() -> None:
    src = "import torch\n\nmodel = torch.load('ckpt.pt')  # é\n"
    (issue,) = scan_source(src, "train.py")
    assert (issue.line, issue.col, issue.end_line, issue.end_col) == (3, 9, 3, 30)
    assert "weights_only=True" in issue.message and "2.6" in issue.message
    assert issue.remediation == RULES[issue.rule].remediation


def test_columns_count_characters_not_bytes() -> None:
    (issue,) = scan_source("x = 'é'; eval(x)", "t.py")
    assert issue.col == 10


def test_message_names_the_call_and_what_it_resolved_to() -> None:
    (issue,) = scan_source("import pickle as pk\npk.load(f)", "t.py")
    assert "pk.load()" in issue.message and "pickle.load" in issue.message


def test_alias_through_assignment_and_nested_function_scope() -> None:
    src = textwrap.dedent("""
        import joblib
        loader = joblib.load
        def outer():
            def inner():
                return loader(path)
            return inner
    """)
    (issue,) = scan_source(src, "t.py")
    assert (issue.rule, issue.line) == (D + "joblib", 6)


def test_import_after_use_in_function_still_resolves() -> None:
    src = "def f():\n    return pk.load(x)\nimport pickle as pk\n"
    assert rules_of(scan_source(src, "t.py")) == [D + "pickle"]


def test_syntax_error_file_is_one_low_issue(tmp_path: Path) -> None:
    p = tmp_path / "broken.py"
    p.write_text("import pickle\n\ndef f(:\n    pickle.load(x)\n")
    (issue,) = scan_python_file(p)
    assert issue.rule == "code.parse_error" and issue.severity is Severity.LOW
    assert issue.line == 3 and "line 3" in issue.message and issue.path == str(p)


def test_null_bytes_and_deep_nesting_do_not_crash(tmp_path: Path) -> None:
    assert rules_of(scan_source("x = 1\0", "t.py")) == ["code.parse_error"]
    deep = "x = " + "(" * 5000 + ")" * 5000
    assert rules_of(scan_source(deep, "t.py")) == ["code.parse_error"]


def test_non_utf8_file_is_decoded_with_a_note(tmp_path: Path) -> None:
    p = tmp_path / "latin.py"
    p.write_bytes(b"# caf\xe9\nimport pickle\npickle.loads(b)\n")
    assert rules_of(scan_python_file(p)) == ["code.decode_error", D + "pickle"]
    cookie = tmp_path / "cookie.py"
    cookie.write_bytes(b"# -*- coding: latin-1 -*-\n# caf\xe9\nimport pickle\npickle.loads(b)\n")
    assert rules_of(scan_python_file(cookie)) == [D + "pickle"]


def _notebook(cells: list[tuple[str, str]]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
            "cells": [{"cell_type": kind, "metadata": {}, "source": src.splitlines(keepends=True),
                       **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                      for kind, src in cells]}


def test_notebook_cells_share_imports_and_report_cell_and_line(tmp_path: Path) -> None:
    nb = tmp_path / "explore.ipynb"
    nb.write_text(json.dumps(_notebook([
        ("markdown", "# Load the model"),
        ("code", "%matplotlib inline\nimport torch\n!pip install transformers"),
        ("code", "def broken(:\n    pass"),
        ("code", "x = 1\nif x:\n    %time y = 2\nmodel = torch.load('m.pt')"),
        ("code", "%%bash\neval $(cat cmd)"),
    ])))
    issues = scan_notebook_file(nb)
    assert [(i.path, i.line, i.rule) for i in issues] == [
        (f"{nb}#cell=3", 1, "code.parse_error"),
        (f"{nb}#cell=4", 4, D + "torch_load"),
    ]
    assert issues[1].snippet == "model = torch.load('m.pt')"


def test_notebook_issues_follow_cell_order_past_cell_nine(tmp_path: Path) -> None:
    nb = tmp_path / "long.ipynb"
    cells = [("code", "import pickle")] + [("code", "x = 1")] * 9 + [("code", "pickle.load(f)")]
    nb.write_text(json.dumps(_notebook([*cells[:2], ("code", "pickle.loads(b)"), *cells[2:]])))
    assert [i.path.rsplit("#", 1)[1] for i in scan_notebook_file(nb)] == ["cell=3", "cell=12"]


def test_invalid_notebook_json_is_a_parse_error(tmp_path: Path) -> None:
    nb = tmp_path / "bad.ipynb"
    nb.write_text("{not json")
    assert rules_of(scan_notebook_file(nb)) == ["code.parse_error"]


def test_scan_code_paths_recurses_skips_venvs_and_is_sorted(tmp_path: Path) -> None:
    bad = "import pickle\npickle.load(f)\n"
    for rel in ("src/b.py", "src/a/train.py", "src/.venv/lib/x.py", "src/venv/y.py",
                "src/node_modules/z.py", "src/pkg/__pycache__/c.py", "src/env2/w.py",
                "src/readme.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(bad)
    (tmp_path / "src/env2/pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "src/nb.ipynb").write_text(json.dumps(_notebook([("code", bad)])))
    issues, n = scan_code_paths([tmp_path / "src"])
    assert n == 3
    root = tmp_path / "src"
    assert [i.path for i in issues] == [str(root / "a/train.py"), str(root / "b.py"),
                                        f"{root / 'nb.ipynb'}#cell=1"]
    again, _ = scan_code_paths([str(root), str(root / "b.py")])
    assert again == issues


def test_scan_code_paths_missing_path_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or directory"):
        scan_code_paths([tmp_path / "nope"])


def test_too_large_file_is_reported_not_read(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import mlwarden.scan.code as code
    monkeypatch.setattr(code, "MAX_SOURCE_BYTES", 10)
    p = tmp_path / "big.py"
    p.write_text("import pickle\npickle.load(f)\n")
    assert rules_of(code.scan_python_file(p)) == ["code.too_large"]


def test_hostile_alias_web_stays_fast() -> None:
    names = [f"a{i}" for i in range(60)]
    lines = [f"{a} = {b}.x" for a in names for b in names[:20]]
    assert scan_source("\n".join(lines) + "\na0.load()\n", "t.py") == []
