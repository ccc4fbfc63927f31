"""Keys as JWKs (RFC 7517): the two suites a participant may use, and thumbprints.

- ``ed25519`` (default): EdDSA signatures over Ed25519 and ECDH-ES+A256KW over
  X25519 (OKP keys, RFC 8037);
- ``p256``, for participants whose policy demands NIST curves: ES256
  signatures and ECDH-ES+A256KW over P-256 (EC keys, RFC 7518).

A key's ``kid`` is its RFC 7638 thumbprint, so a ``kid`` names exactly one key
and anyone holding the public key can recompute it.

    >>> key = SignKey.generate(Suite.ED25519)
    >>> VerifyKey.from_jwk(key.verify_key().to_jwk()).kid == key.kid
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.crypto.encoding import b64u_decode, b64u_encode, compact_json
from gateway.errors import KeyStoreError, RejectReason, VerificationError

KEY_ALG = "ECDH-ES+A256KW"
_P256_FIELD = 2**256 - 2**224 + 2**192 + 2**96 - 1
"""The prime of P-256's field: a coordinate is an integer below it (SEC 1, 2.3.5)."""

SigningPublic = Ed25519PublicKey | ec.EllipticCurvePublicKey
SigningPrivate = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
AgreementPublic = X25519PublicKey | ec.EllipticCurvePublicKey
AgreementPrivate = X25519PrivateKey | ec.EllipticCurvePrivateKey


class Suite(StrEnum):
    ED25519 = "ed25519"
    P256 = "p256"

    @property
    def sign_alg(self) -> str:
        return "EdDSA" if self is Suite.ED25519 else "ES256"


def _b64(data: bytes) -> str:
    return b64u_encode(data).decode()


def _thumbprint(members: Mapping[str, str]) -> str:
    return _b64(hashlib.sha256(compact_json(dict(members))).digest())


def public_members(key: SigningPublic | AgreementPublic) -> dict[str, str]:
    """The RFC 7638 required members of a public key (what its thumbprint hashes)."""
    if isinstance(key, Ed25519PublicKey | X25519PublicKey):
        crv = "Ed25519" if isinstance(key, Ed25519PublicKey) else "X25519"
        return {
            "crv": crv,
            "kty": "OKP",
            "x": _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw)),
        }
    if not isinstance(key.curve, ec.SECP256R1):
        raise KeyStoreError("only P-256 EC keys are accepted")
    numbers = key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def kid_of(key: SigningPublic | AgreementPublic) -> str:
    return _thumbprint(public_members(key))


def _member(jwk: Mapping[str, Any], name: str, size: int) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise KeyStoreError(f"JWK member '{name}' is missing")
    try:
        raw = b64u_decode(value)
    except ValueError as exc:
        raise KeyStoreError(f"JWK member '{name}' is not base64url") from exc
    if len(raw) != size:
        raise KeyStoreError(f"JWK member '{name}' must be {size} bytes")
    return raw


def public_from_jwk(jwk: Mapping[str, Any]) -> SigningPublic | AgreementPublic:
    """Decode a public key, refusing anything but OKP Ed25519/X25519 and EC P-256."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "OKP" and crv == "Ed25519":
        return Ed25519PublicKey.from_public_bytes(_member(jwk, "x", 32))
    if kty == "OKP" and crv == "X25519":
        return X25519PublicKey.from_public_bytes(_member(jwk, "x", 32))
    if kty == "EC" and crv == "P-256":
        x = int.from_bytes(_member(jwk, "x", 32), "big")
        y = int.from_bytes(_member(jwk, "y", 32), "big")
        if x >= _P256_FIELD or y >= _P256_FIELD:  # OpenSSL would reduce them: one key, two JWKs
            raise KeyStoreError("EC public key is not a point on P-256")
        try:  # refuses points that are not on the curve
            return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        except ValueError as exc:
            raise KeyStoreError("EC public key is not a point on P-256") from exc
    raise KeyStoreError("only OKP Ed25519/X25519 and EC P-256 keys are accepted")


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public signing key, with the times that bound what it may sign."""

    kid: str
    key: SigningPublic
    valid_until: int | None = None
    """After a rotation: the last issue time (Unix s) this key may sign at."""
    revoked_at: int | None = None
    """Messages this key signed at or after this time (Unix s) are refused."""

    @property
    def alg(self) -> str:
        return "EdDSA" if isinstance(self.key, Ed25519PublicKey) else "ES256"

    def check_issued_at(self, issued_at: int) -> None:
        """Refuse what this key signed at or after its revocation, or after its overlap."""
        if self.revoked_at is not None and issued_at >= self.revoked_at:
            raise VerificationError(
                RejectReason.REVOKED_KEY, f"signed with {self.kid}, revoked at {self.revoked_at}"
            )
        if self.valid_until is not None and issued_at > self.valid_until:
            raise VerificationError(
                RejectReason.RETIRED_KEY, f"signed with {self.kid} after its overlap window ended"
            )

    def signed_in_time(self, issued_at: int) -> bool:
        """Whether this key could sign at ``issued_at`` (:meth:`check_issued_at` as a test)."""
        try:
            self.check_issued_at(issued_at)
        except VerificationError:
            return False
        return True

    def to_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = {
            **public_members(self.key),
            "kid": self.kid,
            "use": "sig",
            "alg": self.alg,
        }
        if self.valid_until is not None:
            jwk["valid_until"] = self.valid_until
        if self.revoked_at is not None:
            jwk["revoked_at"] = self.revoked_at
        return jwk

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> VerifyKey:
        key = public_from_jwk(jwk)
        if not isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey):
            raise KeyStoreError("a 'sig' key must be Ed25519 or P-256")
        return cls(_checked_kid(jwk, key), key, _time(jwk, "valid_until"), _time(jwk, "revoked_at"))


@dataclass(frozen=True, slots=True)
class EncryptKey:
    kid: str
    key: AgreementPublic

    def to_jwk(self) -> dict[str, Any]:
        return {**public_members(self.key), "kid": self.kid, "use": "enc", "alg": KEY_ALG}

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> EncryptKey:
        key = public_from_jwk(jwk)
        if not isinstance(key, X25519PublicKey | ec.EllipticCurvePublicKey):
            raise KeyStoreError("an 'enc' key must be X25519 or P-256")
        return cls(_checked_kid(jwk, key), key)


@dataclass(frozen=True, slots=True)
class SignKey:
    kid: str
    key: SigningPrivate = field(repr=False)

    @classmethod
    def generate(cls, suite: Suite) -> SignKey:
        key: SigningPrivate = (
            Ed25519PrivateKey.generate()
            if suite is Suite.ED25519
            else ec.generate_private_key(ec.SECP256R1())
        )
        return cls(kid_of(key.public_key()), key)

    @classmethod
    def of(cls, key: SigningPrivate) -> SignKey:
        return cls(kid_of(key.public_key()), key)

    @property
    def alg(self) -> str:
        return "EdDSA" if isinstance(self.key, Ed25519PrivateKey) else "ES256"

    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.kid, self.key.public_key())


@dataclass(frozen=True, slots=True)
class DecryptKey:
    kid: str
    key: AgreementPrivate = field(repr=False)

    @classmethod
    def generate(cls, suite: Suite) -> DecryptKey:
        key: AgreementPrivate = (
            X25519PrivateKey.generate()
            if suite is Suite.ED25519
            else ec.generate_private_key(ec.SECP256R1())
        )
        return cls(kid_of(key.public_key()), key)

    @classmethod
    def of(cls, key: AgreementPrivate) -> DecryptKey:
        return cls(kid_of(key.public_key()), key)

    def encrypt_key(self) -> EncryptKey:
        return EncryptKey(self.kid, self.key.public_key())


def _checked_kid(jwk: Mapping[str, Any], key: SigningPublic | AgreementPublic) -> str:
    kid = kid_of(key)
    if jwk.get("kid", kid) != kid:
        raise KeyStoreError(f"kid '{str(jwk.get('kid'))[:60]}' is not the key's thumbprint")
    return kid


def _time(jwk: Mapping[str, Any], name: str) -> int | None:
    value = jwk.get(name)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise KeyStoreError(f"JWK member '{name}' must be a Unix time in seconds")
    return value
