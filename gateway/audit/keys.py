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

import contextlib
import getpass
import json
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.log import AuditLog
from gateway.audit.store import KEY_FILE, audit_jwks, audit_key_paths
from gateway.config import GatewayConfig
from gateway.crypto.jwk import SignKey, Suite
from gateway.crypto.keys import read_private, write_atomically, write_private
from gateway.errors import ConfigError, KeyStoreError


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


@contextlib.contextmanager
def beside_node(config: GatewayConfig, secret: bytes) -> Iterator[AuditLog]:
    """A node's audit log, for a command run beside the node (such as a key rotation).

    Opened before the command acts, so a log that cannot be written (the node is
    running and holds it) stops the command before anything changes."""
    if config.audit.dir is None:
        raise ConfigError("the node config has no audit.dir to record into")
    audit, created = open_node_log(config, secret)
    try:
        if created is not None:
            audit.record(
                "key.generated",
                owner=config.node_id,
                purpose="audit",
                kids=[created],
                by=operator(),
            )
        yield audit
    finally:
        audit.close()


def open_node_log(config: GatewayConfig, secret: bytes) -> tuple[AuditLog, str | None]:
    """The node's audit log, its key loaded (or created, whose kid is returned) only once
    the log's lock is held."""
    assert config.audit.dir is not None
    directory = config.audit.dir
    created: list[str] = []

    def signer() -> SignKey:
        key, fresh = load_or_create(config.keys_dir, config.node_id, secret)
        if fresh:
            created.append(key.kid)
        copy_to_log(directory, config.node_id, key)
        return key

    audit = AuditLog(
        node_id=config.node_id, directory=directory, signer=signer, settings=config.audit
    )
    return audit, created[0] if created else None


def operator() -> str:
    """Who ran the command, as the operating system knows them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
