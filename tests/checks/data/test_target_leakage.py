"""data.leakage.target: the demo's and the planted leaks, binning, cross-fitting, skips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlwarden.audit import run_audit
from mlwarden.checks.data import target_leakage
from mlwarden.checks.data.target_leakage import Table, score
from mlwarden.findings import CheckResult
from mlwarden.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipelines import audit_tables, make_pipeline  # noqa: E402

TARGET = "data.leakage.target"



def audit(root: Path, train: pa.Table, **keys: str) -> CheckResult:
    return audit_tables(root, {"train": train}, TARGET, row_group_size=500, **keys)


def test_demo_action_and_reject_are_flagged(demo_dir: Path) -> None:
    [r] = run_audit(load_spec(demo_dir / "mlwarden.yaml"), only=(TARGET,)).checks
    flagged = {f.evidence["column"]: f for f in r.findings}
    assert {"action", "reject"} <= set(flagged)
    assert flagged["reject"].severity.value == "critical"
    assert flagged["action"].evidence["auc"] >= 0.95
    assert "applicant_id" not in r.metrics["top"] and "approve" not in r.metrics["top"]


def test_planted_decision_code_is_the_only_flag(tmp_path: Path) -> None:
    truth = make_pipeline(tmp_path)
    [r] = run_audit(load_spec(truth.spec), only=(TARGET,)).checks
    assert [f.evidence["column"] for f in r.findings] == [truth.target_leak_column]
    [f] = r.findings
    assert f.severity.value == "critical" and f.evidence["auc"] > 0.99
    assert "customer_id" not in r.metrics["top"]


def data(n: int = 20_000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return {"y": y, "leak": y * 5.0 + rng.normal(0, 0.3, n), "noise": rng.normal(size=n),
            "weak": y + rng.normal(0, 2, n), "uid_text": np.array([f"row-{i}" for i in range(n)]),
            "code": np.where(y == 1, "granted", "refused")}


def test_continuous_leak_is_binned_with_an_error_bound(tmp_path: Path) -> None:
    r = audit(tmp_path, pa.table(data()), label="y")
    flagged = {f.evidence["column"]: f.evidence for f in r.findings}
    assert set(flagged) == {"leak", "code"}  # a unique-per-row text column is not a leak (cross-fitted)
    assert flagged["leak"]["binned"] is True  # 20,000 distinct values > the 10,000 cap
    assert flagged["leak"]["auc_error_bound"] == 0.0  # no bin holds both classes: the binned AUC is exact
    assert flagged["code"]["auc"] == 1.0
    top = r.metrics["top"]
    assert top["uid_text"]["auc"] < 0.6 and top["uid_text"]["nmi"] < 0.05
    assert 0.55 < top["weak"]["auc"] < 0.8
    assert 0 < top["weak"]["auc_error_bound"] < 0.01
    assert "leak" in r.metrics["binned_columns"]


def test_binned_auc_is_within_its_bound_of_the_exact_auc() -> None:
    from sklearn.metrics import roc_auc_score

    d = data(30_000, seed=5)
    x, y = d["weak"], d["y"]
    exact = roc_auc_score(y, x)
    keys = target_leakage.monotone(x)
    t = Table(kind="num", keys=np.empty(0, np.uint64), counts=np.zeros((0, 2, 2), np.int64))
    u, inv = np.unique(keys, return_inverse=True)
    c = np.zeros((u.size, 2, 2), np.int64)
    np.add.at(c, (inv, y, 0), 1)
    t = target_leakage.combine(t, Table(kind="num", keys=u, counts=c))
    assert t.level >= 1
    s = score(t)
    assert abs(s["auc"] - exact) <= s["auc_error_bound"] + 1e-9


def test_multiclass_label_encoded_by_a_number_has_high_nmi(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(["a", "b", "c"], 3000)
    code = np.select([y == "a", y == "b"], [2, 0], 1)  # not monotone in the class order
    r = audit(tmp_path, pa.table({"y": y, "code": code, "x": rng.normal(size=3000)}), label="y")
    [f] = r.findings
    assert f.evidence["column"] == "code" and f.evidence["nmi"] > 0.95


def test_small_classes_flag_nothing(tmp_path: Path) -> None:
    y = np.array([0] * 500 + [1] * 10)
    r = audit(tmp_path, pa.table({"y": y, "x": y * 1.0}), label="y")
    assert r.findings == ()
    assert "fewer than 20" in r.metrics["note"]


def test_regression_label_is_skipped(tmp_path: Path) -> None:
    r = audit(tmp_path, pa.table({"y": np.arange(100) * 0.5, "x": np.arange(100)}), label="y")
    assert r.status == "skipped" and "regression target" in r.message


def test_without_label_skips(tmp_path: Path) -> None:
    r = audit(tmp_path, pa.table({"y": [1, 0], "x": [1, 2]}))
    assert (r.status, r.message) == ("skipped", "needs data.label in the spec")
