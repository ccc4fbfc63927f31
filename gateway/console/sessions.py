"""Console sessions: a random id in a cookie, everything else kept on the node.

Signing in exchanges a bearer token for a session; the token itself is never
stored, in the cookie or here — the session keeps the token's SHA-256 digest
and asks the authenticator on every request whether that digest still names
the same principal, so a token removed from the config (a rotation, a
revocation) ends its sessions at once. The cookie holds 32 random bytes; the
store keys sessions by their SHA-256, so a memory dump does not yield usable
cookies. Sessions end after ``session_idle_s`` without a request and
``session_max_s`` after sign-in, whichever comes first, and on sign-out.

Sessions live in the node's memory: a node restart signs everyone out, and
behind a load balancer the console needs session affinity (docs: README).

    store = Sessions(idle_s=900, max_s=28_800, clock=time.monotonic)
    cookie, session = store.open(principal, token_digest)
    store.get(cookie)      # -> the session, or None when unknown or expired
    store.close(cookie)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.api.auth import Principal

COOKIE = "__Host-gw_console"
"""``__Host-``: the browser keeps it only if Secure, Path=/ and without Domain."""

MAX_SESSIONS = 10_000
"""Sessions held at most; the oldest go first (a flood of sign-ins cannot grow memory)."""

_COOKIE_BYTES = 32


@dataclass(slots=True)
class Session:
    principal: Principal
    token_sha256: str
    """Digest of the token signed in with: the session lasts only while it stays valid."""
    csrf: str
    """Sent back with every form; a POST without it is refused."""
    started: float
    seen: float
    flash: list[str] = field(default_factory=list)
    """Notices shown once on the next page (the outcome of a replay, say)."""

    def check_csrf(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class Sessions:
    def __init__(
        self,
        *,
        idle_s: float,
        max_s: float,
        clock: Callable[[], float] = time.monotonic,
        limit: int = MAX_SESSIONS,
    ) -> None:
        self._idle_s, self._max_s, self._clock, self._limit = idle_s, max_s, clock, limit
        self._sessions: dict[str, Session] = {}  # insertion order: oldest sign-in first

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, principal: Principal, token_sha256: str) -> tuple[str, Session]:
        """A new session and the cookie value naming it."""
        self._expire()
        while len(self._sessions) >= self._limit:
            del self._sessions[next(iter(self._sessions))]
        cookie = secrets.token_urlsafe(_COOKIE_BYTES)
        now = self._clock()
        session = Session(principal, token_sha256, secrets.token_urlsafe(_COOKIE_BYTES), now, now)
        self._sessions[_key(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session the cookie names (its idle timer restarts), or None."""
        if not cookie or len(cookie) > 128:
            return None
        key = _key(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        if now - session.seen >= self._idle_s or now - session.started >= self._max_s:
            del self._sessions[key]
            return None
        session.seen = now
        return session

    def close(self, cookie: str | None) -> Session | None:
        """End the session the cookie names; the session it was, if any."""
        if not cookie or len(cookie) > 128:
            return None
        return self._sessions.pop(_key(cookie), None)

    def _expire(self) -> None:
        now = self._clock()
        for key, session in list(self._sessions.items()):
            if now - session.seen >= self._idle_s or now - session.started >= self._max_s:
                del self._sessions[key]


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()
