"""Participant keys as JWKs (RFC 7517, OKP keys of RFC 8037), and where they live.

Each participant has an Ed25519 signing key and an X25519 encryption key. A
key's ``kid`` is its RFC 7638 thumbprint, so a ``kid`` names exactly one key
and can be recomputed by anyone holding the public key. The directory layout
is documented in ``keys/README.md``::

    <keys_dir>/<participant>/public.jwks.json    every participant a node knows
    <keys_dir>/<participant>/private.jwks.json   only participants the node hosts (0600)

    >>> keys = PrivateKeys.generate()
    >>> keys.public().signing[0].kid == keys.signing.kid
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.crypto.encoding import b64u_decode, b64u_encode, compact_json
from gateway.errors import KeyStoreError

SIGN_ALG = "EdDSA"
KEY_ALG = "ECDH-ES+A256KW"
PUBLIC_FILE = "public.jwks.json"
PRIVATE_FILE = "private.jwks.json"


def thumbprint(crv: str, x: bytes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an OKP public key."""
    members = {"crv": crv, "kty": "OKP", "x": b64u_encode(x).decode()}
    return b64u_encode(hashlib.sha256(compact_json(members)).digest()).decode()


@dataclass(frozen=True, slots=True)
class VerifyKey:
    kid: str
    key: Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class EncryptKey:
    kid: str
    key: X25519PublicKey


@dataclass(frozen=True, slots=True)
class SignKey:
    kid: str
    key: Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class DecryptKey:
    kid: str
    key: X25519PrivateKey


def _raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class PublicKeys:
    """What everyone may know of a participant: keys to verify and to encrypt to.

    The first key of each kind is current; older ones stay for verification.
    """

    signing: tuple[VerifyKey, ...]
    encryption: tuple[EncryptKey, ...]

    def verify_key(self, kid: str) -> VerifyKey | None:
        return next((k for k in self.signing if k.kid == kid), None)

    def to_jwks(self) -> dict[str, Any]:
        keys = [_okp("Ed25519", _raw(k.key), k.kid, "sig", SIGN_ALG) for k in self.signing]
        keys += [_okp("X25519", _raw(k.key), k.kid, "enc", KEY_ALG) for k in self.encryption]
        return {"keys": keys}

    @classmethod
    def from_jwks(cls, jwks: Any) -> PublicKeys:
        signing, encryption = [], []
        for jwk in _jwk_list(jwks):
            crv, x = _okp_public(jwk)
            kid = thumbprint(crv, x)
            if jwk.get("kid", kid) != kid:
                raise KeyStoreError(f"kid '{jwk.get('kid')}' is not the key's thumbprint")
            if crv == "Ed25519":
                signing.append(VerifyKey(kid, Ed25519PublicKey.from_public_bytes(x)))
            else:
                encryption.append(EncryptKey(kid, X25519PublicKey.from_public_bytes(x)))
        if not signing or not encryption:
            raise KeyStoreError("a key set needs an Ed25519 and an X25519 key")
        return cls(tuple(signing), tuple(encryption))


@dataclass(frozen=True, slots=True)
class PrivateKeys:
    """A hosted participant's current signing key and its decryption keys."""

    signing: SignKey
    decryption: tuple[DecryptKey, ...]

    @classmethod
    def generate(cls) -> PrivateKeys:
        sign = Ed25519PrivateKey.generate()
        enc = X25519PrivateKey.generate()
        return cls(
            SignKey(thumbprint("Ed25519", _raw(sign.public_key())), sign),
            (DecryptKey(thumbprint("X25519", _raw(enc.public_key())), enc),),
        )

    def public(self) -> PublicKeys:
        return PublicKeys(
            (VerifyKey(self.signing.kid, self.signing.key.public_key()),),
            tuple(EncryptKey(k.kid, k.key.public_key()) for k in self.decryption),
        )

    def decrypt_key(self, kid: str) -> DecryptKey | None:
        return next((k for k in self.decryption if k.kid == kid), None)

    def to_jwks(self) -> dict[str, Any]:
        sign_d = self.signing.key.private_bytes_raw()
        keys = [
            _okp(
                "Ed25519",
                _raw(self.signing.key.public_key()),
                self.signing.kid,
                "sig",
                SIGN_ALG,
                d=sign_d,
            )
        ]
        keys += [
            _okp(
                "X25519",
                _raw(k.key.public_key()),
                k.kid,
                "enc",
                KEY_ALG,
                d=k.key.private_bytes_raw(),
            )
            for k in self.decryption
        ]
        return {"keys": keys}

    @classmethod
    def from_jwks(cls, jwks: Any) -> PrivateKeys:
        signing: list[SignKey] = []
        decryption: list[DecryptKey] = []
        for jwk in _jwk_list(jwks):
            crv, _ = _okp_public(jwk)
            d = _member(jwk, "d")
            if len(d) != 32:
                raise KeyStoreError(f"{crv} private key must be 32 bytes")
            if crv == "Ed25519":
                key = Ed25519PrivateKey.from_private_bytes(d)
                signing.append(SignKey(thumbprint(crv, _raw(key.public_key())), key))
            else:
                enc = X25519PrivateKey.from_private_bytes(d)
                decryption.append(DecryptKey(thumbprint(crv, _raw(enc.public_key())), enc))
        if not signing or not decryption:
            raise KeyStoreError("a private key set needs an Ed25519 and an X25519 key")
        return cls(signing[0], tuple(decryption))


def _okp(
    crv: str, x: bytes, kid: str, use: str, alg: str, *, d: bytes | None = None
) -> dict[str, str]:
    jwk = {
        "kty": "OKP",
        "crv": crv,
        "x": b64u_encode(x).decode(),
        "kid": kid,
        "use": use,
        "alg": alg,
    }
    if d is not None:
        jwk["d"] = b64u_encode(d).decode()
    return jwk


def _jwk_list(jwks: Any) -> list[Mapping[str, Any]]:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise KeyStoreError("expected a JWK Set: an object with a 'keys' list")
    if not all(isinstance(k, dict) for k in jwks["keys"]):
        raise KeyStoreError("every entry of 'keys' must be a JWK object")
    return list(jwks["keys"])


def _okp_public(jwk: Mapping[str, Any]) -> tuple[str, bytes]:
    if jwk.get("kty") != "OKP" or jwk.get("crv") not in ("Ed25519", "X25519"):
        raise KeyStoreError("only OKP keys on Ed25519 or X25519 are accepted")
    x = _member(jwk, "x")
    if len(x) != 32:
        raise KeyStoreError(f"{jwk['crv']} public key must be 32 bytes")
    return str(jwk["crv"]), x


def _member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise KeyStoreError(f"JWK member '{name}' is missing")
    try:
        return b64u_decode(value)
    except ValueError as exc:
        raise KeyStoreError(f"JWK member '{name}' is not base64url") from exc


class KeyStore:
    """Public keys of every known participant, private keys of hosted ones."""

    def __init__(
        self, public: Mapping[str, PublicKeys], private: Mapping[str, PrivateKeys]
    ) -> None:
        self._public = dict(public)
        self._private = dict(private)

    @classmethod
    def load(cls, directory: Path, *, hosted: set[str] | frozenset[str]) -> KeyStore:
        """Read every participant's public keys and the private keys of ``hosted``."""
        if not directory.is_dir():
            raise KeyStoreError(f"keys directory {directory} does not exist")
        public = {
            folder.name: _read_public(folder / PUBLIC_FILE)
            for folder in sorted(directory.iterdir())
            if (folder / PUBLIC_FILE).is_file()
        }
        private = {name: _read_private(directory / name / PRIVATE_FILE) for name in hosted}
        for name, keys in private.items():
            if name in public and not _matches(keys, public[name]):
                raise KeyStoreError(f"{name}: {PRIVATE_FILE} does not match {PUBLIC_FILE}")
            public.setdefault(name, keys.public())
        return cls(public, private)

    def known(self) -> frozenset[str]:
        return frozenset(self._public)

    def public(self, participant: str) -> PublicKeys | None:
        return self._public.get(participant)

    def private(self, participant: str) -> PrivateKeys:
        try:
            return self._private[participant]
        except KeyError:
            raise KeyStoreError(f"no private keys for '{participant}' on this node") from None


def _matches(private: PrivateKeys, public: PublicKeys) -> bool:
    """The public file lists our keys (retired ones may stay) and its current
    encryption key, the one senders use, is one we can decrypt with."""
    listed = {k.kid for k in public.signing} | {k.kid for k in public.encryption}
    ours = {k.kid for k in private.public().signing} | {k.kid for k in private.decryption}
    return ours <= listed and private.decrypt_key(public.encryption[0].kid) is not None


def write_participant_keys(directory: Path, participant: str, keys: PrivateKeys) -> Path:
    """Write a participant's key files; the private file is created 0600."""
    folder = directory / participant
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PUBLIC_FILE).write_text(json.dumps(keys.public().to_jwks(), indent=2) + "\n")
    private = folder / PRIVATE_FILE
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a new file
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(keys.to_jwks(), indent=2) + "\n")
    return folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeyStoreError(f"cannot read {path}: {exc}") from exc


def _read_public(path: Path) -> PublicKeys:
    jwks = _read_json(path)
    try:
        return PublicKeys.from_jwks(jwks)
    except KeyStoreError as exc:
        raise KeyStoreError(f"{path}: {exc.detail}") from exc


def _read_private(path: Path) -> PrivateKeys:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"{path} is readable by other users; run: chmod 600 {path}")
    jwks = _read_json(path)
    try:
        return PrivateKeys.from_jwks(jwks)
    except KeyStoreError as exc:
        raise KeyStoreError(f"{path}: {exc.detail}") from exc
