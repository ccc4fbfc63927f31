"""The envelope: a JWS over the exact payload bytes, inside a JWE for one recipient.

A fixed profile built directly on ``cryptography``, with no algorithm
negotiation: the signature is EdDSA over Ed25519 (RFC 8037), the key is
wrapped with ECDH-ES+A256KW over X25519 (RFC 7518 section 4.6, RFC 8037) and
the content is encrypted with A256GCM. Headers that make other JOSE stacks
fetch keys or change algorithms (``jku``, ``jwk``, ``x5u``, ``zip``, PBES2,
``none``, ``crit``) are refused, because every header is checked against an
allow-list. Both layers use compact serialization, so any JOSE library given
the right keys opens and verifies an envelope.

The JWS protected header binds the message to its context, so an envelope
cannot be re-addressed or passed off as another contract::

    {"alg": "EdDSA", "kid": ..., "typ": "gw-message+jws", "cty": "json",
     "mid": message id, "iss": sender, "aud": recipient,
     "ctr": contract id, "ver": contract version, "iat": issued-at (Unix s)}

    >>> alice, bob = PrivateKeys.generate(), PrivateKeys.generate()
    >>> b = Binding("m-1", "alice", "bob", "demo.note", "1.0.0", 1_700_000_000)
    >>> token = seal(b'{"x":1}', b, signer=alice.signing,
    ...              recipient_key=bob.public().encryption[0])
    >>> open_envelope(token, recipient="bob", keys=bob,
    ...               verify_key=lambda s, k: alice.public().verify_key(k)).payload
    b'{"x":1}'
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.crypto.encoding import b64u_decode, b64u_encode, compact_json
from gateway.crypto.keys import KEY_ALG, SIGN_ALG, EncryptKey, PrivateKeys, SignKey, VerifyKey
from gateway.errors import RejectReason, VerificationError

ENC = "A256GCM"
JWS_TYP = "gw-message+jws"
JWE_TYP = "gw-message+jwe"
MAX_ENVELOPE_BYTES = 8 * 1024 * 1024
_MAX_HEADER_BYTES = 4096

_JWE_REQUIRED = {"alg", "enc", "kid", "epk"}
_JWE_ALLOWED = _JWE_REQUIRED | {"typ", "cty"}
_JWS_REQUIRED = {"alg", "kid", "mid", "iss", "aud", "ctr", "ver", "iat"}
_JWS_ALLOWED = _JWS_REQUIRED | {"typ", "cty"}


@dataclass(frozen=True, slots=True)
class Binding:
    """What the signature binds the payload to."""

    message_id: str
    sender: str
    recipient: str
    contract: str
    version: str
    issued_at: int
    """Unix time in whole seconds."""


@dataclass(frozen=True, slots=True)
class Opened:
    binding: Binding
    payload: bytes
    signing_kid: str


VerifyKeyLookup = Callable[[str, str], VerifyKey | None]
"""(sender, kid) -> the sender's verification key with that kid, if any."""


def seal(payload: bytes, binding: Binding, *, signer: SignKey, recipient_key: EncryptKey) -> bytes:
    """Sign ``payload`` as ``binding.sender`` and encrypt it to one recipient."""
    return _encrypt(_sign(payload, binding, signer), recipient_key)


def _sign(payload: bytes, binding: Binding, signer: SignKey) -> bytes:
    header = {
        "alg": SIGN_ALG,
        "kid": signer.kid,
        "typ": JWS_TYP,
        "cty": "json",
        "mid": binding.message_id,
        "iss": binding.sender,
        "aud": binding.recipient,
        "ctr": binding.contract,
        "ver": binding.version,
        "iat": binding.issued_at,
    }
    signing_input = b64u_encode(compact_json(header)) + b"." + b64u_encode(payload)
    return signing_input + b"." + b64u_encode(signer.key.sign(signing_input))


def _encrypt(plaintext: bytes, recipient_key: EncryptKey) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    epk = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    header = {
        "alg": KEY_ALG,
        "enc": ENC,
        "kid": recipient_key.kid,
        "epk": {"kty": "OKP", "crv": "X25519", "x": b64u_encode(epk).decode()},
        "typ": JWE_TYP,
        "cty": JWS_TYP,
    }
    kek = _derive_kek(ephemeral.exchange(recipient_key.key))
    cek = os.urandom(32)
    iv = os.urandom(12)
    protected = b64u_encode(compact_json(header))
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected)
    ciphertext, tag = sealed[:-16], sealed[-16:]
    parts = (aes_key_wrap(kek, cek), iv, ciphertext, tag)
    return b".".join([protected, *(b64u_encode(p) for p in parts)])


def _derive_kek(shared: bytes) -> bytes:
    """Concat KDF of RFC 7518 section 4.6.2, with empty PartyUInfo / PartyVInfo."""
    alg = KEY_ALG.encode()
    other_info = (
        struct.pack(">I", len(alg))
        + alg
        + struct.pack(">I", 0)
        + struct.pack(">I", 0)
        + struct.pack(">I", 256)
    )
    return ConcatKDFHash(hashes.SHA256(), 32, other_info).derive(shared)


def open_envelope(
    token: bytes, *, recipient: str, keys: PrivateKeys, verify_key: VerifyKeyLookup
) -> Opened:
    """Decrypt and verify an envelope addressed to ``recipient``, or raise.

    Raises :class:`VerificationError` with a distinct reason for each failed
    check; nothing is returned unless every check passed.
    """
    # 1. Bounded, well-formed compact JWE: five base64url parts.
    if len(token) > MAX_ENVELOPE_BYTES:
        raise _reject(RejectReason.MALFORMED, "envelope is larger than the limit")
    parts = token.split(b".")
    if len(parts) != 5:
        raise _reject(RejectReason.MALFORMED, "envelope is not a compact JWE")
    header = _header(parts[0], _JWE_REQUIRED, _JWE_ALLOWED)
    # 2. Fixed profile (RFC 8725 section 3.1: no algorithm negotiation).
    if header["alg"] != KEY_ALG or header["enc"] != ENC:
        raise _reject(RejectReason.FORBIDDEN_HEADER, "algorithm outside the fixed profile")
    # 3. The key must be one of the recipient's own decryption keys.
    decrypt = keys.decrypt_key(str(header["kid"]))
    if decrypt is None:
        raise _reject(RejectReason.UNKNOWN_KEY, "encrypted to a key this recipient lacks")
    plaintext = _decrypt(parts, header["epk"], decrypt.key)
    # 4. The inner JWS, verified over the exact bytes that travelled.
    return _verify(plaintext, recipient, verify_key)


def _decrypt(parts: list[bytes], epk: Any, key: X25519PrivateKey) -> bytes:
    try:
        encrypted_key, iv, ciphertext, tag = (b64u_decode(p) for p in parts[1:])
    except ValueError as exc:
        raise _reject(RejectReason.MALFORMED, "envelope part is not base64url") from exc
    if len(iv) != 12 or len(tag) != 16 or len(encrypted_key) != 40:
        raise _reject(RejectReason.MALFORMED, "envelope parts have the wrong length")
    try:
        # RFC 7748 section 6.1: a low-order point gives an all-zero secret, refused.
        shared = key.exchange(X25519PublicKey.from_public_bytes(_epk_bytes(epk)))
        cek = aes_key_unwrap(_derive_kek(shared), encrypted_key)
        return AESGCM(cek).decrypt(iv, ciphertext + tag, parts[0])
    except (ValueError, InvalidUnwrap, InvalidTag) as exc:
        raise _reject(RejectReason.DECRYPTION_FAILED, "envelope does not decrypt") from exc


def _epk_bytes(epk: Any) -> bytes:
    if not isinstance(epk, dict) or set(epk) != {"kty", "crv", "x"}:
        raise ValueError("epk must be exactly an OKP public key")
    if epk["kty"] != "OKP" or epk["crv"] != "X25519" or not isinstance(epk["x"], str):
        raise ValueError("epk must be an X25519 key")
    x = b64u_decode(epk["x"])
    if len(x) != 32:
        raise ValueError("epk must be 32 bytes")
    return x


def _verify(jws: bytes, recipient: str, verify_key: VerifyKeyLookup) -> Opened:
    parts = jws.split(b".")
    if len(parts) != 3:
        raise _reject(RejectReason.MALFORMED, "content is not a compact JWS")
    header = _header(parts[0], _JWS_REQUIRED, _JWS_ALLOWED)
    if header["alg"] != SIGN_ALG:
        raise _reject(RejectReason.FORBIDDEN_HEADER, "signature algorithm outside the profile")
    binding = _binding(header)
    # 5. The signing key must belong to the sender the header names.
    key = verify_key(binding.sender, str(header["kid"]))
    if key is None:
        raise _reject(RejectReason.UNKNOWN_KEY, "signed with a key the sender does not hold")
    try:
        payload = b64u_decode(parts[1])
        signature = b64u_decode(parts[2])
        key.key.verify(signature, parts[0] + b"." + parts[1])
    except (ValueError, InvalidSignature) as exc:
        raise _reject(RejectReason.SIGNATURE_INVALID, "signature does not verify") from exc
    # 6. The signed recipient must be the one opening it (no re-addressing).
    if binding.recipient != recipient:
        raise _reject(RejectReason.RECIPIENT_MISMATCH, "envelope is addressed to someone else")
    return Opened(binding, payload, key.kid)


def _binding(header: Mapping[str, Any]) -> Binding:
    texts = {name: header[name] for name in ("mid", "iss", "aud", "ctr", "ver")}
    issued_at = header["iat"]
    if not all(isinstance(t, str) and t for t in texts.values()) or type(issued_at) is not int:
        raise _reject(RejectReason.MALFORMED, "signed header members have the wrong types")
    return Binding(
        message_id=texts["mid"],
        sender=texts["iss"],
        recipient=texts["aud"],
        contract=texts["ctr"],
        version=texts["ver"],
        issued_at=issued_at,
    )


def _header(encoded: bytes, required: set[str], allowed: set[str]) -> dict[str, Any]:
    try:
        raw = b64u_decode(encoded)
        if len(raw) > _MAX_HEADER_BYTES:
            raise ValueError("header too large")
        header = json.loads(raw, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise _reject(RejectReason.MALFORMED, "protected header is not a JSON object") from exc
    if not isinstance(header, dict):
        raise _reject(RejectReason.MALFORMED, "protected header is not a JSON object")
    extra = set(header) - allowed
    if extra:
        name = sorted(extra)[0][:40]
        raise _reject(RejectReason.FORBIDDEN_HEADER, f"header '{name}' is not allowed")
    if not required <= set(header):
        missing = sorted(required - set(header))[0]
        raise _reject(RejectReason.MALFORMED, f"header '{missing}' is missing")
    return header


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate header member")
    return dict(pairs)


def _reject(reason: RejectReason, detail: str) -> VerificationError:
    return VerificationError(reason, detail)
