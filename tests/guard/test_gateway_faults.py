"""Faults and transport: kill -9 mid-load loses no acknowledged audit entry; SIGTERM drains; mTLS."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import ipaddress
import json
import signal
import sqlite3
import ssl
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest

from mlwarden.cli_guard import verify_log_command
from mlwarden.guard.auditlog import verify_log
from mlwarden.sources.oip import oip_v2_pb2 as pb
from mlwarden.sources.oip import oip_v2_pb2_grpc as pb_grpc
from tests.guard.conftest import Guard, body, row, start_guard
from tests.guard.test_gateway_grpc import request

LOAD_S, MAX_REQUESTS, THREADS, ACKS_FIRST = 40.0, 3000, 6, 30


def _logged_ids(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        events = [json.loads(e) for (e,) in c.execute("SELECT event FROM log")]
    return {e["request_id"]: e["status"] for e in events if e.get("request_id")}


def _load(g: Guard, key: str, stop: threading.Event, acked: list[str]) -> tuple[list[str], int]:
    """Bounded REST + gRPC traffic with unique ids until ``stop``; the ids answered 200, and failures."""
    failures = 0
    lock = threading.Lock()
    counter = iter(range(MAX_REQUESTS))
    deadline = time.monotonic() + LOAD_S

    def worker(w: int) -> None:
        nonlocal failures
        ch = grpc.insecure_channel(g.grpc, options=[("grpc.enable_http_proxy", 0)])
        stub = pb_grpc.GRPCInferenceServiceStub(ch)
        with httpx.Client(trust_env=False, timeout=5) as c:
            while not stop.is_set() and time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                rid = f"w{w}-{i}"
                try:
                    if i % 2:
                        r = c.post(f"{g.rest}/v2/models/loan/infer", json=body([row(amount=i % 1000)], id=rid),
                                   headers={"x-api-key": key})
                        ok = r.status_code == 200 and r.json()["id"] == rid
                    else:
                        resp = stub.ModelInfer(request([row(amount=i % 1000)], id=rid), timeout=5,
                                               metadata=(("x-api-key", key),))
                        ok = resp.id == rid
                except (httpx.HTTPError, grpc.RpcError):
                    ok = False
                with lock:
                    if ok:
                        acked.append(rid)
                    else:
                        failures += 1
        ch.close()

    with cf.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    return acked, failures


def _after_acks(acked: list[str], action) -> threading.Thread:
    """Run ``action`` once ``ACKS_FIRST`` requests were answered (progress, not a clock, on a loaded box)."""
    def run() -> None:
        deadline = time.monotonic() + LOAD_S
        while len(acked) < ACKS_FIRST and time.monotonic() < deadline:
            time.sleep(0.02)
        action()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_kill_9_mid_load_loses_no_acknowledged_entry(guard_pipeline: Path, guard_keys, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    keys, secrets = guard_keys
    g = start_guard(guard_pipeline, keys, tmp_path / "run", "--no-detect")
    acked: list[str] = []
    killer = _after_acks(acked, lambda: g.proc.send_signal(signal.SIGKILL))
    try:
        _, failures = _load(g, secrets["load"], threading.Event(), acked)
        killer.join()
    finally:
        g.stop(signal.SIGKILL)
    assert g.proc.returncode == -signal.SIGKILL
    assert len(acked) >= ACKS_FIRST and failures > 0  # the kill landed mid-load
    logged = _logged_ids(g.audit_log)
    missing = [rid for rid in acked if logged.get(rid) != 200]
    assert not missing, f"{len(missing)} acknowledged requests are not in the audit log: {missing[:5]}"
    r = verify_log(g.audit_log)
    assert r.ok, r.problems
    again = start_guard(guard_pipeline, keys, tmp_path / "run", "--no-detect")  # same audit log: the chain goes on
    try:
        assert httpx.post(f"{again.rest}/v2/models/loan/infer", json=body([row()], id="after"),
                          headers={"x-api-key": secrets["load"]}).status_code == 200
    finally:
        assert again.stop() == 0
    after = verify_log(g.audit_log)
    assert after.ok and after.entries == r.entries + 1
    assert verify_log_command(g.audit_log, None) == 0 and "chain intact" in capsys.readouterr().out


def test_sigterm_drains_in_flight_requests_and_closes_the_log(guard_pipeline: Path, guard_keys, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    keys, secrets = guard_keys
    g = start_guard(guard_pipeline, keys, tmp_path / "run", "--no-detect")
    acked: list[str] = []
    term = _after_acks(acked, lambda: g.proc.send_signal(signal.SIGTERM))  # one SIGTERM, as Kubernetes sends
    try:
        _load(g, secrets["load"], threading.Event(), acked)
        term.join()
        assert g.proc.wait(30) == 0  # a clean exit, not the re-raised signal
    finally:
        g.stop(signal.SIGKILL)
    logged = _logged_ids(g.audit_log)
    assert acked and all(logged.get(rid) == 200 for rid in acked)
    assert verify_log(g.audit_log).ok
    lines = [json.loads(ln) for ln in (g.workdir / "guard.log").read_text().splitlines() if ln.startswith("{")]
    assert lines[-1]["msg"] == "guard stopped"
    with sqlite3.connect(g.audit_log) as c:  # tamper: the verifier must notice
        c.execute("UPDATE log SET event = replace(event, '\"status\":200', '\"status\":201') WHERE seq = 2")
    assert verify_log_command(g.audit_log, None) == 1 and "TAMPERED" in capsys.readouterr().out


def _certs(folder: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def make(cn: str, issuer: tuple | None, ca: bool, san: bool = False) -> tuple:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer[0].subject if issuer else name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                critical=False)
        cert = b.sign(issuer[1] if issuer else key, hashes.SHA256())
        return cert, key

    out: dict[str, Path] = {}

    def save(tag: str, pair: tuple) -> None:
        out[f"{tag}.crt"] = folder / f"{tag}.crt"
        out[f"{tag}.key"] = folder / f"{tag}.key"
        out[f"{tag}.crt"].write_bytes(pair[0].public_bytes(serialization.Encoding.PEM))
        out[f"{tag}.key"].write_bytes(pair[1].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))

    ca = make("test-ca", None, True)
    rogue = make("rogue-ca", None, True)
    save("ca", ca)
    save("server", make("guard", ca, False, san=True))
    save("client", make("client", ca, False))
    save("rogue", make("client", rogue, False))
    return out


def test_mtls_on_rest_and_grpc(guard_pipeline: Path, guard_keys, tmp_path: Path) -> None:
    keys, secrets = guard_keys
    c = _certs(tmp_path)

    def ctx(client: str | None) -> ssl.SSLContext:
        s = ssl.create_default_context(cafile=str(c["ca.crt"]))
        if client:
            s.load_cert_chain(str(c[f"{client}.crt"]), str(c[f"{client}.key"]))
        return s

    g = start_guard(guard_pipeline, keys, tmp_path / "run", "--no-detect", "--tls-cert", str(c["server.crt"]),
                    "--tls-key", str(c["server.key"]), "--tls-client-ca", str(c["ca.crt"]), scheme="https",
                    verify=ctx("client"))
    try:
        url = f"{g.rest}/v2/models/loan/infer"
        r = httpx.post(url, json=body([row()]), headers={"x-api-key": secrets["full"]}, verify=ctx("client"))
        assert r.status_code == 200
        for who in (None, "rogue"):
            with pytest.raises(httpx.HTTPError):
                httpx.post(url, json=body([row()]), headers={"x-api-key": secrets["full"]}, verify=ctx(who))
        with pytest.raises(httpx.HTTPError):
            httpx.post(url.replace("https", "http"), json=body([row()]), headers={"x-api-key": secrets["full"]})
        ca = c["ca.crt"].read_bytes()
        good = grpc.ssl_channel_credentials(ca, c["client.key"].read_bytes(), c["client.crt"].read_bytes())
        with grpc.secure_channel(g.grpc, good) as ch:
            resp = pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(
                request([row()]), metadata=(("x-api-key", secrets["full"]),), timeout=10)
            assert resp.outputs[0].name == "predict"
        for creds in (grpc.ssl_channel_credentials(ca), grpc.ssl_channel_credentials(
                ca, c["rogue.key"].read_bytes(), c["rogue.crt"].read_bytes())):
            with grpc.secure_channel(g.grpc, creds) as ch, pytest.raises(grpc.RpcError) as e:
                pb_grpc.GRPCInferenceServiceStub(ch).ServerLive(pb.ServerLiveRequest(), timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert g.stop() == 0
