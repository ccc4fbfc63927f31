"""Key lifecycle on disk: generate, rotate, revoke (the flat layout of keys.py).

generate(Path("keys"), "acme-analytics", Suite.ED25519, secret)
rotate(Path("keys"), "acme-analytics", secret, overlap_s=7 * 86400, now=int(time.time()))
revoke(Path("keys"), "acme-analytics", kid, at=int(time.time()))
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gateway.crypto.jwk import Suite
from gateway.crypto.keys import PrivateKeys, read_keys, read_public, write_keys, write_public
from gateway.errors import KeyStoreError


def generate(directory: Path, participant: str, suite: Suite, secret: bytes) -> PrivateKeys:
    for name in (".sig.pem", ".enc.pem", ".public.jwks.json"):
        if (directory / f"{participant}{name}").exists():
            raise KeyStoreError(
                f"{directory / participant}{name} exists; use 'gateway keys rotate' to replace keys"
            )
    keys = PrivateKeys.generate(suite)
    write_keys(directory, participant, keys, secret)
    return keys


def rotate(
    directory: Path, participant: str, secret: bytes, *, overlap_s: int, now: int
) -> PrivateKeys:
    """New current keys; the old signing key verifies until ``now + overlap_s``,
    the old encryption key stays (as ``<id>.enc.<kid>.pem``) to open messages in flight."""
    if overlap_s < 0:
        raise KeyStoreError("the overlap window cannot be negative")
    rotated = read_keys(directory, participant, secret).rotated(now=now, overlap_s=overlap_s)
    write_keys(directory, participant, rotated, secret)
    return rotated


def revoke(directory: Path, participant: str, kid: str, *, at: int) -> None:
    """Refuse what ``kid`` signs at or after ``at`` (Unix s). The current key cannot be
    revoked: rotate first, then revoke the old kid. Revoking a kid again keeps the
    earlier time (a revocation is never narrowed)."""
    if at < 0:
        raise KeyStoreError("the revocation time must be a Unix time in seconds (>= 0)")
    path = directory / f"{participant}.public.jwks.json"
    public = read_public(path)
    if public.signing[0].kid == kid:
        raise KeyStoreError(f"{kid} is {participant}'s current signing key: rotate first")
    if public.verify_key(kid) is None:
        raise KeyStoreError(f"{participant} has no signing key {kid}")
    signing = tuple(
        replace(k, revoked_at=at if k.revoked_at is None else min(at, k.revoked_at))
        if k.kid == kid
        else k
        for k in public.signing
    )
    write_public(path, replace(public, signing=signing), participant)
