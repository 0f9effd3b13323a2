"""Hostile input to `mlwarden audit`: one clear line and exit 2, never a hang, a blow-up or a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlwarden.yamlsafe import YamlBoundsError, check_yaml_bounds


def audit(spec: Path) -> subprocess.CompletedProcess:
    # A memory cap turns a regression (alias expansion) into a quick failure instead of a stuck machine.
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30));"
            "from mlwarden.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "audit", str(spec), "--out", str(spec.parent / "out")],
                          capture_output=True, text=True, timeout=120)


def _laughs(levels: int = 9) -> str:
    parts = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def _train(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": ["a", "b"], "label": [0, 1]}), tmp_path / "t.parquet")


def test_nested_aliases_are_refused_before_any_object_is_built(tmp_path: Path) -> None:
    _train(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x\ndata: {train: t.parquet, label: label}\n"
                    f"features: {{x: {{type: category, values: {_laughs()}}}}}\n")
    assert len(spec.read_bytes()) < 600
    r = audit(spec)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"mlwarden: error: {spec}:3: expands to more than 1,000,000 values once its aliases (*name) are "
        "resolved; write the values out, or use fewer nested aliases"]


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x\ndata: {train: t.parquet}\nfeatures: " + "[" * 100_000 + "\n")
    r = audit(spec)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"mlwarden: error: {spec}:3: nested more than 64 levels deep; a spec is a few levels deep"
    assert "Traceback" not in r.stderr


def test_bounds_count_what_aliases_expand_to() -> None:
    # map 1 + key 1 + [1,2,3] 4 + key 1 + [*x, *x] (1 + 4 + 4) = 16 nodes once expanded
    check_yaml_bounds("a: &x [1, 2, 3]\nb: [*x, *x]\n", max_nodes=16)
    with pytest.raises(YamlBoundsError) as e:
        check_yaml_bounds("a: &x [1, 2, 3]\nb: [*x, *x, *x]\n", max_nodes=16)
    assert e.value.line == 2
    check_yaml_bounds("a: [[[[1]]]]\n", max_depth=5)
    with pytest.raises(YamlBoundsError, match="nested more than 4 levels"):
        check_yaml_bounds("a: [[[[1]]]]\n", max_depth=4)
    check_yaml_bounds("a: [unclosed\n")  # syntax errors are left to the real parse, which names the line


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_column_names_are_refused(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"dup.{fmt}"
    if fmt == "csv":
        path.write_text("x,x,label\n1,2,0\n3,4,1\n")
    else:
        pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4]), pa.array([0, 1])],
                                            names=["x", "x", "label"]), path)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: x\ndata: {{train: {path.name}, label: label}}\n")
    r = audit(spec)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"mlwarden: error: {path}: data.train: duplicate column name(s) 'x'; "
                                "give every column a unique name")
