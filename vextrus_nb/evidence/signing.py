"""Optional Ed25519 signatures on ledger entries.

With VEXTRUS_SIGNING_KEY naming a PEM private key, every new entry carries a
signature over its hash. Verification uses the same key's public half, or
VEXTRUS_VERIFY_KEY (a PEM public key) on a machine that must not hold the
private key. Without either, the hash chain alone protects the ledger.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vextrus_nb.errors import ConfigError

SIGNING_KEY_VAR = "VEXTRUS_SIGNING_KEY"
VERIFY_KEY_VAR = "VEXTRUS_VERIFY_KEY"


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{SIGNING_KEY_VAR}={path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{SIGNING_KEY_VAR}={path}: the key must be Ed25519")
    return key


def signing_key() -> Ed25519PrivateKey | None:
    path = os.environ.get(SIGNING_KEY_VAR)
    return _load_private(Path(path)) if path else None


def verify_key() -> Ed25519PublicKey | None:
    if path := os.environ.get(VERIFY_KEY_VAR):
        try:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{VERIFY_KEY_VAR}={path}: not a readable PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{VERIFY_KEY_VAR}={path}: the key must be Ed25519")
        return key
    private = signing_key()
    return private.public_key() if private else None


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, entry_hash: str) -> str:
    return base64.b64encode(key.sign(entry_hash.encode())).decode()


def is_valid(key: Ed25519PublicKey, entry_hash: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), entry_hash.encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def generate(path: Path) -> str:
    """Write a new private key (mode 0600); returns its public fingerprint."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return fingerprint(key.public_key())
