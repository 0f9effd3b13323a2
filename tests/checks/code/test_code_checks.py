"""code.* checks over a planted code folder: each family reports its own rules, with lines."""

from __future__ import annotations

from pathlib import Path

from mlwarden.audit import run_audit
from mlwarden.spec import load_spec

PLANTED = {
    "train.py": (
        "import pickle, torch, yaml, tarfile, subprocess\n"      # 1
        "from transformers import AutoModel\n"                    # 2
        "m = pickle.load(open('m.pkl', 'rb'))\n"                 # 3 code.unsafe_deserialization
        "w = torch.load('w.pt')\n"                                # 4 code.unsafe_deserialization
        "cfg = yaml.load(open('c.yml'))\n"                        # 5 code.unsafe_deserialization
        "a = AutoModel.from_pretrained('org/model', trust_remote_code=True)\n"  # 6 remote_code + supply_chain
        "tarfile.open('d.tgz').extractall('data')\n"              # 7 code.archive
        "subprocess.run(f'unzip {cfg}', shell=True)\n"            # 8 code.command_injection
        "x = eval(cfg['expr'])\n"                                 # 9 code.dynamic_execution
        "safe = torch.load('w.pt', weights_only=True)\n"          # 10 clean
    ),
    "broken.py": "def f(:\n",                                     # code.unscannable
}


def test_code_families(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("a,b\n1,2\n")
    src = tmp_path / "src"
    src.mkdir()
    for name, text in PLANTED.items():
        (src / name).write_text(text)
    (tmp_path / "mlwarden.yaml").write_text("name: c\ndata: {train: data/t.csv}\ncode: [src/]\n")
    report = run_audit(load_spec(tmp_path / "mlwarden.yaml"), only=["code.*"])
    lines: dict[str, list[int]] = {}
    for c in report.checks:
        assert c.status in ("pass", "fail"), (c.id, c.message)
        assert c.metrics["files_scanned"] == 2
        lines[c.id] = sorted(f.location.line for f in c.findings)
        for f in c.findings:
            assert f.location.artifact.startswith("src/")
            assert f.remediation and f.references
    assert lines["code.unsafe_deserialization"] == [3, 4, 5]
    assert lines["code.remote_code"] == [6]
    assert lines["code.supply_chain"] == [6]
    assert lines["code.archive"] == [7]
    assert lines["code.command_injection"] == [8]
    assert lines["code.dynamic_execution"] == [9]
    assert lines["code.unscannable"] == [1]
    sev = {f.location.line: f.severity.value for c in report.checks if c.id == "code.unsafe_deserialization"
           for f in c.findings}
    assert sev == {3: "critical", 4: "high", 5: "high"}  # PyYAML 6 refuses a Loader-less load


def test_demo_serving_code_is_flagged(demo_report) -> None:
    found = {(f.check, f.location.line) for f in demo_report.findings if f.check.startswith("code.")}
    assert ("code.unsafe_deserialization", 10) in found  # yaml.load(Loader=yaml.Loader)
    assert ("code.unsafe_deserialization", 16) in found  # pickle.load
    assert ("code.unsafe_deserialization", 17) in found  # joblib.load
    assert ("code.dynamic_execution", 21) in found       # eval of the request body
