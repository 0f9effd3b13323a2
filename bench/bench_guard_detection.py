"""Benchmark: the guard's stateful attack detection against recorded real attacks and benign replay.

Traffic comes from ``guard_detection_traffic.py`` (real loanapp data; ART HopSkipJump and
BoundaryAttack, mlwarden's constraint-aware evasion, copycat extraction from in-distribution
and uniform queries, equation solving — each recorded query by query through a wrapper around
the model). Every stream is replayed through :class:`mlwarden.guard.detect.Detector` with the
default policy over a :class:`MemoryState`, exactly as the gateway calls it:

- one row per request (the hardest case for the detector), and as the attack sent it (its
  own batches; a flagged batch is refused whole, so none of its rows is answered);
- with exact duplicate queries removed (ART repeats queries, which flatters detectors).

"needed" is what the attack spends per success (evasion: queries per flipped target;
extraction: queries until its surrogate agrees with the model on ≥ 95 % of held-out rows);
"share" is the rows answered before detection over "needed". Benign keys replay the test split
with natural resubmissions. The adaptive attacker (OARS-style) replays the HopSkipJump and
mlwarden streams online: on each refusal it backs off, doubles its benign cover traffic per
attack query, and it spreads over several keys; its cost is compared with no guard at a rate
limit of 10 requests/s per key.

Run by hand (minutes):  .venv/bin/python bench/bench_guard_detection.py [--benign-keys 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guard_detection_traffic as T

from mlwarden.guard.detect import Detector
from mlwarden.guard.state import MemoryState

RATE = 10.0
REFUSED = ("block", "throttle")


def first_detection(det: Detector, M: np.ndarray, sizes: list[int] | None = None) -> tuple[int | None, str]:
    """Rows answered before the first non-allow decision (None: never), and what fired."""
    st = MemoryState()
    sizes = sizes or [1] * len(M)
    i = 0
    for n in sizes:
        for j in range(i, i + n, 1000):  # the gateway's max_rows
            d = det.observe("k", M[j:min(i + n, j + 1000)], st)
            if d.action != "allow":
                return j, f"{d.action}: {(d.reason or '').split(':')[0]}"
        i += n
    return None, "-"


def benign_rates(det: Detector, pool: pd.DataFrame, keys: int, length: int, seed: int) -> tuple[float, float, int]:
    rng = np.random.default_rng(seed)
    st = MemoryState()
    flagged_q = flagged_k = total = 0
    for k in range(keys):
        M = det.encoder.matrix(T.benign(pool, det.schema, length, rng))
        hit = 0
        for i in range(len(M)):
            hit += det.observe(f"b{k}", M[i:i + 1], st).action != "allow"
        flagged_q += hit
        flagged_k += hit > 0
        total += len(M)
    return flagged_q / total, flagged_k / keys, total


def adaptive(det: Detector, M: np.ndarray, cover: np.ndarray, keys: int, cap: int, seed: int) -> dict:
    """OARS-style: retry refused attack queries after backing off with cover traffic; learn the cover ratio."""
    rng = np.random.default_rng(seed)
    st = MemoryState()
    ratio, sent, refused, covers, done = 0, 0, 0, 0, 0
    for q in range(len(M)):
        key = f"a{q % keys}"
        while sent < cap:
            for _ in range(ratio):
                sent += 1
                covers += 1
                refused += det.observe(key, cover[rng.integers(len(cover))][None, :], st).action in REFUSED
            sent += 1
            if det.observe(key, M[q:q + 1], st).action not in REFUSED:
                done += 1
                break
            refused += 1
            ratio = max(1, ratio * 2)
        if sent >= cap:
            break
    return {"keys": keys, "sent": sent, "attack": done, "cover": covers, "refused": refused, "ratio": ratio,
            "complete": done == len(M), "hours": sent / (keys * RATE) / 3600}


def fidelity_needed(est, schema, rec: T.Recorder, holdout: pd.DataFrame, seed: int) -> int | None:
    from mlwarden.attacks.extraction import fit_surrogate, surrogate_decisions
    from mlwarden.attacks.trees import as_matrix

    Q = rec.frame()
    p = est.predict_proba(Q)[:, 1]
    X, H = as_matrix(Q), as_matrix(holdout[schema.names])
    target = est.predict(holdout[schema.names])
    for b in (50, 100, 200, 500, 1000, 2000):
        if b > len(Q):
            break
        sur = fit_surrogate(X[:b], est.classes_[(p[:b] > 0.5).astype(int)], p[:b], "scores", seed)
        if np.mean(surrogate_decisions(sur, H, est.classes_) == target) >= 0.95:
            return b
    return None


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser()
    ap.add_argument("--benign-keys", type=int, default=100)
    ap.add_argument("--benign-length", type=int, default=300)
    args = ap.parse_args()
    _, schema, P = T.loanapp()
    names = schema.names
    est = HistGradientBoostingClassifier(random_state=0).fit(P["train"][names], P["train"][T.LABEL])
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(P["train"][names], P["train"][T.LABEL])
    det = Detector(schema, reference=P["train"])
    t0 = time.perf_counter()
    fpr_q, fpr_k, nq = benign_rates(det, P["test"], args.benign_keys, args.benign_length, seed=1)
    per_obs = (time.perf_counter() - t0) / nq
    print(f"benign: {args.benign_keys} keys, {nq} queries (test split, ~13 % resubmitted): "
          f"FPR per query {fpr_q:.3%}, per key {fpr_k:.2%}; {per_obs * 1e6:.0f} µs per observe (loaded machine)")

    X0 = P["test"][names].to_numpy(float)
    streams: dict[str, tuple[T.Recorder, float | None]] = {}
    for kind in ("hsj", "boundary"):
        rec, flipped, _ = T.art_attack(kind, est, schema, X0[:1], seed=0)
        streams[f"ART {kind}"] = (rec, len(rec.frame()) / flipped.sum() if flipped.any() else None)
    rec, flipped, _ = T.mlwarden_evasion(est, schema, P["train"], P["test"].iloc[:10], 100)
    streams["mlwarden evasion (10 targets)"] = (rec, len(rec.frame()) / flipped.sum() if flipped.any() else None)
    rec = T.equation_solving(lr, schema, P["test"].iloc[:1])
    streams["equation solving (LR)"] = (rec, float(len(rec.frame())))
    for src in ("uniform", "indist"):
        rec = T.copycat(est, schema, P["calib"], 2000, src, seed=0)
        need = fidelity_needed(est, schema, rec, P["test"], seed=0)
        streams[f"copycat {src}"] = (rec, float(need) if need else None)

    print("\n| attack | queries sent | needed/success | dup % | answered before detection (1 row/req) | share | "
          "as sent (batches) | deduplicated | fired |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (rec, need) in streams.items():
        fr = rec.frame()
        M = det.encoder.matrix(fr)
        dup = 1 - len(fr.drop_duplicates()) / max(1, len(fr))
        row1, fired = first_detection(det, M)
        batch, _ = first_detection(det, M, rec.sizes())
        dedup, _ = first_detection(det, det.encoder.matrix(fr.drop_duplicates()))
        share = f"{row1 / need:.2%}" if row1 is not None and need else "-"
        print(f"| {name} | {len(fr)} | {need if need is None else round(need)} | {dup:.1%} | {row1} | {share} | "
              f"{batch} | {dedup} | {fired} |")

    cover = det.encoder.matrix(P["calib"][names])
    print("\n| adaptive attacker on | keys | requests sent | attack rows | cover rows | refused | final cover ratio | "
          "complete | hours at 10 req/s/key | no guard: requests, hours (1 key) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("ART hsj", "mlwarden evasion (10 targets)"):
        M = det.encoder.matrix(streams[name][0].frame())
        for keys in (1, 4):
            r = adaptive(det, M, cover, keys, cap=60 * len(M), seed=0)
            print(f"| {name} | {keys} | {r['sent']} | {r['attack']}/{len(M)} | {r['cover']} | {r['refused']} | "
                  f"{r['ratio']} | {r['complete']} | {r['hours']:.2f} | {len(M)}, {len(M) / RATE / 3600:.2f} |")


if __name__ == "__main__":
    main()
