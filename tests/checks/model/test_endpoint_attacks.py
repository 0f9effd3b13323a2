"""The attack suite against a model behind a real third-party OIP v2 server (MLServer on loopback),
using only what an outsider sees — and the same answers as against the artifact itself."""

from __future__ import annotations

from pathlib import Path

from joblib import dump

from mlwarden.audit import run_audit
from mlwarden.spec import load_spec

FAMILIES = ["model.evasion.*", "model.extraction.*", "model.privacy.membership", "model.poisoning.*"]


def _spec(tmp_path: Path, served, name: str, model: str) -> Path:
    data = served.data
    data.iloc[:1000].to_parquet(tmp_path / "train.parquet", index=False)
    data.iloc[1000:].to_parquet(tmp_path / "test.parquet", index=False)
    dump(served.models["rf"], tmp_path / "rf.joblib")
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: endpoint-attacks\ndata: {{train: train.parquet, test: test.parquet, label: approved}}\n"
                    f"model: {model}\nattacks: {{targets: 40, queries: 8000, time_limit_s: 60}}\n")
    return spec


def test_attacks_run_through_the_endpoint_and_agree_with_the_artifact(tmp_path: Path, mlserver) -> None:
    remote = run_audit(load_spec(_spec(tmp_path, mlserver, "remote", f"{{endpoint: '{mlserver.rest_url('rf')}'}}")),
                       only=FAMILIES)
    local = run_audit(load_spec(_spec(tmp_path, mlserver, "local", "{artifact: rf.joblib}")), only=FAMILIES)
    r = {c.id: c for c in remote.checks}
    loc = {c.id: c for c in local.checks}
    for cid in ("model.evasion.constrained", "model.extraction.surrogate", "model.privacy.membership"):
        assert r[cid].status in ("pass", "fail"), (cid, r[cid].status, r[cid].message)
        assert r[cid].metrics["model_source"].startswith("http://127.0.0.1"), r[cid].metrics["model_source"]
        assert 0 < r[cid].metrics["queries_used"] <= r[cid].metrics["query_budget"]
    # an outsider's view gives the outsider's answers: the same flips as against the artifact
    _same_evasion(r, loc)
    # what needs the estimator itself says so instead of pretending
    assert r["model.evasion.tree_bounds"].status == "skipped"
    assert r["model.poisoning.wargame"].status == "skipped"


def test_evasion_over_grpc_agrees_with_the_artifact(tmp_path: Path, mlserver) -> None:
    only = ["model.evasion.constrained"]
    remote = run_audit(load_spec(_spec(tmp_path, mlserver, "remote", f"{{endpoint: '{mlserver.grpc_url('rf')}'}}")),
                       only=only)
    local = run_audit(load_spec(_spec(tmp_path, mlserver, "local", "{artifact: rf.joblib}")), only=only)
    r = {c.id: c for c in remote.checks}
    assert r["model.evasion.constrained"].metrics["model_source"].startswith("grpc://127.0.0.1")
    _same_evasion(r, {c.id: c for c in local.checks})


def _same_evasion(remote: dict, local: dict) -> None:
    ev, ev_local = remote["model.evasion.constrained"].metrics, local["model.evasion.constrained"].metrics
    compared = [k for k in ("clean_accuracy", "robust_accuracy", "curve", "success_rate") if k in ev]
    assert compared, sorted(ev)
    for key in compared:
        assert ev[key] == ev_local[key], key
