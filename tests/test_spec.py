"""The spec: valid files load, every kind of mistake is one precise SpecError line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.errors import SpecError
from mlwarden.spec import EXAMPLE, load_spec, parse_spec


def _err(text: str, tmp_path: Path) -> str:
    p = tmp_path / "mlwarden.yaml"
    p.write_text(text)
    with pytest.raises(SpecError) as e:
        load_spec(p)
    return str(e.value)


def test_full_spec_loads_and_resolves_paths(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "mlwarden.yaml"
    p.parent.mkdir()
    p.write_text(
        "name: loans\n"
        "data: {train: data/train.parquet, test: s3://bucket/test/, label: y, id: uid, sensitive: [race]}\n"
        "features:\n  age: {type: int, min: 18, max: 100, immutable: true}\n"
        "  region: {type: category, values: [n, s]}\n"
        "model: {artifact: m.joblib, endpoint: 'grpc://127.0.0.1:8081/loan'}\n"
        "code: [src/]\n"
    )
    spec = load_spec(p)
    assert spec.name == "loans"
    assert spec.datasets() == {"train": str(p.parent / "data" / "train.parquet"), "test": "s3://bucket/test/"}
    assert spec.features["age"].immutable is True
    assert spec.artifact() == str(p.parent / "m.joblib")
    assert spec.display(str(p.parent / "data" / "train.parquet")) == "data/train.parquet"


def test_example_spec_is_valid() -> None:
    spec = parse_spec(EXAMPLE, Path("mlwarden.yaml"))
    assert spec.data.label == "approved"


def test_unknown_key_names_line_and_key(tmp_path: Path) -> None:
    msg = _err("name: x\ndata:\n  train: t.parquet\n  lable: y\n", tmp_path)
    assert msg == f"{tmp_path / 'mlwarden.yaml'}:4: data: unknown key 'lable' (typo?); see `mlwarden init` for the keys a spec takes"


def test_missing_name(tmp_path: Path) -> None:
    msg = _err("data: {train: t.parquet}\n", tmp_path)
    assert msg.endswith(": name: required field is missing")


def test_no_dataset(tmp_path: Path) -> None:
    msg = _err("name: x\ndata: {label: y}\n", tmp_path)
    assert ":2: data: " in msg and "at least one dataset" in msg


def test_bad_feature_range(tmp_path: Path) -> None:
    msg = _err("name: x\ndata: {train: t}\nfeatures:\n  age: {type: int, min: 5, max: 1}\n", tmp_path)
    assert ":4: features.age: " in msg and "min (5.0) is greater than max (1.0)" in msg


def test_bad_feature_type(tmp_path: Path) -> None:
    msg = _err("name: x\ndata: {train: t}\nfeatures:\n  age: {type: integer}\n", tmp_path)
    assert "features.age.type" in msg


def test_bad_endpoint(tmp_path: Path) -> None:
    msg = _err("name: x\ndata: {train: t}\nmodel: {endpoint: 'ftp://h/x'}\n", tmp_path)
    assert "model.endpoint" in msg and "http(s):// or grpc://" in msg


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    msg = _err("name: x\ndata: [unclosed\n", tmp_path)
    assert "not valid YAML" in msg and "mlwarden.yaml:" in msg


def test_not_a_mapping(tmp_path: Path) -> None:
    assert "must be a mapping" in _err("- a\n- b\n", tmp_path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    # safe loading: a python/object tag is an error, never a call
    msg = _err("name: !!python/object/apply:os.system ['touch pwned']\ndata: {train: t}\n", tmp_path)
    assert "not valid YAML" in msg
    assert not (tmp_path / "pwned").exists()
