"""The envelope: a JWS over the exact payload bytes, inside a JWE for one recipient.

A fixed profile built directly on ``cryptography``, with no negotiation: the
algorithm is the one the key's suite prescribes (EdDSA with X25519, or ES256
with P-256), the key is wrapped with ECDH-ES+A256KW (RFC 7518 section 4.6,
RFC 8037) and the content encrypted with A256GCM. Every header is checked
against an allow-list, so ``jku``, ``jwk``, ``x5u``, ``zip``, ``crit``, PBES2 or
``none`` are refused; a signature's ``alg`` must be the one of the key its
``kid`` names. Both layers use compact serialization, so any JOSE library
given the right keys opens and verifies an envelope.

The JWS protected header binds the message to its context, so an envelope
cannot be re-addressed or passed off as another contract::

    {"alg": "EdDSA" | "ES256", "kid": ..., "typ": "gw-message+jws", "cty": "json",
     "mid": message id, "iss": sender, "aud": recipient,
     "ctr": contract id, "ver": contract version, "iat": issued-at (Unix s)}

Amortisation (:class:`Sealer`, :class:`Opener`): the key agreement and key
wrap are the costly part of a JWE. A sealer may reuse one content-encryption
key (CEK), with its ephemeral key and wrapped form, for a bounded number of
messages and seconds per recipient key, drawing a fresh random 96-bit IV for
every message; an opener caches unwrapped CEKs by (kid, protected header,
wrapped key). Each envelope is still a complete, standard JWE. The bounds and
their reasoning are in keys/README.md.

    >>> from gateway.crypto.keys import PrivateKeys
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
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from gateway.crypto.encoding import b64u_decode, b64u_encode, compact_json
from gateway.crypto.jwk import (
    KEY_ALG,
    AgreementPrivate,
    AgreementPublic,
    DecryptKey,
    EncryptKey,
    SignKey,
    VerifyKey,
    public_from_jwk,
    public_members,
)
from gateway.crypto.keys import PrivateKeys
from gateway.errors import KeyStoreError, RejectReason, VerificationError

ENC = "A256GCM"
JWS_TYP = "gw-message+jws"
JWE_TYP = "gw-message+jwe"
MAX_ENVELOPE_BYTES = 8 * 1024 * 1024
_MAX_HEADER_BYTES = 4096
_SIGN_ALGS = ("EdDSA", "ES256")

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
    verify_key: VerifyKey
    header: Mapping[str, Any]
    """The JWS protected header, as signed."""


VerifyKeyLookup = Callable[[str, str], VerifyKey | None]
"""(sender, kid) -> the sender's verification key with that kid, if any."""


# -- primitives ----------------------------------------------------------------


def agree(private: AgreementPrivate, public: AgreementPublic) -> bytes:
    """The ECDH shared secret Z (X25519 of RFC 7748, or P-256)."""
    if isinstance(private, X25519PrivateKey) and isinstance(public, X25519PublicKey):
        return private.exchange(public)
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
        public, ec.EllipticCurvePublicKey
    ):
        return private.exchange(ec.ECDH(), public)
    raise ValueError("key agreement needs two keys of the same curve")


def derive_kek(shared: bytes) -> bytes:
    """Concat KDF of RFC 7518 section 4.6.2, with empty PartyUInfo / PartyVInfo."""
    alg = KEY_ALG.encode()
    other = struct.pack(">I", len(alg)) + alg + struct.pack(">II", 0, 0) + struct.pack(">I", 256)
    return ConcatKDFHash(hashes.SHA256(), 32, other).derive(shared)


def sign_compact(header: Mapping[str, Any], payload: bytes, key: SignKey) -> bytes:
    """A compact JWS with ``header`` as its protected header."""
    signing_input = b64u_encode(compact_json(dict(header))) + b"." + b64u_encode(payload)
    if isinstance(key.key, Ed25519PrivateKey):
        signature = key.key.sign(signing_input)
    else:
        r, s = decode_dss_signature(key.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input + b"." + b64u_encode(signature)


def verify_signature(key: VerifyKey, signature: bytes, signing_input: bytes) -> None:
    if isinstance(key.key, Ed25519PublicKey):
        key.key.verify(signature, signing_input)
        return
    if len(signature) != 64:  # JOSE ES256 is r || s, 32 bytes each (RFC 7518 3.4)
        raise InvalidSignature
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key.key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))


# -- sealing -------------------------------------------------------------------


@dataclass(slots=True)
class _Wrapped:
    protected: bytes
    encrypted_key: bytes
    cek: bytes
    uses: int
    born: float


class Sealer:
    """Seals envelopes; reuses a CEK per recipient key within the given bounds.

    ``reuse_messages=1`` (the default) draws a fresh ephemeral key and CEK
    for every envelope.
    """

    def __init__(
        self,
        *,
        reuse_messages: int = 1,
        reuse_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if reuse_messages < 1 or reuse_s < 0:
            raise ValueError("reuse_messages must be >= 1 and reuse_s >= 0")
        self._reuse_messages = reuse_messages
        self._reuse_s = reuse_s
        self._clock = clock
        self._wrapped: dict[str, _Wrapped] = {}

    def seal(
        self, payload: bytes, binding: Binding, *, signer: SignKey, recipient_key: EncryptKey
    ) -> bytes:
        """Sign ``payload`` as ``binding.sender`` and encrypt it to one recipient."""
        jws = sign_compact(_jws_header(binding, signer), payload, signer)
        wrapped = self._key_for(recipient_key)
        iv = os.urandom(12)
        sealed = AESGCM(wrapped.cek).encrypt(iv, jws, wrapped.protected)
        parts = (wrapped.encrypted_key, iv, sealed[:-16], sealed[-16:])
        return b".".join([wrapped.protected, *(b64u_encode(p) for p in parts)])

    def _key_for(self, recipient_key: EncryptKey) -> _Wrapped:
        now = self._clock()
        cached = self._wrapped.get(recipient_key.kid)
        if cached and cached.uses < self._reuse_messages and now - cached.born <= self._reuse_s:
            cached.uses += 1
            return cached
        fresh = _wrap_new_cek(recipient_key, now)
        if self._reuse_messages > 1:
            self._wrapped[recipient_key.kid] = fresh
        return fresh


def _jws_header(binding: Binding, signer: SignKey) -> dict[str, Any]:
    return {
        "alg": signer.alg,
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


def _ephemeral_for(public: AgreementPublic) -> AgreementPrivate:
    if isinstance(public, X25519PublicKey):
        return X25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _wrap_new_cek(recipient_key: EncryptKey, now: float) -> _Wrapped:
    ephemeral = _ephemeral_for(recipient_key.key)
    header = {
        "alg": KEY_ALG,
        "enc": ENC,
        "kid": recipient_key.kid,
        "epk": public_members(ephemeral.public_key()),
        "typ": JWE_TYP,
        "cty": JWS_TYP,
    }
    cek = os.urandom(32)
    kek = derive_kek(agree(ephemeral, recipient_key.key))
    return _Wrapped(b64u_encode(compact_json(header)), aes_key_wrap(kek, cek), cek, 1, now)


_DEFAULT_SEALER = Sealer()


def seal(payload: bytes, binding: Binding, *, signer: SignKey, recipient_key: EncryptKey) -> bytes:
    """Seal one envelope with a fresh ephemeral key and CEK."""
    return _DEFAULT_SEALER.seal(payload, binding, signer=signer, recipient_key=recipient_key)


# -- opening -------------------------------------------------------------------


class Opener:
    """Opens envelopes for one recipient; caches unwrapped CEKs (bounded, LRU)."""

    def __init__(self, decryption: Sequence[DecryptKey], *, cache_size: int = 1024) -> None:
        self._keys = {k.kid: k for k in decryption}
        self._cache: OrderedDict[tuple[bytes, bytes], bytes] = OrderedDict()
        self._cache_size = cache_size

    def open(self, token: bytes, *, recipient: str, verify_key: VerifyKeyLookup) -> Opened:
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
        decrypt = self._keys.get(str(header["kid"]))
        if decrypt is None:
            raise _reject(RejectReason.UNKNOWN_KEY, "encrypted to a key this recipient lacks")
        plaintext = self._decrypt(parts, header["epk"], decrypt.key)
        # 4. The inner JWS, verified over the exact bytes that travelled.
        return _verify(plaintext, recipient, verify_key)

    def _decrypt(self, parts: list[bytes], epk: Any, key: AgreementPrivate) -> bytes:
        try:
            encrypted_key, iv, ciphertext, tag = (b64u_decode(p) for p in parts[1:])
        except ValueError as exc:
            raise _reject(RejectReason.MALFORMED, "envelope part is not base64url") from exc
        if len(iv) != 12 or len(tag) != 16 or len(encrypted_key) != 40:
            raise _reject(RejectReason.MALFORMED, "envelope parts have the wrong length")
        try:
            cek = self._cek(parts[0], encrypted_key, epk, key)
            return AESGCM(cek).decrypt(iv, ciphertext + tag, parts[0])
        except (ValueError, KeyStoreError, InvalidUnwrap, InvalidTag) as exc:
            raise _reject(RejectReason.DECRYPTION_FAILED, "envelope does not decrypt") from exc

    def _cek(
        self, protected: bytes, encrypted_key: bytes, epk: Any, key: AgreementPrivate
    ) -> bytes:
        # The cache key is the whole protected header (it holds kid and epk) and the
        # wrapped key: only the exact pair that unwrapped before maps to its CEK.
        slot = (protected, encrypted_key)
        cek = self._cache.get(slot)
        if cek is not None:
            self._cache.move_to_end(slot)
            return cek
        # RFC 7748 section 6.1: a low-order X25519 point gives an all-zero secret, refused;
        # a P-256 point off the curve is refused when it is decoded.
        cek = aes_key_unwrap(derive_kek(agree(key, _epk(epk, key))), encrypted_key)
        self._cache[slot] = cek
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return cek


def _epk(epk: Any, key: AgreementPrivate) -> AgreementPublic:
    expected = (
        {"kty", "crv", "x"} if isinstance(key, X25519PrivateKey) else {"kty", "crv", "x", "y"}
    )
    if not isinstance(epk, dict) or set(epk) != expected:
        raise ValueError("epk must be exactly a public key of the recipient's curve")
    public = public_from_jwk(epk)
    if isinstance(public, X25519PublicKey | ec.EllipticCurvePublicKey):
        return public
    raise ValueError("epk is not a key-agreement key")


def open_envelope(
    token: bytes, *, recipient: str, keys: PrivateKeys, verify_key: VerifyKeyLookup
) -> Opened:
    """Open one envelope without a CEK cache."""
    opener = Opener(keys.decryption, cache_size=0)
    return opener.open(token, recipient=recipient, verify_key=verify_key)


def _verify(jws: bytes, recipient: str, verify_key: VerifyKeyLookup) -> Opened:
    parts = jws.split(b".")
    if len(parts) != 3:
        raise _reject(RejectReason.MALFORMED, "content is not a compact JWS")
    header = _header(parts[0], _JWS_REQUIRED, _JWS_ALLOWED)
    if header["alg"] not in _SIGN_ALGS:
        raise _reject(RejectReason.FORBIDDEN_HEADER, "signature algorithm outside the profile")
    binding = _binding(header)
    # 5. The signing key must belong to the sender the header names, and its
    #    algorithm is the key's own (no algorithm confusion).
    key = verify_key(binding.sender, str(header["kid"]))
    if key is None:
        raise _reject(RejectReason.UNKNOWN_KEY, "signed with a key the sender does not hold")
    if key.alg != header["alg"]:
        raise _reject(RejectReason.FORBIDDEN_HEADER, "alg does not match the signing key")
    try:
        payload = b64u_decode(parts[1])
        verify_signature(key, b64u_decode(parts[2]), parts[0] + b"." + parts[1])
    except (ValueError, InvalidSignature) as exc:
        raise _reject(RejectReason.SIGNATURE_INVALID, "signature does not verify") from exc
    # 6. The signed recipient must be the one opening it (no re-addressing).
    if binding.recipient != recipient:
        raise _reject(RejectReason.RECIPIENT_MISMATCH, "envelope is addressed to someone else")
    return Opened(binding, payload, key.kid, key, header)


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
    except (ValueError, RecursionError) as exc:  # deep nesting exhausts the JSON parser
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
