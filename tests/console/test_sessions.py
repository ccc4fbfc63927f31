"""Console sessions: what a cookie opens, and when it stops opening it."""

from __future__ import annotations

import pytest

from gateway.api.auth import Principal, Role
from gateway.console.app import safe_next
from gateway.console.sessions import Sessions

AUDITOR = Principal("soc", Role.AUDITOR)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cookie_opens_its_session_and_nothing_else() -> None:
    sessions = Sessions(idle_s=60, max_s=600)
    cookie, session = sessions.open(AUDITOR, "digest")
    assert sessions.get(cookie) is session
    assert sessions.get(cookie + "x") is None
    assert sessions.get("") is None
    assert sessions.get(None) is None
    assert sessions.get("a" * 129) is None


def test_cookies_and_csrf_tokens_are_random_and_not_the_token_digest() -> None:
    sessions = Sessions(idle_s=60, max_s=600)
    first, one = sessions.open(AUDITOR, "digest")
    second, two = sessions.open(AUDITOR, "digest")
    assert len({first, second, one.csrf, two.csrf}) == 4
    assert len(first) >= 43  # 32 random bytes, base64url
    assert "digest" not in first


def test_a_session_ends_after_the_idle_time_without_a_request() -> None:
    clock = Clock()
    sessions = Sessions(idle_s=60, max_s=600, clock=clock)
    cookie, _ = sessions.open(AUDITOR, "digest")
    clock.now += 59
    assert sessions.get(cookie) is not None  # this request restarts the idle timer
    clock.now += 59
    assert sessions.get(cookie) is not None
    clock.now += 60
    assert sessions.get(cookie) is None
    assert len(sessions) == 0


def test_a_busy_session_still_ends_at_its_maximum_age() -> None:
    clock = Clock()
    sessions = Sessions(idle_s=60, max_s=150, clock=clock)
    cookie, _ = sessions.open(AUDITOR, "digest")
    for _ in range(2):
        clock.now += 50
        assert sessions.get(cookie) is not None
    clock.now += 50
    assert sessions.get(cookie) is None


def test_closing_ends_the_session_once() -> None:
    sessions = Sessions(idle_s=60, max_s=600)
    cookie, session = sessions.open(AUDITOR, "digest")
    assert sessions.close(cookie) is session
    assert sessions.get(cookie) is None
    assert sessions.close(cookie) is None


def test_the_oldest_sessions_go_first_when_the_store_is_full() -> None:
    sessions = Sessions(idle_s=60, max_s=600, limit=3)
    cookies = [sessions.open(AUDITOR, "digest")[0] for _ in range(5)]
    assert len(sessions) == 3
    assert [sessions.get(c) is not None for c in cookies] == [False, False, True, True, True]


def test_expired_sessions_are_dropped_when_a_new_one_opens() -> None:
    clock = Clock()
    sessions = Sessions(idle_s=60, max_s=600, clock=clock)
    sessions.open(AUDITOR, "digest")
    clock.now += 61
    sessions.open(AUDITOR, "digest")
    assert len(sessions) == 1


def test_csrf_tokens_compare_exactly() -> None:
    _, session = Sessions(idle_s=60, max_s=600).open(AUDITOR, "digest")
    assert session.check_csrf(session.csrf)
    assert not session.check_csrf(session.csrf[:-1])
    assert not session.check_csrf(None)
    assert not session.check_csrf("")


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        ("/console/audit?event=message.accepted", "/console/audit?event=message.accepted"),
        (None, "/console/"),
        ("", "/console/"),
        ("https://evil.example/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/console//evil.example", "/console/"),
        ("/console/\\evil", "/console/"),
        ("/v1/audit", "/console/"),
        ("/console/\nSet-Cookie: x", "/console/"),
        ("/console/" + "a" * 600, "/console/"),
    ],
)
def test_after_sign_in_only_console_pages_are_gone_to(asked: str | None, goes: str) -> None:
    assert safe_next(asked) == goes
