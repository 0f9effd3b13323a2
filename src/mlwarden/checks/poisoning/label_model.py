"""The design matrix and the cross-validated model behind ``data.poisoning.label_issues``.

Numbers are used as they are, text columns with few values as sorted category codes (their
names kept, so slices of the scan can be named); the model is a seeded HistGradientBoosting
classifier whose out-of-fold probabilities come from stratified folds that
:func:`folds` reproduces exactly, so calibration can be cross-fitted on the same folds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

FOLDS = 5
# Past LARGE rows three folds: each model still trains on 67k+ rows, where the learning curve
# is flat, and there are 3 fits instead of 5 (bench/bench_label_issues.py at 100k rows, 5 vs 3
# folds: random flips precision 0.686 vs 0.673, recall 0.794 vs 0.796; fit 3.8 s vs 2.7 s).
LARGE_FOLDS, LARGE = 3, 50_000
SEED = 0
# Fits on over EARLY_STOP_ROWS rows stop boosting early on a held-out tenth (scikit-learn's
# "auto" rule); there twice its default learning rate reaches the stop in about half the trees
# with the same detection (bench/bench_label_issues.py at 100k rows, 0.1 vs 0.2: random flips
# precision 0.687 vs 0.686, recall 0.785 vs 0.794; fit 5.7 s vs 3.8 s). Smaller fits grow all
# 100 trees, where 0.2 overfits (the planted-flip test's precision fell from ~90 % to ~55 %).
LEARNING_RATE = 0.2
EARLY_STOP_ROWS = 10_000
MAX_CATEGORIES = 255  # HistGradientBoosting's limit; more distinct strings = free text or identifiers
CATEGORY = " (category)"


def usable(t: pa.DataType) -> bool:
    """Column types the model can use: numbers, booleans, text (as categories)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_string(t) or pa.types.is_large_string(t))


def design(table: pa.Table, features: list[str]) -> tuple[np.ndarray, list[str], list[str], dict[str, list[str]]]:
    """(feature matrix, used names, dropped columns, category names per categorical column).

    Text columns with more values than ``max(20, min(255, rows / 20))`` are dropped: one value
    every few rows is an identifier or free text, not a feature."""
    cols, used, dropped, categories = [], [], [], {}
    limit = max(20, min(MAX_CATEGORIES, table.num_rows // 20))
    for name in features:
        arr = table.column(name).combine_chunks()
        t = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            # only the distinct values become Python objects
            enc = (arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr).dictionary_encode()
            distinct = enc.dictionary.to_pylist()
            if len(distinct) > limit:
                dropped.append(name)
                continue
            present = sorted(distinct)
            rank = np.array([present.index(v) for v in distinct] if distinct else [], dtype=np.float64)
            codes = np.asarray(enc.indices.fill_null(0), dtype=np.int64)
            col = rank[codes] if rank.size else np.full(len(arr), np.nan)
            cols.append(np.where(np.asarray(enc.indices.is_null(), dtype=bool), np.nan, col))
            used.append(name + CATEGORY)
            categories[name] = present
        else:
            cols.append(np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64))
            used.append(name)
    x = np.column_stack(cols) if cols else np.empty((table.num_rows, 0))
    return x, used, dropped, categories


def n_folds(rows: int) -> int:
    """How many folds the out-of-fold model (and the calibration) use for ``rows`` rows."""
    return LARGE_FOLDS if rows > LARGE else FOLDS


def folds(y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The stratified, seeded folds of the out-of-fold model (and of the calibration)."""
    from sklearn.model_selection import StratifiedKFold

    k = n_folds(y.size)
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=SEED).split(np.zeros(y.size), y))


def oof_probabilities(x: np.ndarray, y: np.ndarray, used: list[str]) -> np.ndarray:
    """Out-of-fold class probabilities of a seeded HistGradientBoosting classifier."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict

    categorical = np.array([u.endswith(CATEGORY) for u in used])
    k = n_folds(y.size)
    early = y.size * (k - 1) // k > EARLY_STOP_ROWS  # each fit sees all folds but one
    model = HistGradientBoostingClassifier(categorical_features=categorical if categorical.any() else None,
                                           learning_rate=LEARNING_RATE if early else 0.1,
                                           early_stopping=early, random_state=SEED)
    cv = folds(y)
    # One thread, folds in turn. The audit finalizes checks side by side, one per core, so this
    # fit has one core; measured on the 100k-row bench sample (2 cores, load ~3): 4.7 s so,
    # 9.9 s with the folds in two loky processes (start-up and copies), 6.7 s in two threads
    # (the tree grower holds the GIL), 19.8 s with two OpenMP threads (spin-waiting).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return cross_val_predict(model, x, y, cv=cv, method="predict_proba")
