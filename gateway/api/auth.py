"""Bearer-token authentication of local participants and auditors.

The config holds only SHA-256 digests of tokens; tokens are high-entropy
random strings, so a fast digest is enough, and comparison is by digest
lookup, never by the token itself. A token names a principal with one role:
a participant exchanges messages, an auditor (a security team member) reads
the audit trail and the dead letters, and does nothing else.

    >>> token, hashed = new_token()
    >>> Authenticator({hashed: "minhealth"}).participant(f"Bearer {token}")
    'minhealth'

Refusals carry a stable ``reason`` for the audit record; neither the reason
nor the detail ever contains the token.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gateway.config import GatewayConfig
from gateway.errors import ConfigError, Forbidden, Unauthenticated

_MAX_AUTHORIZATION = 512
_SEND_BEARER = "send 'Authorization: Bearer <token>'"


class Role(StrEnum):
    PARTICIPANT = "participant"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token belongs to."""

    id: str
    role: Role

    def require(self, role: Role) -> None:
        """Return if the principal holds ``role``; raise :class:`WrongRole` if not."""
        if self.role is not role:
            raise WrongRole(self, role)


class BadCredentials(Unauthenticated):
    """401: no usable credential; ``reason`` is MISSING, MALFORMED or UNKNOWN."""

    MISSING = "missing-credentials"
    MALFORMED = "malformed-credentials"
    UNKNOWN = "unknown-token"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class WrongRole(Forbidden):
    """403: a valid token whose role may not use this endpoint."""

    def __init__(self, principal: Principal, needed: Role) -> None:
        super().__init__(f"only {needed.value}s may do this; '{principal.id}' is not one")
        self.principal = principal
        self.reason = f"requires-{needed.value}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and the digest to put in the config."""
    token = "gw_" + secrets.token_urlsafe(32)
    return token, hash_token(token)


class Authenticator:
    """Maps token digests to principals: ``participants`` and ``auditors`` are digest -> id."""

    def __init__(
        self, participants: Mapping[str, str], auditors: Mapping[str, str] | None = None
    ) -> None:
        auditors = auditors or {}
        shared = participants.keys() & auditors.keys()
        if shared:
            raise ConfigError(
                f"a token of auditor '{auditors[min(shared)]}' is also a token of participant "
                f"'{participants[min(shared)]}': give each principal its own tokens"
            )
        self._principals = {d: Principal(p, Role.PARTICIPANT) for d, p in participants.items()}
        self._principals.update({d: Principal(a, Role.AUDITOR) for d, a in auditors.items()})

        self._certificates: dict[str, Principal] = {}

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Authenticator:
        authenticator = cls(
            {d: p.id for p in config.participants for d in p.token_sha256},
            {d: a.id for a in config.auditors for d in a.token_sha256},
        )
        authenticator._certificates = {
            f: Principal(p.id, Role.PARTICIPANT)
            for p in config.participants
            for f in p.client_cert_sha256
        }
        return authenticator

    def replace(self, fresh: Authenticator) -> None:
        """Take the credentials of ``fresh`` in place of the current ones (a rotation: the
        new token's digest added, later the old one's removed), in one step."""
        self._principals, self._certificates = fresh._principals, fresh._certificates

    def principal(self, authorization: str | None, certificate: bytes | None = None) -> Principal:
        """Who the caller is: by bearer token, or by the TLS client certificate the
        handshake verified (DER). When both are given they must name the same
        principal. :class:`BadCredentials` otherwise."""
        by_certificate = self._by_certificate(certificate)
        if not authorization and by_certificate is not None:
            return by_certificate
        by_token = self._by_token(authorization)
        if by_certificate is not None and by_certificate != by_token:
            raise BadCredentials(
                BadCredentials.MALFORMED,
                "the token and the client certificate belong to different principals",
            )
        return by_token

    def _by_certificate(self, certificate: bytes | None) -> Principal | None:
        if certificate is None:
            return None
        principal = self._certificates.get(hashlib.sha256(certificate).hexdigest())
        if principal is None:
            raise BadCredentials(
                BadCredentials.UNKNOWN, "the client certificate is not one a participant holds"
            )
        return principal

    def _by_token(self, authorization: str | None) -> Principal:
        if not authorization:
            raise BadCredentials(BadCredentials.MISSING, _SEND_BEARER)
        if len(authorization) > _MAX_AUTHORIZATION:
            raise BadCredentials(BadCredentials.MALFORMED, _SEND_BEARER)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise BadCredentials(BadCredentials.MALFORMED, _SEND_BEARER)
        if not token.isascii():  # tokens are ASCII; this also stops undecodable bytes
            raise BadCredentials(BadCredentials.MALFORMED, "the token is not valid")
        principal = self._principals.get(hash_token(token.strip()))
        if principal is None:
            raise BadCredentials(BadCredentials.UNKNOWN, "the token is not valid")
        return principal

    def sign_in(self, token: str) -> tuple[Principal, str]:
        """Who a bare token (as typed into the console) belongs to, and its digest;
        :class:`BadCredentials` as for a bearer token."""
        principal = self._by_token(f"Bearer {token}")
        return principal, hash_token(token.strip())

    def holder(self, token_sha256: str) -> Principal | None:
        """Who the token with this digest belongs to now (None once it was removed)."""
        return self._principals.get(token_sha256)

    def participant(self, authorization: str | None) -> str:
        """The participant a bearer token belongs to; an auditor's token is :class:`WrongRole`."""
        principal = self.principal(authorization)
        principal.require(Role.PARTICIPANT)
        return principal.id
