"""The guard's lean request paths answer exactly as the general ones do.

A one-row request is checked in plain Python and the model's frame is built only on demand;
these tests hold both to the array path: the same verdict, the same message, the same columns
and dtypes, for any value hypothesis finds. The detector's reference norms, computed once,
give the same distances bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.guard.errors import GuardError
from mlwarden.guard.schema import InputSchema
from mlwarden.guard.wire import InferCall, WireTensor
from mlwarden.sources.model import Feature, FeatureSchema

FEATURES = (
    Feature(name="age", kind="int", min=18, max=100),
    Feature(name="amount", kind="float", min=0, max=5000, step=0.5),
    Feature(name="score", kind="float"),
    Feature(name="count", kind="int"),
    Feature(name="flag", kind="bool"),
    Feature(name="region", kind="category", values=("north", "south")),
    Feature(name="own", kind="int", group="home"),
    Feature(name="rent", kind="int", group="home"),
)
GOOD = {"age": 30, "amount": 10.5, "score": -1.25, "count": 3, "flag": True, "region": "north", "own": 1, "rent": 0}
TYPES = {"age": "INT64", "amount": "FP64", "score": "FP64", "count": "INT64", "flag": "BOOL", "region": "BYTES",
         "own": "INT64", "rent": "INT64"}
SCHEMA = InputSchema(FeatureSchema(list(FEATURES)), ["age >= count"])

numbers = st.one_of(
    st.integers(min_value=-(2 ** 60), max_value=2 ** 60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 17, 18, 100, 101, 2 ** 53, -(2 ** 53), 2 ** 53 + 1, 0.5, 10.25, 1e-300, 1e300,
                     -0.0, 5000.0, 5000.5, True, "12", None]),
)


def _call(rows: list[dict[str, object]]) -> InferCall:
    return InferCall("m", "", "", tuple(WireTensor(f.name, TYPES[f.name], (len(rows), 1), [r[f.name] for r in rows])
                                        for f in FEATURES))


def _outcome(rows: list[dict[str, object]]) -> tuple[str, object]:
    try:
        v = SCHEMA.validate(_call(rows))
    except GuardError as e:
        return "refused", e.message
    return "ok", v


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["age", "amount", "score", "count", "own"]), value=numbers)
def test_one_row_answers_as_the_array_path(name: str, value: object) -> None:
    one = _outcome([{**GOOD, name: value}])
    two = _outcome([{**GOOD, name: value}, GOOD])  # two rows take the array path; row 0 is the same row
    assert one[0] == two[0]
    if one[0] == "refused":
        assert one[1] == two[1]
        return
    a, b = one[1], two[1]
    for n in SCHEMA.names:
        assert a.columns[n].dtype == b.columns[n].dtype, n
        assert a.columns[n][0] == b.columns[n][0] or (isinstance(a.columns[n][0], float) and math.isnan(a.columns[n][0]))
    assert np.array_equal(a.matrix[0], b.matrix[0])


@pytest.mark.parametrize(("name", "value", "message"), [
    ("age", 150, "input 'age' row 0: 150 is above the maximum 100"),
    ("age", 17, "input 'age' row 0: 17 is below the minimum 18"),
    ("age", 30.5, "input 'age' row 0: 30.5 is not a whole number"),
    ("amount", 10.25, "input 'amount' row 0: 10.25 is not a multiple of the step 0.5"),
    ("score", float("inf"), "input 'score' row 0: inf is not a finite number"),
    ("count", 2 ** 53 + 1, "input 'count' row 0: 9007199254740993 is too large"),
    # a whole float past 2**53 once slipped through and wrapped to INT64_MIN in the int cast
    ("count", 9.2e18, "input 'count' row 0: 9.2e+18 is too large"),
    ("own", 0, "row 0: one-hot group 'home' must have exactly one of own, rent set to 1 (has 0)"),
    ("count", 31, "row 0 violates the constraint 'age >= count'"),
])
def test_one_row_messages(name: str, value: object, message: str) -> None:
    assert _outcome([{**GOOD, name: value}]) == ("refused", message)


def test_frame_is_built_on_demand_and_matches_the_columns() -> None:
    rows = [GOOD, {**GOOD, "age": 40, "region": "south", "own": 0, "rent": 1, "flag": False}]
    v = SCHEMA.validate(_call(rows))
    assert "_frame" not in v.__dict__  # validation alone builds no DataFrame
    expected = pd.DataFrame({n: v.columns[n] for n in SCHEMA.names})
    pd.testing.assert_frame_equal(v.frame, expected)
    assert list(v.frame.columns) == SCHEMA.names and v.rows == 2
    assert v.frame is v.frame  # built once
    assert v.frame["region"].tolist() == ["north", "south"] and v.frame["age"].dtype == np.int64


def test_reference_norms_computed_once_give_identical_distances() -> None:
    from mlwarden.guard.detect_stats import nearest, squared_norms

    rng = np.random.default_rng(4)
    ref, queries = rng.normal(size=(500, 9)) * 1e3, rng.normal(size=(7, 9)) * 1e3
    fresh = nearest(ref, queries, 1, 3.0, within=False)
    kept = nearest(ref, queries, 1, 3.0, within=False, pool_sq=squared_norms(ref))
    assert all(np.array_equal(a, b) for a, b in zip(fresh, kept))  # bit for bit: the detector decides alike


def test_huge_whole_float_is_refused_on_the_array_path_too() -> None:
    assert _outcome([GOOD, {**GOOD, "count": -9.2e18}]) == ("refused", "input 'count' row 1: -9.2e+18 is too large")
