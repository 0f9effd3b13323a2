"""The membership-inference library: metrics against sklearn, RMIA's bookkeeping, RMIA vs the threshold."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve

from mlwarden.attacks import membership as mia
from mlwarden.attacks.refit import fit_score_task, recipe, true_label_proba


def test_auc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    m, n = rng.integers(0, 5, 300).astype(float), rng.integers(0, 4, 500).astype(float)
    ref = roc_auc_score(np.r_[np.ones(300), np.zeros(500)], np.r_[m, n])
    assert mia.auc(m, n) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("fpr", [0.001, 0.01, 0.1])
def test_tpr_at_fpr_is_the_best_roc_point_within_the_fpr(fpr: float) -> None:
    rng = np.random.default_rng(1)
    m, n = rng.normal(1.0, 1, 2000), rng.normal(0, 1, 3000)
    f, t, _ = roc_curve(np.r_[np.ones(2000), np.zeros(3000)], np.r_[m, n])
    assert mia.tpr_at(m, n, fpr) == pytest.approx(t[f <= fpr + 1e-12].max())


def test_tpr_at_fpr_never_exceeds_the_fpr_it_promises() -> None:
    n = np.r_[np.zeros(990), np.full(10, 5.0)]  # ten non-members tied at the top
    m = np.full(100, 5.0)
    assert mia.tpr_at(m, n, 0.001) == 0.0  # calling the tied block "member" would cost 1 % FPR
    assert mia.tpr_at(m, n, 0.0099) == 0.0 and mia.tpr_at(m, n, 0.01) == 1.0


def test_evaluate_intervals_cover_and_flag_small_samples() -> None:
    rng = np.random.default_rng(2)
    ev = mia.evaluate(rng.normal(0.5, 1, 400), rng.normal(0, 1, 400), np.random.default_rng(0))
    assert ev["auc_ci"][0] <= ev["auc"] <= ev["auc_ci"][1] and 0.55 < ev["auc"] < 0.7
    assert ev["tpr_at_fpr"]["0.1%"]["meaningful"] is False and ev["tpr_at_fpr"]["1%"]["meaningful"] is True
    fprs = [p[0] for p in ev["roc"]]
    assert fprs == sorted(fprs) and fprs[0] == pytest.approx(1 / 400) and fprs[-1] == 1.0
    assert all(lo <= t + 1e-9 and t <= hi + 1e-9 or lo == hi for _, t, lo, hi in ev["roc"][5:])


@pytest.mark.parametrize("refs", [1, 2, 3, 4])
def test_reference_plan_leaves_rows_out_in_pairs(refs: int) -> None:
    plan = mia.reference_plan(1001, refs, np.random.default_rng(0))
    outs = (~plan).sum(axis=1)
    if refs % 2 == 0:
        assert (outs == refs // 2).all()
    else:
        assert set(np.unique(outs)) == {refs // 2, refs // 2 + 1}
    assert set(plan.sum(axis=0).tolist()) <= {500, 501}


def test_out_mean_uses_only_models_that_did_not_train_on_the_row() -> None:
    ref = np.array([[0.9, 0.2], [0.1, 0.8], [0.5, 0.5]])
    plan = np.array([[True, False], [False, True], [True, True]])
    out = mia.out_mean(ref, plan)
    assert out[0] == 0.2 and out[1] == 0.1 and np.isnan(out[2])


def test_rmia_is_a_share_of_population_beaten() -> None:
    s = mia.rmia_scores(np.array([0.9, 0.1]), np.array([0.5, 0.5]), np.array([0.2, 0.5, 0.8]),
                        np.array([0.5, 0.5, 0.5]), a=1.0, gamma=1.0)
    assert s.tolist() == [1.0, 0.0]


def _scores(est, refs: int):
    X, y = make_classification(n_samples=4000, n_features=10, n_informative=6, flip_y=0.2, random_state=5)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(10)])
    member = np.arange(4000) < 2000
    est.fit(X[member], y[member])
    p = true_label_proba(est.predict_proba(X), est.classes_, y)
    plan = mia.reference_plan(4000, refs, np.random.default_rng(3))
    ref = np.stack([fit_score_task((recipe(est, 0), X[plan[:, k]], y[plan[:, k]], X, y, time.time() + 600))
                    for k in range(refs)], axis=1)
    out = mia.out_mean(ref, plan)
    s = mia.rmia_scores(p, out, p[~member], out[~member])
    return mia.auc(p[member], p[~member]), mia.auc(s[member], s[~member])


def test_rmia_beats_the_threshold_on_an_overfit_forest() -> None:
    thr, rmia = _scores(RandomForestClassifier(n_estimators=50, random_state=0), refs=2)
    assert thr > 0.65 and rmia >= thr + 0.08


def test_a_regularised_model_gives_neither_attack_much() -> None:
    thr, rmia = _scores(LogisticRegression(C=0.01), refs=2)
    assert abs(thr - 0.5) < 0.05 and abs(rmia - 0.5) < 0.05


def test_recipe_pins_unset_random_state_and_keeps_hyper_parameters() -> None:
    est = recipe(RandomForestClassifier(n_estimators=7, max_depth=3), seed=11)
    assert est.get_params()["random_state"] == 11 and est.n_estimators == 7 and est.max_depth == 3
    assert not hasattr(est, "estimators_")


def test_attribute_auc_equals_scikit_learn_with_ties() -> None:
    """The attribute-inference bootstrap's rank AUC is scikit-learn's one-vs-rest weighted AUC."""
    from sklearn.metrics import roc_auc_score

    from mlwarden.attacks.attribute import auc_ovr

    rng = np.random.default_rng(3)
    for k in (2, 3, 5):
        y = rng.integers(0, k, 400)
        p = np.round(rng.dirichlet(np.ones(k), 400), 2)
        p = p / p.sum(axis=1, keepdims=True)
        ref = (roc_auc_score(y == 1, p[:, 1]) if k == 2
               else roc_auc_score(y, p, multi_class="ovr", average="weighted", labels=np.arange(k)))
        assert auc_ovr(y, p) == pytest.approx(ref, abs=1e-12)
