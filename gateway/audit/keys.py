"""The node's audit key: signs tree heads, nothing else.

It lives beside the participants' keys, encrypted with the same passphrase::

    <keys_dir>/<node>.audit.pem          the signing key (0600, encrypted PKCS#8)
    <keys_dir>/<node>.audit.jwks.json    its public key: give it to whoever verifies

A node creates its audit key on first start (and audits that it did). The
public key set is also copied into the audit directory as
``audit-key.jwks.json``, so a log can be checked where it lies; a security
team should pin the key it received out of band with ``--key``.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.store import KEY_FILE, audit_jwks, audit_key_paths
from gateway.crypto.jwk import SignKey, Suite
from gateway.crypto.keys import read_private, write_atomically, write_private
from gateway.errors import KeyStoreError


def load_or_create(keys_dir: Path, node: str, secret: bytes) -> tuple[SignKey, bool]:
    """The node's audit key, created when there is none yet (True when created)."""
    private, public = audit_key_paths(keys_dir, node)
    if private.exists():
        key = read_private(private, secret)
        if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyStoreError(f"{private.name} is not an Ed25519 or P-256 key")
        signer = SignKey.of(key)
        if not public.exists():
            publish(public, node, signer)
        return signer, False
    keys_dir.mkdir(parents=True, exist_ok=True)
    signer = SignKey.generate(Suite.ED25519)
    write_private(private, signer.key, secret)
    publish(public, node, signer)
    return signer, True


def publish(path: Path, node: str, signer: SignKey) -> None:
    """Write the public key set of an audit key (world-readable: it is public)."""
    text = json.dumps(audit_jwks(node, [signer.verify_key()]), indent=2) + "\n"
    write_atomically(path, text.encode())
    path.chmod(0o644)


def copy_to_log(directory: Path, node: str, signer: SignKey) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    publish(directory / KEY_FILE, node, signer)
