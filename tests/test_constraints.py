"""The constraint grammar: parsing, one-line errors, vectorised evaluation, repair, spec keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlwarden.attacks.repair import repair
from mlwarden.attacks.space import Space
from mlwarden.constraints import ConstraintError, evaluate, linear, parse, parse_all
from mlwarden.errors import SpecError
from mlwarden.sources.model import Feature, FeatureSchema
from mlwarden.spec import EXAMPLE, parse_spec

AMORT = "installment == amount * rate / 12 / (1 - (1 + rate / 12) ** (-term)) within 0.01"


def test_amortisation_with_tolerance() -> None:
    c = parse(AMORT)
    assert c.columns == ("installment", "amount", "rate", "term")
    amount, rate, term = np.array([10_000.0, 5000]), np.array([0.06, 0.12]), np.array([36.0, 12])
    r = rate / 12
    exact = amount * r / (1 - (1 + r) ** (-term))
    env = {"amount": amount, "rate": rate, "term": term, "installment": np.round(exact, 2)}
    assert evaluate(c, env).all()
    env["installment"] = exact + np.array([0.02, -0.005])
    assert evaluate(c, env).tolist() == [False, True]


def test_boolean_membership_functions_and_text() -> None:
    c = parse('grade in {1, 2, 3} and not (term < 12 or region == "north") or abs(x - y) <= max(1, 0.1 * y)')
    env = pd.DataFrame({"grade": [1, 4, 2, 9], "term": [24, 24, 6, 6], "region": ["s", "s", "s", "north"],
                        "x": [0.0, 0, 0, 100], "y": [50.0, 50, 50, 101]})
    assert evaluate(c, env).tolist() == [True, False, False, True]
    assert evaluate(parse("region not in {'north', 'east'}"), env).tolist() == [True, True, True, False]


def test_missing_values_and_division_by_zero() -> None:
    c = parse("a / b <= 1")
    env = {"a": np.array([1.0, np.nan, 1.0]), "b": np.array([2.0, 1.0, 0.0])}
    assert evaluate(c, env).tolist() == [True, False, False]


@pytest.mark.parametrize(("text", "message"), [
    ("a <", "expected a number, a column name or '(', found the end"),
    ("a = b", "unexpected character '='"),
    ("foo(a) < 1", "unknown function 'foo'"),
    ("a and b", "'and', 'or' and 'not' combine comparisons"),
    ("1 + 2", "must be a comparison"),
    ("abs(a, b) < 1", "abs() takes 1 argument(s), got 2"),
    ("__import__('os') < 1", "unknown function '__import__'"),
    ("a < b within 0.1", "'within' suits"),
])
def test_bad_constraints_give_one_line(text: str, message: str) -> None:
    with pytest.raises(ConstraintError) as e:
        parse(text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_columns_checked_against_the_data() -> None:
    with pytest.raises(ConstraintError, match="names column\\(s\\) the data lacks: total"):
        parse_all(["open <= total"], ["open", "other"])


def test_linear_forms() -> None:
    assert linear(parse("2 * (a + b) / 4 - c <= 3").tree.a) == ({"a": 0.5, "b": 0.5, "c": -1.0}, 0.0)
    assert linear(parse("a * b <= 3").tree.a) is None


def _space(constraints: list[str]) -> Space:
    schema = FeatureSchema((
        Feature(name="open", kind="int", min=0, max=20, step=1.0),
        Feature(name="total", kind="int", min=0, max=30, step=1.0),
        Feature(name="age", kind="int", min=18, max=90, step=1.0, immutable=True),
        Feature(name="amount", kind="float", min=0, max=50_000, step=0.01),
        Feature(name="installment", kind="float", min=0, max=5000),
        Feature(name="rate", kind="float", min=0.01, max=0.3),
        Feature(name="term", kind="int", min=12, max=60, step=12.0),
        Feature(name="own", kind="int", min=0, max=1, group="home"),
        Feature(name="rent", kind="int", min=0, max=1, group="home"),
    ))
    return Space.build(schema, parse_all(constraints))


def test_repair_projects_onto_every_kind_of_constraint() -> None:
    space = _space(["open <= total", "open + total <= 25", AMORT])
    x0 = np.array([3, 5, 40, 10_000, 304.22, 0.06, 36, 1, 0], float)
    bad = np.array([[9, 4, 55, 12_000.123, 1.0, 0.06, 40, 0.6, 0.7],
                    [19, 18, 40, 10_000, 1.0, 0.5, 36, 0.2, 0.1]], float)
    fixed, ok = repair(space, bad, x0)
    assert ok.all(), fixed
    assert (fixed[:, 2] == 40).all()  # immutable back
    assert fixed[0, 0] <= fixed[0, 1] and fixed[1].take([0, 1]).sum() <= 25
    assert fixed[0, 6] % 12 == 0 and round(fixed[0, 3], 2) == fixed[0, 3]
    assert fixed[0, 7:].tolist() == [0.0, 1.0] and fixed[1, 7:].tolist() == [1.0, 0.0]
    assert fixed[1, 5] == 0.3  # clipped to max
    assert evaluate(parse(AMORT), space.env(fixed)).all()


def test_repair_reports_rows_it_cannot_fix() -> None:
    space = _space(["open * total >= 500"])  # not linear, and impossible within the bounds
    x0 = np.array([3, 5, 40, 10_000, 304.22, 0.06, 36, 1, 0], float)
    _, ok = repair(space, x0[None, :].copy(), x0)
    assert ok.tolist() == [False]


def test_spec_takes_groups_steps_and_constraints(tmp_path) -> None:
    text = ("name: t\ndata: {train: a.parquet}\nfeatures:\n  term: {type: int, step: 12}\n"
            "  own: {type: int, group: home}\n  rent: {type: int, group: home}\n"
            "constraints:\n  - \"open <= total\"\n")
    spec = parse_spec(text, tmp_path / "s.yaml")
    assert spec.constraints == ["open <= total"] and spec.features["term"].step == 12
    assert spec.features["own"].group == "home"


@pytest.mark.parametrize(("body", "message"), [
    ("constraints:\n  - \"a <= b\"\n  - \"a <= = b\"\n", ":5: constraints.1: "),
    ("features:\n  a: {type: int, group: g}\n", "one-hot group 'g' has only one column (a)"),
    ("features:\n  a: {type: category, step: 2}\n", "'step' suits int and float features"),
    ("features:\n  a: {type: int, step: 0.5}\n", "'step' of an int feature must be a whole number"),
    ("features:\n  a: {type: int, step: 0}\n", "features.a.step"),
    ("constraints: \"a <= b\"\n", "constraints: must be a list"),
])
def test_bad_spec_keys_give_one_line(tmp_path, body: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_spec("name: t\ndata: {train: a.parquet}\n" + body, tmp_path / "s.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_example_spec_shows_the_new_keys() -> None:
    import yaml

    uncommented = "\n".join(line.replace("# ", "", 1) if line.startswith(("# features", "#   ", "# constraints"))
                            else line for line in EXAMPLE.splitlines())
    assert "group: home" in EXAMPLE and "step: 6" in EXAMPLE and "constraints:" in EXAMPLE
    raw = yaml.safe_load(EXAMPLE)
    assert raw["name"] == "loan-approval"
    for c in ("open_accounts <= total_accounts", AMORT):
        parse(c)
    assert uncommented
