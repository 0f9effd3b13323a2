"""Transport: is the endpoint reached over TLS, is that TLS sound, and does gRPC describe itself?

Rules (``endpoint.transport.*``):

* ``plaintext`` — the endpoint answers over plain HTTP or gRPC without TLS: queries, answers
  and any API key cross the network readable and modifiable. **high**.
* ``tls_legacy`` — the server completes a TLS 1.0 or 1.1 handshake (deprecated by RFC 8996). **high**.
* ``cert_untrusted`` — the certificate does not verify against the system store (plus ``--ca``):
  self-signed or from an unknown CA. **high**.
* ``cert_expired`` — the certificate is outside its validity period. **high**.
* ``hostname_mismatch`` — no subjectAltName of the certificate matches the host probed. **high**.
* ``cert_expiring`` — the certificate expires within 21 days. **low**.
* ``grpc_reflection`` — gRPC server reflection answers without credentials and lists the
  services: a free map of every RPC, admin ones included. **medium** (**low** when a key is needed).

Handshakes are counted against the request budget like any other request.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from typing import Any
from urllib.parse import urlparse

from ..findings import Severity
from .base import FamilyResult, Issue
from .session import ProbeSession

REFS = ("OWASP-ML05", "AML.T0049", "NIST-MANAGE")
REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
              "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
EXPIRING_DAYS = 21


def host_port(s: ProbeSession) -> tuple[str, int]:
    if s.target.protocol == "rest":
        u = urlparse(s.target.base)
        return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
    host, _, port = s.target.base.rpartition(":")
    return host.strip("[]"), int(port)


def _issue(rule: str, sev: Severity, title: str, desc: str, fix: str, **evidence: Any) -> Issue:
    return Issue(rule=f"endpoint.transport.{rule}", severity=sev, title=title, description=desc, remediation=fix,
                 evidence=evidence, references=REFS)


def probe(s: ProbeSession) -> FamilyResult:
    out = FamilyResult()
    host, port = host_port(s)
    out.metrics.update(host=host, port=port, tls=s.target.tls)
    if not s.target.tls:
        _plaintext(s, out)
    else:
        _tls(s, out, host, port)
    if s.target.protocol == "grpc":
        _reflection(s, out)
    return out


def _plaintext(s: ProbeSession, out: FamilyResult) -> None:
    if s.target.protocol == "rest":
        r = s.http("GET", "/v2/health/live", auth=False)
    else:
        r = s.grpc("/inference.GRPCInferenceService/ServerLive", b"", auth=False)
    out.metrics["plaintext_answer"] = r.status
    if r.outcome not in ("hang", "dropped"):
        kind = "HTTP" if s.target.protocol == "rest" else "gRPC"
        out.issues.append(_issue(
            "plaintext", Severity.HIGH, f"The endpoint answers over plain {kind}, without TLS",
            f"{s.target.display} answered {r.what} with {r.status} over an unencrypted connection: inputs, "
            "predictions and API keys can be read and altered by anyone on the path.",
            "Terminate TLS at the server or a gateway (https://, grpcs://) and close the plaintext port.",
            request=r.what, status=r.status))


def _context(alpn: list[str], *, verify: bool, cafile: str | None, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # names are judged separately, so an untrusted cert still gets its name checked
    if verify:
        ctx.load_default_certs()
        if cafile:
            ctx.load_verify_locations(cafile)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let OpenSSL offer what a legacy server would take
    ctx.set_alpn_protocols(alpn)
    return ctx


def _handshake(s: ProbeSession, host: str, port: int, ctx: ssl.SSLContext) -> tuple[str | None, bytes | None, str]:
    """(negotiated version, peer certificate DER, error) of one handshake."""
    s.spend()
    try:
        with socket.create_connection((host, port), timeout=s.options.timeout_s) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            return tls.version(), tls.getpeercert(binary_form=True), ""
    except ssl.SSLCertVerificationError as e:
        return None, None, f"verify:{e.verify_message or e.reason}"
    except (ssl.SSLError, OSError) as e:
        return None, None, str(getattr(e, "reason", None) or e)[:160]


def _tls(s: ProbeSession, out: FamilyResult, host: str, port: int) -> None:
    import warnings

    alpn = ["h2"] if s.target.protocol == "grpc" else ["http/1.1"]
    version, der, err = _handshake(s, host, port, _context(alpn, verify=False, cafile=None))
    out.metrics["tls_version"] = version
    if der is None:
        out.skipped = f"no TLS handshake with {host}:{port} ({err})"
        return
    _, _, verr = _handshake(s, host, port, _context(alpn, verify=True, cafile=s.options.ca_file))
    out.metrics["verified"] = not verr
    if verr:
        out.issues.append(_issue(
            "cert_untrusted", Severity.HIGH, "The TLS certificate is not trusted",
            f"The certificate of {host}:{port} does not verify ({verr.removeprefix('verify:')}): clients must "
            "turn verification off to connect, which lets anyone impersonate the server.",
            "Use a certificate from a CA the clients trust (a public CA, or the organisation's CA).",
            error=verr.removeprefix("verify:")))
    _certificate(der, host, out)
    legacy = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the deprecated versions are the point
        for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            got, _, _ = _handshake(s, host, port, _context(alpn, verify=False, cafile=None, version=v))
            if got:
                legacy.append(got)
    out.metrics["legacy_versions_accepted"] = legacy
    if legacy:
        out.issues.append(_issue(
            "tls_legacy", Severity.HIGH, f"The server accepts {' and '.join(legacy)}",
            f"{host}:{port} completes handshakes with {', '.join(legacy)}, deprecated by RFC 8996 and open to "
            "downgrade and known cipher attacks.",
            "Set the minimum TLS version to 1.2 (better 1.3) on the server or gateway.", versions=legacy))


def _certificate(der: bytes, host: str, out: FamilyResult) -> None:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    now = datetime.datetime.now(datetime.UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    out.metrics.update(not_after=end.isoformat(), subject=cert.subject.rfc4514_string()[:200],
                       self_signed=cert.issuer == cert.subject)
    if not start <= now <= end:
        out.issues.append(_issue(
            "cert_expired", Severity.HIGH, "The TLS certificate is outside its validity period",
            f"The certificate is valid from {start:%Y-%m-%d} to {end:%Y-%m-%d}; clients that accept it accept "
            "any certificate.", "Renew the certificate and automate renewal (ACME, cert-manager).",
            not_before=start.isoformat(), not_after=end.isoformat()))
    elif end - now < datetime.timedelta(days=EXPIRING_DAYS):
        out.issues.append(_issue(
            "cert_expiring", Severity.LOW, f"The TLS certificate expires on {end:%Y-%m-%d}",
            "The certificate expires within three weeks.", "Renew it and automate renewal.",
            not_after=end.isoformat()))
    names = _san(cert)
    out.metrics["subject_alt_names"] = names[:20]
    if not any(_matches(n, host) for n in names):
        out.issues.append(_issue(
            "hostname_mismatch", Severity.HIGH, f"The TLS certificate is not issued for {host}",
            f"No subjectAltName of the certificate ({', '.join(names[:6]) or 'none'}) matches {host}: clients "
            "must skip the name check, which accepts any valid certificate for any host.",
            "Issue the certificate for the name clients connect to (subjectAltName).", host=host, names=names[:20]))


def _san(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*ext.get_values_for_type(x509.DNSName), *(str(a) for a in ext.get_values_for_type(x509.IPAddress))]


def _matches(name: str, host: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(name)
    except ValueError:
        pass
    name, host = name.lower().rstrip("."), host.lower().rstrip(".")
    if name.startswith("*."):  # a wildcard covers exactly one left-most label
        return "." in host and host.split(".", 1)[1] == name[2:] and host.split(".", 1)[0] != ""
    return name == host


def _reflection(s: ProbeSession, out: FamilyResult) -> None:
    from grpc_reflection.v1alpha import reflection_pb2 as rpb

    req = rpb.ServerReflectionRequest(list_services="").SerializeToString()
    for auth in (False, True) if s.options.key else (False,):
        for path in REFLECTION:
            r = s.grpc_stream(path, [req], auth=auth)
            if r.outcome == "ok":
                try:
                    services = [x.name for x in rpb.ServerReflectionResponse.FromString(r.body)
                                .list_services_response.service]
                except Exception:  # noqa: BLE001 — an answer that does not parse still says reflection is on
                    services = []
                out.metrics["reflection_services"] = services[:50]
                sev = Severity.LOW if auth else Severity.MEDIUM
                who = "to any caller with a key" if auth else "without credentials"
                out.issues.append(_issue(
                    "grpc_reflection", sev, f"gRPC server reflection is enabled {who}",
                    f"{path.split('/')[1]} lists {len(services)} services ({', '.join(services[:6])}): a map of "
                    "every RPC the server offers, management ones included.",
                    "Turn server reflection off in production (do not register the reflection service).",
                    services=services[:50], authenticated=auth))
                return
            if r.outcome != "rejected":  # UNIMPLEMENTED: try the other version; anything else: stop asking
                break
