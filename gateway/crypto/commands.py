"""``gateway keys`` and ``gateway envelope``: key lifecycle, and envelopes offline.

A contractor can test an integration without a running gateway::

    export GATEWAY_KEY_PASSPHRASE=...
    gateway keys generate --participant acme-analytics --out keys/
    gateway envelope seal --key keys/minhealth.sig.pem --to keys/acme-analytics.public.jwks.json \\
        --contract health.patient-referral referral.json > envelope.jwe
    gateway envelope open --key keys/acme-analytics.enc.pem \\
        --from keys/minhealth.public.jwks.json envelope.jwe
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.config import PARTICIPANT_ID
from gateway.contracts.files import load_catalog
from gateway.crypto import lifecycle
from gateway.crypto.envelope import Binding, Opener, Sealer
from gateway.crypto.jwk import DecryptKey, SignKey, Suite
from gateway.crypto.keys import PublicKeys, passphrase, read_public
from gateway.errors import (
    ConfigError,
    ContractViolation,
    KeyStoreError,
    VerificationError,
)
from gateway.ids import new_message_id
from gateway.jsonparse import parse_json

Say = Callable[[str], None]
_MAX_PAYLOAD = 16 * 1024 * 1024


def _participant(name: str) -> str:
    if not PARTICIPANT_ID.fullmatch(name):
        raise ConfigError(f"'{name[:64]}' is not a valid participant id")
    return name


def _secret(file: Path | None) -> bytes:
    return passphrase(os.environ, file)


def generate_command(
    *, participant: str, out: Path, suite: Suite, file: Path | None, say: Say
) -> int:
    keys = lifecycle.generate(out, _participant(participant), suite, _secret(file))
    say(
        f"wrote {out}/{participant}.sig.pem, {participant}.enc.pem (encrypted PKCS#8, mode 600)"
        f" and {participant}.public.jwks.json"
    )
    say(f"  signing kid    {keys.signing.kid} ({keys.signing.alg})")
    say(f"  encryption kid {keys.decryption[0].kid} (ECDH-ES+A256KW, {suite.value})")
    return 0


def rotate_command(
    *, participant: str, directory: Path, overlap_s: int, file: Path | None, say: Say
) -> int:
    now = int(time.time())
    keys = lifecycle.rotate(
        directory, _participant(participant), _secret(file), overlap_s=overlap_s, now=now
    )
    old = keys.retired[0]
    say(
        f"{participant}: new signing kid {keys.signing.kid}, encryption kid "
        f"{keys.decryption[0].kid}"
    )
    say(
        f"  old signing kid {old.kid} verifies messages issued until "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(old.valid_until or now))}"
    )
    say("  distribute the new public key set to every node (nodes read it at start)")
    return 0


def revoke_command(*, participant: str, directory: Path, kid: str, at: int | None, say: Say) -> int:
    when = int(time.time()) if at is None else at
    lifecycle.revoke(directory, _participant(participant), kid, at=when)
    say(f"{participant}: {kid} revoked; messages it signed at or after {when} are refused")
    return 0


def _load_private(path: Path, secret: bytes) -> Any:
    try:
        return load_pem_private_key(path.read_bytes(), secret)
    except OSError as exc:
        raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(
            f"{path}: cannot decrypt the private key (wrong passphrase, or "
            "not an encrypted PKCS#8 PEM)"
        ) from exc


def _owner(path: Path, suffix: str) -> str:
    """The participant a key file belongs to, from its name (``<id><suffix>``)."""
    if not path.name.endswith(suffix):
        raise KeyStoreError(f"{path.name}: expected a file named <participant>{suffix}")
    return _participant(path.name[: -len(suffix)])


def _public_of(path: Path) -> tuple[str, PublicKeys]:
    keys = read_public(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    name = document.get("participant") or _owner(path, ".public.jwks.json")
    return _participant(str(name)), keys


def seal_command(
    *,
    key: Path,
    to: Path,
    contract: str,
    version: str | None,
    payload: Path,
    contracts: Path | None,
    file: Path | None,
    say: Say,
) -> int:
    sender = _owner(key, ".sig.pem")
    signer = _load_private(key, _secret(file))
    if not isinstance(signer, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"{key.name} is not an Ed25519 or P-256 signing key")
    recipient, public = _public_of(to)
    body = payload.read_bytes() if str(payload) != "-" else sys.stdin.buffer.read()
    try:
        contract, resolved = _check_payload(body, contract, version, contracts)
    except ContractViolation as exc:
        print(f"gateway: error: {exc.detail}", file=sys.stderr)
        for v in exc.violations:
            print(f"  {v.pointer or '/'}: {v.message} ({v.keyword})", file=sys.stderr)
        return 1
    binding = Binding(new_message_id(), sender, recipient, contract, resolved, int(time.time()))
    token = Sealer().seal(
        body, binding, signer=SignKey.of(signer), recipient_key=public.encryption[0]
    )
    say(token.decode())
    return 0


def _check_payload(
    body: bytes, contract: str, version: str | None, contracts: Path | None
) -> tuple[str, str]:
    """The contract id and version to sign; validates the payload when a contracts
    directory is at hand."""
    directory = contracts or (Path("contracts") if Path("contracts").is_dir() else None)
    if directory is None:
        name, _, named = contract.partition("@")  # id@version names the version too
        if version is None and not named:
            raise ConfigError("without a contracts directory, --version is required")
        if version is not None and named and version != named:
            raise ConfigError(f"--contract names {named}, --version {version}")
        print("gateway: no contracts directory: the payload was not validated", file=sys.stderr)
        return name, version or named
    found = load_catalog(directory).resolve(f"{contract}@{version}" if version else contract)
    found.validate(parse_json(body, max_bytes=_MAX_PAYLOAD, max_depth=64))
    return found.id, str(found.version)


_RETIRED_KEY_FILE = re.compile(r"(?P<owner>.+)\.enc\.[A-Za-z0-9_-]{43}\.pem")


def open_command(
    *, key: Path, sender_keys: Path, envelope: Path, file: Path | None, as_json: bool, say: Say
) -> int:
    retired = _RETIRED_KEY_FILE.fullmatch(key.name)  # <id>.enc.<kid>.pem: opens what is in flight
    recipient = _participant(retired["owner"]) if retired else _owner(key, ".enc.pem")
    private = _load_private(key, _secret(file))
    if not isinstance(private, X25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"{key.name} is not an X25519 or P-256 encryption key")
    sender, public = _public_of(sender_keys)
    token = (envelope.read_bytes() if str(envelope) != "-" else sys.stdin.buffer.read()).strip()
    try:
        opened = Opener([DecryptKey.of(private)]).open(
            token,
            recipient=recipient,
            verify_key=lambda who, kid: public.verify_key(kid) if who == sender else None,
        )
        opened.verify_key.check_issued_at(opened.binding.issued_at)
    except VerificationError as exc:
        print(f"gateway: rejected: {exc.reason.value}: {exc.detail}", file=sys.stderr)
        return 1
    header = dict(opened.header)
    if as_json:
        say(
            json.dumps(
                {"header": header, "payload": opened.payload.decode("utf-8", "replace")}, indent=2
            )
        )
    else:
        say(json.dumps(header, indent=2))
        say(opened.payload.decode("utf-8", "replace"))
    return 0


__all__ = [
    "Suite",
    "generate_command",
    "open_command",
    "revoke_command",
    "rotate_command",
    "seal_command",
]
