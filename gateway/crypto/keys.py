"""Participant key sets, and where they live on disk.

Each participant has a signing key and an encryption key of one suite
(:class:`~gateway.crypto.jwk.Suite`). Public keys are a JWK Set; private keys
are encrypted PKCS#8 PEM files, never JWKs, never logged. The layout (also
what ``gateway keys generate --out DIR`` writes for a contractor) is flat::

    <dir>/<id>.public.jwks.json   both public keys (and retired ones), with kid, use, alg
    <dir>/<id>.sig.pem            the current signing key       (0600, encrypted)
    <dir>/<id>.enc.pem            the current encryption key    (0600, encrypted)
    <dir>/<id>.enc.<kid>.pem      retired encryption keys, kept to open messages in flight

The passphrase comes from ``GATEWAY_KEY_PASSPHRASE`` or the file named by
``key_passphrase_file`` (``GATEWAY_KEY_PASSPHRASE_FILE``); it never enters the
config object.

    >>> keys = PrivateKeys.generate()
    >>> keys.public().verify_key(keys.signing.kid) is not None
    True
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from gateway.crypto.jwk import DecryptKey, EncryptKey, SignKey, Suite, VerifyKey
from gateway.errors import KeyStoreError

PASSPHRASE_ENV = "GATEWAY_KEY_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret


@dataclass(frozen=True, slots=True)
class PublicKeys:
    """What everyone may know of a participant. The first key of each kind is current;
    older signing keys stay for verification within their ``valid_until``."""

    signing: tuple[VerifyKey, ...]
    encryption: tuple[EncryptKey, ...]

    def verify_key(self, kid: str) -> VerifyKey | None:
        return next((k for k in self.signing if k.kid == kid), None)

    def to_jwks(self, participant: str | None = None) -> dict[str, Any]:
        keys = [k.to_jwk() for k in self.signing] + [k.to_jwk() for k in self.encryption]
        return {"participant": participant, "keys": keys} if participant else {"keys": keys}

    @classmethod
    def from_jwks(cls, jwks: Any) -> PublicKeys:
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise KeyStoreError("expected a JWK Set: an object with a 'keys' list")
        entries = jwks["keys"]
        if not all(isinstance(k, dict) for k in entries):
            raise KeyStoreError("every entry of 'keys' must be a JWK object")
        signing = tuple(VerifyKey.from_jwk(k) for k in entries if _use(k) == "sig")
        encryption = tuple(EncryptKey.from_jwk(k) for k in entries if _use(k) == "enc")
        if not signing or not encryption:
            raise KeyStoreError("a key set needs a signing ('sig') and an encryption ('enc') key")
        return cls(signing, encryption)


def _use(jwk: Mapping[str, Any]) -> str:
    use = jwk.get("use")
    if use in ("sig", "enc"):
        return str(use)
    if use is not None:
        raise KeyStoreError("a JWK's 'use' must be 'sig' or 'enc'")
    crv = jwk.get("crv")  # OKP keys tell their use by curve; P-256 keys must say
    if crv in ("Ed25519", "X25519"):
        return "sig" if crv == "Ed25519" else "enc"
    raise KeyStoreError("a P-256 JWK must say its 'use' (sig or enc)")


@dataclass(frozen=True, slots=True)
class PrivateKeys:
    """A hosted participant's current signing key and every decryption key it keeps."""

    signing: SignKey
    decryption: tuple[DecryptKey, ...]
    retired: tuple[VerifyKey, ...] = ()
    """Earlier signing keys as published (for the public key set only)."""

    @classmethod
    def generate(cls, suite: Suite = Suite.ED25519) -> PrivateKeys:
        return cls(SignKey.generate(suite), (DecryptKey.generate(suite),))

    @property
    def suite(self) -> Suite:
        return Suite.ED25519 if isinstance(self.signing.key, Ed25519PrivateKey) else Suite.P256

    def public(self) -> PublicKeys:
        return PublicKeys(
            (self.signing.verify_key(), *self.retired),
            tuple(k.encrypt_key() for k in self.decryption),
        )

    def decrypt_key(self, kid: str) -> DecryptKey | None:
        return next((k for k in self.decryption if k.kid == kid), None)

    def rotated(self, *, now: int, overlap_s: int) -> PrivateKeys:
        """New current keys; the old signing key verifies what it signs until
        ``now + overlap_s``; old decryption keys are kept for messages in flight."""
        old = replace(self.signing.verify_key(), valid_until=now + overlap_s)
        fresh = PrivateKeys.generate(self.suite)
        return PrivateKeys(fresh.signing, fresh.decryption + self.decryption, (old, *self.retired))


# -- files -------------------------------------------------------------------


def passphrase(environ: Mapping[str, str], file: Path | None) -> bytes:
    """The key passphrase: ``GATEWAY_KEY_PASSPHRASE``, else the passphrase file."""
    if environ.get(PASSPHRASE_ENV):
        return environ[PASSPHRASE_ENV].encode()
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KeyStoreError(
                f"cannot read the key passphrase file {file}: {exc.strerror}"
            ) from exc
        if text:
            return text.encode()
    raise KeyStoreError(
        f"no key passphrase: set {PASSPHRASE_ENV} or key_passphrase_file "
        "(GATEWAY_KEY_PASSPHRASE_FILE)"
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step; the new file is mode 0600 from birth
    (whatever the umask, and whatever the mode of the file it replaces)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_private(path: Path, key: Any, secret: bytes) -> None:
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(secret))
    write_atomically(path, pem)


def write_public(path: Path, public: PublicKeys, participant: str) -> None:
    """Replace a public key set file in one step (readable by everyone: it is public)."""
    text = json.dumps(public.to_jwks(participant), indent=2) + "\n"
    write_atomically(path, text.encode())
    path.chmod(0o644)


def read_private(path: Path, secret: bytes) -> Any:
    try:
        if path.stat().st_mode & 0o077:
            raise KeyStoreError(f"{path} is readable by other users; run: chmod 600 {path}")
        pem = path.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return load_pem_private_key(pem, secret)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(
            f"{path}: cannot decrypt the private key "
            "(wrong passphrase, or not an encrypted PKCS#8 PEM)"
        ) from exc


def write_keys(directory: Path, participant: str, keys: PrivateKeys, secret: bytes) -> None:
    """Write a participant's key files in the flat layout (private files 0600).

    Each file is replaced in one step, retired keys first and the public set last,
    so an interrupted rotation never loses a key the public set still lists."""
    directory.mkdir(parents=True, exist_ok=True)
    current, *older = keys.decryption
    for key in older:
        write_private(directory / f"{participant}.enc.{key.kid}.pem", key.key, secret)
    write_private(directory / f"{participant}.sig.pem", keys.signing.key, secret)
    write_private(directory / f"{participant}.enc.pem", current.key, secret)
    write_public(directory / f"{participant}.public.jwks.json", keys.public(), participant)


def read_public(path: Path) -> PublicKeys:
    try:
        jwks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeyStoreError(f"cannot read {path}: {exc}") from exc
    try:
        return PublicKeys.from_jwks(jwks)
    except KeyStoreError as exc:
        raise KeyStoreError(f"{path}: {exc.detail}") from exc


def read_keys(directory: Path, participant: str, secret: bytes) -> PrivateKeys:
    """A hosted participant's private keys, checked against its public key set."""
    public = read_public(directory / f"{participant}.public.jwks.json")
    sign = read_private(directory / f"{participant}.sig.pem", secret)
    if not isinstance(sign, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"{participant}.sig.pem is not an Ed25519 or P-256 key")
    current = DecryptKey.of(_agreement(directory / f"{participant}.enc.pem", secret))
    retired = [_retired(p, secret) for p in _retired_paths(directory, participant)]
    published = {k.kid: n for n, k in enumerate(public.encryption)}  # newest first
    retired.sort(key=lambda k: (published.get(k.kid, len(published)), k.kid))
    decryption = (current, *retired)
    keys = PrivateKeys(SignKey.of(sign), decryption, public.signing[1:])
    if public.signing[0].kid != keys.signing.kid or public.encryption[0].kid != decryption[0].kid:
        raise KeyStoreError(
            f"{participant}: the private keys are not the current keys of "
            f"{participant}.public.jwks.json"
        )
    return keys


_KID = re.compile(r"[A-Za-z0-9_-]{43}")
"""A SHA-256 thumbprint in base64url: how a retired key file names its key."""


def _retired_paths(directory: Path, participant: str) -> list[Path]:
    """``<id>.enc.<kid>.pem``, and not the files of a participant whose id extends ``<id>``."""
    prefix, suffix = f"{participant}.enc.", ".pem"
    return sorted(
        p
        for p in directory.glob(f"{participant}.enc.*.pem")
        if _KID.fullmatch(p.name[len(prefix) : -len(suffix)])
    )


def _retired(path: Path, secret: bytes) -> DecryptKey:
    key = DecryptKey.of(_agreement(path, secret))
    if path.name.split(".")[-2] != key.kid:
        raise KeyStoreError(f"{path.name} holds the key {key.kid}, not the one its name says")
    return key


def _agreement(path: Path, secret: bytes) -> X25519PrivateKey | ec.EllipticCurvePrivateKey:
    key = read_private(path, secret)
    if not isinstance(key, X25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"{path.name} is not an X25519 or P-256 key")
    return key


class KeyStore:
    """Public keys of every known participant, private keys of hosted ones."""

    def __init__(
        self, public: Mapping[str, PublicKeys], private: Mapping[str, PrivateKeys]
    ) -> None:
        self._public = dict(public)
        self._private = dict(private)
        self._source: Callable[[str], PublicKeys | None] | None = None

    def follow(self, source: Callable[[str], PublicKeys | None]) -> None:
        """Take public keys from ``source`` (the signed registry) instead of the key
        files: the registry is what the federation vouches for, the files are not."""
        self._source = source

    @classmethod
    def load(
        cls, directory: Path, *, hosted: set[str] | frozenset[str], secret: bytes | None
    ) -> KeyStore:
        """Every ``*.public.jwks.json`` in ``directory``, and the private keys of ``hosted``."""
        if not directory.is_dir():
            raise KeyStoreError(f"keys directory {directory} does not exist")
        suffix = ".public.jwks.json"
        public = {
            p.name[: -len(suffix)]: read_public(p) for p in sorted(directory.glob(f"*{suffix}"))
        }
        if hosted and secret is None:
            raise KeyStoreError(f"no key passphrase: set {PASSPHRASE_ENV} or key_passphrase_file")
        private = {name: read_keys(directory, name, secret or b"") for name in sorted(hosted)}
        return cls(public, private)

    def known(self) -> frozenset[str]:
        return frozenset(self._public)

    def public(self, participant: str) -> PublicKeys | None:
        if self._source is not None:
            return self._source(participant)
        return self._public.get(participant)

    def private(self, participant: str) -> PrivateKeys:
        try:
            return self._private[participant]
        except KeyError:
            raise KeyStoreError(f"no private keys for '{participant}' on this node") from None
