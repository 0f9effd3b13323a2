"""Signing manifests with Ed25519, in a DSSE envelope (as OpenSSF model signing does).

The envelope's payload *is* the manifest (an in-toto Statement); verification checks the
signature over the DSSE pre-authentication encoding, then that the manifest file beside
it says exactly what was signed. Every failure raises :class:`SignatureError`: a
signature that cannot be checked is a signature that failed (fail closed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ManifestError

PAYLOAD_TYPE = "application/vnd.in-toto+json"


class SignatureError(Exception):
    """The manifest's signature is missing, malformed or does not verify."""


def signature_path(manifest: str | Path) -> Path:
    return Path(str(manifest) + ".sig")


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def keygen(private_path: Path) -> Path:
    """Write an Ed25519 key pair: PRIVATE (mode 0600) and PRIVATE.pub."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public_path = Path(str(private_path) + ".pub")
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    except FileExistsError:
        raise ManifestError(f"{private_path}: already exists; refusing to overwrite a key") from None
    except OSError as e:
        raise ManifestError(f"{private_path}: cannot write the key: {e.strerror or e}") from e
    return public_path


def _load_key(path: Path, private: bool) -> Ed25519PrivateKey | Ed25519PublicKey:
    try:
        data = path.read_bytes()
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such key file") from None
    except (OSError, ValueError, TypeError) as e:
        raise ManifestError(f"{path}: not a PEM {'private' if private else 'public'} key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey if private else Ed25519PublicKey):
        raise ManifestError(f"{path}: not an Ed25519 key; create one with `mlwarden manifest keygen`")
    return key


def keyid(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(manifest: Path, private_key: Path) -> Path:
    key = _load_key(private_key, private=True)
    assert isinstance(key, Ed25519PrivateKey)
    try:
        body = manifest.read_bytes()
    except OSError as e:
        raise ManifestError(f"{manifest}: cannot read the manifest: {e.strerror or e}") from e
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{"keyid": keyid(key.public_key()),
                        "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, body))).decode()}],
    }
    out = signature_path(manifest)
    out.write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    return out


def verify(manifest: Path, public_key: Path) -> str:
    """Check the signature of ``manifest``; return the signing key's id or raise SignatureError."""
    key = _load_key(public_key, private=False)
    assert isinstance(key, Ed25519PublicKey)
    sig_file = signature_path(manifest)
    try:
        env = json.loads(sig_file.read_text(encoding="utf-8"))
        body = _b64(env["payload"])
        if env["payloadType"] != PAYLOAD_TYPE:
            raise SignatureError(f"{sig_file}: unexpected payloadType {env['payloadType']!r}")
        sigs = [_b64(s["sig"]) for s in env["signatures"]]
    except FileNotFoundError:
        raise SignatureError(f"{sig_file}: no signature; sign with `mlwarden manifest sign --key`") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SignatureError(f"{sig_file}: malformed signature envelope ({e})") from e
    for sig in sigs:
        try:
            key.verify(sig, pae(PAYLOAD_TYPE, body))
            break
        except InvalidSignature:
            continue
    else:
        raise SignatureError(f"{sig_file}: the signature does not verify with {public_key}")
    try:
        current = manifest.read_bytes()
    except OSError as e:
        raise SignatureError(f"{manifest}: cannot read the manifest: {e}") from e
    if current != body:
        raise SignatureError(f"{manifest}: differs from the manifest that was signed")
    return keyid(key)


def _b64(text: str) -> bytes:
    text = text.strip()
    pad = "=" * (-len(text) % 4)
    return base64.b64decode(text.replace("-", "+").replace("_", "/") + pad, validate=True)
