"""Bearer-token authentication of local participants.

The config holds only SHA-256 digests of tokens; tokens are high-entropy
random strings, so a fast digest is enough, and comparison is by digest
lookup, never by the token itself.

    >>> token, hashed = new_token()
    >>> Authenticator({hashed: "minhealth"}).participant(f"Bearer {token}")
    'minhealth'
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

from gateway.config import GatewayConfig
from gateway.errors import Unauthenticated

_MAX_AUTHORIZATION = 512


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and the digest to put in the config."""
    token = "gw_" + secrets.token_urlsafe(32)
    return token, hash_token(token)


class Authenticator:
    def __init__(self, digests: Mapping[str, str]) -> None:
        self._digests = dict(digests)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Authenticator:
        return cls({d: p.id for p in config.participants for d in p.token_sha256})

    def participant(self, authorization: str | None) -> str:
        """The participant a bearer token belongs to, or :class:`Unauthenticated`."""
        if not authorization or len(authorization) > _MAX_AUTHORIZATION:
            raise Unauthenticated("send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send 'Authorization: Bearer <token>'")
        if not token.isascii():  # tokens are ASCII; this also stops undecodable bytes
            raise Unauthenticated("the token is not valid")
        participant = self._digests.get(hash_token(token.strip()))
        if participant is None:
            raise Unauthenticated("the token is not valid")
        return participant
