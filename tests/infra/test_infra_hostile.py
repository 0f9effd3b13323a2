"""Hostile or broken infra files give one clean "could not parse" finding, never a crash or a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlwarden.findings import Severity
from mlwarden.infra.base import InfraError
from mlwarden.infra.scan import scan_infra

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))


def one_parse_issue(path: Path) -> None:
    issues = scan_infra([path])
    assert [(i.rule, i.severity) for i in issues] == [("infra.parse", Severity.MEDIUM)], issues
    assert issues[0].message.startswith("could not parse")


def test_yaml_bomb(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n" + BOMB)
    one_parse_issue(tmp_path / "bomb.yaml")


def test_binary_garbage_named_yaml(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_bytes(os.urandom(4096) + b"\x00")
    one_parse_issue(tmp_path / "deploy.yaml")


def test_fifty_megabytes_of_yaml(tmp_path: Path) -> None:
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n"
    line = "  k{}: " + "v" * 90 + "\n"
    with open(tmp_path / "big.yaml", "w") as fh:
        fh.write(doc)
        fh.writelines(line.format(i) for i in range(50 * 1024 * 1024 // 100))
    one_parse_issue(tmp_path / "big.yaml")


def test_deeply_nested_yaml(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("apiVersion: v1\nkind: ConfigMap\ndata: " + "[" * 100_000 + "]" * 100_000)
    one_parse_issue(tmp_path / "deep.yaml")


@pytest.mark.parametrize("text", ["apiVersion: v1\nkind: Pod\nspec: [unclosed\n", "apiVersion: v1\nkind: Pod\n\t- x"])
def test_malformed_yaml_reports_its_line(tmp_path: Path, text: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    issues = scan_infra([tmp_path / "bad.yaml"])
    assert [i.rule for i in issues] == ["infra.parse"] and issues[0].line >= 2


def test_dockerfile_without_from(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("RUN echo hi\n")
    one_parse_issue(tmp_path / "Dockerfile")


def test_a_broken_file_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "compose.yaml").write_text("services:\n  s:\n    image: x:1\n    privileged: true\n")
    rules = {i.rule for i in scan_infra([tmp_path])}
    assert {"infra.parse", "infra.container.privileged"} <= rules


def test_odd_but_valid_shapes_do_not_crash(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nspec: 3\n---\napiVersion: apps/v1\nkind: Deployment\nspec:\n  template: [1]\n"
        "---\n- 1\n---\napiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod, spec: {containers: [7]}}]\n")
    (tmp_path / "compose.yaml").write_text("services:\n  s: 3\n  t: {ports: [{target: 80}], command: 5}\n")
    assert all(i.rule != "infra.parse" for i in scan_infra([tmp_path]))


def test_missing_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="does not exist"):
        scan_infra([tmp_path / "nope"])
