"""The screens of data.poisoning.feedback, run at finalize on the merged state.

Overall label shift, flipped-label regions, trigger values and floods: the statistics
(chi-squared, total-variation distance, bootstrap intervals, binomial tests with
Benjamini–Hochberg) and the regions they are computed over. Kept apart from the fold
so the check's module is only about what the state holds and how it merges; the
numeric bucket keys live here with :func:`_upper`, their inverse, which reads region
edges back off them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.rowhash import in_sorted_sets
from .conflicts import py, show


def _scipy_stats():  # scipy.stats costs ~0.8 s to import (each audit worker): only finalizers need it
    from scipy import stats

    return stats

if TYPE_CHECKING:
    from .feedback import FeedbackState

REGION_VALUES = 100  # a categorical column with more values is too fine to be a "region"
EXACT_NUMERIC = 20  # numeric columns with at most this many values get one region per value
BINS = 10
MIN_SUPPORT = 10
_UNSHOWN = object()
RARE_SHARE = 0.001  # a trigger value is in under 0.1 % of train rows …
RARE_OF_TYPICAL = 0.1  # … and in under a tenth of the rows a value of its column has on average
FLOOD_K = 5
EFFECT = 0.15  # total-variation distance that counts as a large label shift
SAMPLE_IDS = 20
RESAMPLES = 500
SEED = 0
_GAMMA = np.log(1.02)
_POS = 100_000


def buckets(x: np.ndarray) -> np.ndarray:
    """Monotone int64 bucket keys of 2 % relative width; 0 for zero (NaN: caller masks)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.ceil(np.log(np.abs(x)) / _GAMMA)
    k = np.clip(np.nan_to_num(k, nan=0.0, posinf=40_000, neginf=-40_000), -40_000, 40_000).astype(np.int64)
    return np.where(x > 0, _POS + k, np.where(x < 0, -(_POS + k), 0))



class Ctx:
    """Finalize-time views of the state: label vectors per (column, value) and region."""

    def __init__(self, st: FeedbackState, labels: list[int], fb: dict[str, np.ndarray]) -> None:
        self.st, self.labels, self.fb = st, labels, fb
        self.index = {h: i for i, h in enumerate(labels)}

    def name(self, h: int) -> Any:
        return self.st.names.get(h)

    def vector(self, counts: dict[int, int]) -> np.ndarray:
        v = np.zeros(len(self.labels), np.int64)
        for h, c in counts.items():
            v[self.index[h]] += c
        return v

    def table(self, split: str, col: str) -> dict[int, np.ndarray] | None:
        t = self.st.values.get(split, {}).get(col, {})
        if t is None:
            return None
        out: dict[int, np.ndarray] = {}
        for (v, lab), c in t.items():
            out.setdefault(v, np.zeros(len(self.labels), np.int64))[self.index[lab]] += c
        return out

    def overflowed(self) -> list[str]:
        return sorted({c for cols in self.st.values.values() for c, t in cols.items() if t is None})


def _tvd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    pa_, pb = a / a.sum(axis=-1, keepdims=True), b / b.sum(axis=-1, keepdims=True)
    return 0.5 * np.abs(pa_ - pb).sum(axis=-1)


def _chi2(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    t = np.stack([a, b])
    t = t[:, t.sum(axis=0) > 0]
    if t.shape[1] < 2:
        return 0.0, 1.0
    chi, p, *_ = _scipy_stats().chi2_contingency(t, correction=False)
    return float(chi), float(p)


def _ci(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, est: float) -> list[float]:
    """Basic bootstrap 95 % interval of the TVD by multinomial resampling of both count vectors."""
    ra = rng.multinomial(a.sum(), a / a.sum(), RESAMPLES)
    rb = rng.multinomial(b.sum(), b / b.sum(), RESAMPLES)
    lo, hi = np.quantile(_tvd(ra, rb), [0.025, 0.975])
    return [round(float(max(0.0, 2 * est - hi)), 4), round(float(min(1.0, 2 * est - lo)), 4)]


def overall(c: Ctx, rng: np.random.Generator) -> dict[str, Any]:
    a, b = c.vector(c.st.labels.get("train", {})), c.vector(c.st.labels.get("feedback", {}))
    if not a.sum() or not b.sum():
        return {"p": 1.0, "tvd": 0.0}
    chi, p = _chi2(a, b)
    n = a.sum() + b.sum()
    k = min(2, int((np.stack([a, b]).sum(axis=0) > 0).sum()))
    v = float(np.sqrt(chi / (n * max(1, k - 1))))
    ra = rng.multinomial(a.sum(), a / a.sum(), RESAMPLES)
    rb = rng.multinomial(b.sum(), b / b.sum(), RESAMPLES)
    vs = np.array([np.sqrt(_chi2(x, y)[0] / (n * max(1, k - 1))) for x, y in zip(ra[:200], rb[:200])])
    lo, hi = np.quantile(vs, [0.025, 0.975])
    tvd = float(_tvd(a, b))
    names = [str(c.name(h)) for h in c.labels]
    return {"train": dict(zip(names, np.round(a / a.sum(), 4).tolist())),
            "feedback": dict(zip(names, np.round(b / b.sum(), 4).tolist())),
            "chi2": round(chi, 4), "p": float(f"{p:.4g}"), "cramers_v": round(v, 4),
            "cramers_v_ci": [round(float(max(0.0, 2 * v - hi)), 4), round(float(max(0.0, 2 * v - lo)), 4)],
            "tvd": round(tvd, 4), "tvd_ci": _ci(rng, a, b, tvd)}


def regions(c: Ctx, features: list[str], numeric: list[str],
             active: np.ndarray) -> tuple[int, list[dict[str, Any]]]:
    """Regions tested, and the flagged ones — picked greedily, strongest first.

    After each pick the region's feedback rows leave the pool and the rest are re-tested
    (BH over every region each round), so one flipped cluster is reported once, not once
    per column it touches. Train's side stays marginal: the state has no joint counts.
    """
    cand = _candidates(c, features, numeric)
    rng = np.random.default_rng(SEED)
    flagged: list[dict[str, Any]] = []
    tested = 0
    for _ in range(10):
        rows = [(col, region, t, c.vector(_lab_counts(c.fb, mask & active)), mask) for col, region, t, mask in cand]
        rows = [r for r in rows if r[2].sum() >= MIN_SUPPORT and r[3].sum() >= MIN_SUPPORT]
        tested = max(tested, len(rows))
        if not rows:
            break
        p = np.array([_chi2(t, f)[1] for _, _, t, f, _ in rows])
        q = _scipy_stats().false_discovery_control(p)
        tvd = np.array([float(_tvd(t, f)) for _, _, t, f, _ in rows])
        hit = [i for i in range(len(rows)) if q[i] < 0.05 and tvd[i] >= EFFECT]
        if not hit:
            break
        i = min(hit, key=lambda j: (-tvd[j], rows[j][0], rows[j][1]))
        col, region, t, f, mask = rows[i]
        rise = int(np.argmax(f / f.sum() - t / t.sum()))
        idx = np.flatnonzero(mask & active & (c.fb["\x1flabel"] == np.uint64(c.labels[rise])))
        flagged.append({"column": col, "region": region, "label": show(c.name(c.labels[rise])),
                        "train_rows": int(t.sum()), "feedback_rows": int(f.sum()),
                        "train_share": round(float(t[rise] / t.sum()), 4),
                        "feedback_share": round(float(f[rise] / f.sum()), 4),
                        "tvd": round(float(tvd[i]), 4), "tvd_ci": _ci(rng, t, f, float(tvd[i])),
                        "p": float(f"{p[i]:.4g}"), "q": float(f"{q[i]:.4g}"), "rows": idx.tolist(),
                        "suspect_rows": int(idx.size),
                        "sample_row_ids": [py(c.fb["\x1fid"][j]) for j in idx[:SAMPLE_IDS]]})
        active = active & ~mask
    return tested, flagged


def _candidates(c: Ctx, features: list[str], numeric: list[str]) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(column, region, train label vector, feedback-row mask) for every region."""
    cand: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    for col in features:
        train = c.table("train", col)
        fbv = c.fb[col]
        if train is not None and (col not in numeric or len(train) <= EXACT_NUMERIC) and len(train) <= REGION_VALUES:
            shown = c.st.display.get(f"train\x1f{col}", {})
            for v in sorted(train, key=lambda h: (str(shown.get(h)), h)):
                cand.append((col, str(shown.get(v)), train[v], fbv == np.uint64(v)))
        elif col in numeric:
            tb = c.st.buckets.get("train", {}).get(col, {})
            keys = np.array(sorted({np.uint64(k).view(np.int64) for k, _ in tb}), dtype=np.int64)
            if keys.size < 2:
                continue
            per = np.zeros(keys.size, np.int64)
            for (k, _), n in tb.items():
                per[np.searchsorted(keys, np.uint64(k).view(np.int64))] += n
            cum = np.cumsum(per) / per.sum()
            cut = np.unique(np.searchsorted(cum, np.arange(1, BINS) / BINS))
            edges = keys[np.minimum(cut, keys.size - 1)]  # bin i holds keys ≤ edges[i]
            binned: dict[int, np.ndarray] = {}
            for (k, lab), n in tb.items():
                i = int(np.searchsorted(edges, np.uint64(k).view(np.int64)))
                binned.setdefault(i, np.zeros(len(c.labels), np.int64))[c.index[lab]] += n
            fkeys = c.fb[f"\x1fbucket:{col}"]
            fbin = np.where(fkeys == np.iinfo(np.int64).min, -1, np.searchsorted(edges, fkeys))
            for i in sorted(binned):
                lo = "-inf" if i == 0 else f"{_upper(edges[i - 1]):.4g}"
                hi = "inf" if i >= edges.size else f"{_upper(edges[i]):.4g}"
                cand.append((col, f"({lo}, {hi}]", binned[i], fbin == i))
    return cand


def _upper(key: int) -> float:
    key = int(key)
    if key == 0:
        return 0.0
    return float(np.exp((key - _POS) * _GAMMA)) if key > 0 else -float(np.exp((-key - _POS - 1) * _GAMMA))


def _lab_counts(fb: dict[str, np.ndarray], mask: np.ndarray) -> dict[int, int]:
    u, n = np.unique(fb["\x1flabel"][mask], return_counts=True)
    return {int(a): int(b) for a, b in zip(u, n)}


def _near_rates(c: Ctx, col: str) -> dict[int, np.ndarray]:
    """Train's label counts per 2 % bucket of a numeric column (bucket key → label vector)."""
    out: dict[int, np.ndarray] = {}
    for (key, lab), n in c.st.buckets.get("train", {}).get(col, {}).items():
        out.setdefault(int(np.uint64(key).view(np.int64)), np.zeros(len(c.labels), np.int64))[c.index[lab]] += n
    return out


def _rare(train_rows: int, ntrain: int, typical: float | None) -> bool:
    """Under 0.1 % of train's rows and under a tenth of the rows a value of its column has on
    average (in a column of 25,000 dates every value is under 0.1 %: that alone says nothing)."""
    return train_rows < RARE_SHARE * max(1, ntrain) and (typical is None or train_rows <= RARE_OF_TYPICAL * typical)


def triggers(c: Ctx, features: list[str]) -> list[dict[str, Any]]:
    """Feedback values that come with one label far more than their reference rate says.

    The reference is train's label rate for the value (at least 30 train rows); for a value of
    a column with too many values in train to count each, train's rate within 2 % of it
    (numeric columns); else feedback's overall rate. The label tested is the value's most
    common one, chosen after looking, so each p-value is multiplied by the number of labels
    (Bonferroni over the labels that could have been chosen). Tested against feedback's
    overall rate, the values of any column that predicts the label looked like triggers: at
    10M rows, dates of birth unrelated to the label reached q < 0.05."""
    base = c.vector(c.st.labels.get("feedback", {}))
    base = base / max(1, base.sum())
    k = len(c.labels)
    lab_u, lab_inv = np.unique(c.fb["\x1flabel"], return_inverse=True)
    lab_code = np.array([c.index[int(h)] for h in lab_u.tolist()], np.int64)[lab_inv.reshape(-1)]
    tests = []
    for col in features:
        train = c.table("train", col)
        vals, inv, counts = np.unique(c.fb[col], return_inverse=True, return_counts=True)
        inv = inv.reshape(-1)
        # label counts of every value at once, and each value's rows as a slice of one sort
        by_value = np.bincount(inv * k + lab_code, minlength=vals.size * k).reshape(vals.size, k)
        order = np.argsort(inv, kind="stable")
        ends = np.cumsum(counts)
        shown = c.st.display.get(f"feedback\x1f{col}", {})
        ntrain = c.st.rows.get("train", 0)
        near = _near_rates(c, col) if train is None and f"\x1fbucket:{col}" in c.fb else {}
        typical = None if train is None else ntrain / max(1, len(train))  # train rows of a value, on average
        for j in np.flatnonzero(counts >= MIN_SUPPORT).tolist():
            tv = None if train is None else train.get(int(vals[j]), np.zeros(k, np.int64))
            # only values rare in train (or of unknown frequency there) are tested: rarity is a
            # property of train, fixed before feedback's labels are looked at, so it may pick the
            # family. Tested too, common values with 100,000s of feedback rows were "significant"
            # for a 1-point shift (10,000 poisoned rows moved every big value's share), raised the
            # Benjamini–Hochberg bar for all, and let chance values through (10M bench: birth dates)
            if tv is not None and not _rare(int(tv.sum()), ntrain, typical):
                continue
            rows = order[ends[j] - counts[j]:ends[j]]
            lab = by_value[j]
            top = int(np.argmax(lab))
            nv = near.get(int(c.fb[f"\x1fbucket:{col}"][rows[0]])) if near else None
            if tv is not None and tv.sum() >= 30:
                p0, src = float(tv[top] / tv.sum()), "train's rate for this value"
            elif nv is not None and nv.sum() >= 30:
                p0, src = float(nv[top] / nv.sum()), "train's rate within 2 % of this value"
            else:
                p0, src = float(base[top]), "feedback's overall rate"
            tests.append([col, int(vals[j]), shown.get(int(vals[j]), _UNSHOWN), lab, top, p0, src, None, tv, typical,
                          rows])
    if tests:  # one vectorised call: per test it was most of this screen's time
        ps = _scipy_stats().binom.sf(np.array([t[3][t[4]] - 1 for t in tests]), np.array([t[3].sum() for t in tests]),
                          np.minimum(np.array([t[5] for t in tests]), 1.0))
        for t, p in zip(tests, ps.tolist()):
            t[7] = min(1.0, float(p) * k)
    if not tests:
        return []
    q = _scipy_stats().false_discovery_control(np.array([t[7] for t in tests]))
    out = []
    ntrain = c.st.rows.get("train", 0)
    for (col, _, value, lab, top, p0, src, p, tv, typical, rows), qi in zip(tests, q):
        purity = float(lab[top] / lab.sum())
        train_rows = None if tv is None else int(tv.sum())
        share = None if train_rows is None else train_rows / max(1, ntrain)
        if qi < 0.05 and purity >= 0.9:
            keep = rows[c.fb["\x1flabel"][rows] == np.uint64(c.labels[top])]
            # a value the state kept no text for (its column passed the cap in feedback): the
            # finalizer reads it back from the feedback file, not to name it "None"
            out.append({"column": col, "value": None if value is _UNSHOWN else value,
                        "value_unshown": value is _UNSHOWN, "label": show(c.name(c.labels[top])),
                        "support": int(lab.sum()), "purity": round(purity, 4), "base_rate": round(p0, 4),
                        "base": src, "p": float(f"{p:.4g}"), "q": float(f"{qi:.4g}"),
                        "train_rows": train_rows, "train_share": None if share is None else round(share, 6),
                        "train_rows_typical": None if typical is None else round(typical, 1),
                        "rows": keep.tolist(), "sample_row_ids": [py(c.fb["\x1fid"][i]) for i in keep[:SAMPLE_IDS]]})
    out.sort(key=lambda t: (t["q"], t["column"], str(t["value"])))
    return out


def floods(c: Ctx, train_hashes: list[np.ndarray]) -> tuple[list[int], list[int], dict[str, Any]]:
    h, ids = c.fb["\x1fhash"], c.fb["\x1fid"]
    _, inv, counts = np.unique(h, return_inverse=True, return_counts=True)
    flood = np.flatnonzero(counts[inv] >= FLOOD_K)
    # each chunk is sorted and distinct already: search them in turn rather than merge them all
    replay = np.flatnonzero(in_sorted_sets(h, train_hashes))
    m = {"feedback_rows": int(h.size), "flood_threshold": FLOOD_K, "flood_groups": int((counts >= FLOOD_K).sum()),
         "flood_rows": int(flood.size), "flood_sample_ids": [py(ids[i]) for i in flood[:SAMPLE_IDS]],
         "replays_train": int(replay.size), "replays_share": round(replay.size / max(1, h.size), 6),
         "replays_sample_ids": [py(ids[i]) for i in replay[:SAMPLE_IDS]]}
    return flood.tolist(), replay.tolist(), m


def union(groups: Iterable[list[int]]) -> list[int]:
    return sorted(set().union(*groups))
