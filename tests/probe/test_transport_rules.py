"""Certificate rules that no fixture server plants at once: expiring soon, and subjectAltName matching."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlwarden.probe import transport
from mlwarden.probe.base import FamilyResult


def _cert(days_left: int, names: list[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days_left))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_cert_expiring_is_low_and_names_match_wildcards() -> None:
    out = FamilyResult()
    transport._certificate(_cert(5, ["*.models.example"]), "loan.models.example", out)
    assert [(i.rule, i.severity.value) for i in out.issues] == [("endpoint.transport.cert_expiring", "low")]
    out = FamilyResult()
    transport._certificate(_cert(200, ["*.models.example"]), "a.b.models.example", out)
    assert [i.rule for i in out.issues] == ["endpoint.transport.hostname_mismatch"]  # a wildcard covers one label


def test_name_matching() -> None:
    assert transport._matches("127.0.0.1", "127.0.0.1") and not transport._matches("127.0.0.2", "127.0.0.1")
    assert transport._matches("Loan.Example.", "loan.example")
    assert not transport._matches("*.example", "example")
