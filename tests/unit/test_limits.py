"""Publish limits: the token bucket, the daily quota and the limiter that holds them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.api.problems import status_of
from gateway.config import GatewayConfig, Limits, LocalParticipant
from gateway.errors import QuotaExceeded, RateLimited, Throttled, TransportError
from gateway.limits import Limiter, SystemClock, TokenBucket, seconds_to_midnight
from tests.clocks import FakeClock
from tests.unit.test_problems import body_of, respond


def limiter(
    clock: FakeClock,
    *,
    messages_per_s: float | None = None,
    burst: int | None = None,
    bytes_per_day: int | None = None,
) -> Limiter:
    """A limiter for 'minhealth' alone."""
    limits = Limits(messages_per_s=messages_per_s, burst=burst, bytes_per_day=bytes_per_day)
    return Limiter(limits={"minhealth": limits}, clock=clock)


def admitted(limiter: Limiter, participant: str, attempts: int) -> int:
    """How many of ``attempts`` publishes in a row the rate lets through."""
    passed = 0
    for _ in range(attempts):
        try:
            limiter.admit(participant)
        except RateLimited:
            continue
        passed += 1
    return passed


def fill(limiter: Limiter, participant: str, size: int) -> None:
    """Count ``size`` accepted bytes, as a successful publish does."""
    with limiter.quota(participant, size):
        pass


def failed(limiter: Limiter, participant: str, size: int, meanwhile: Callable[[], None]) -> None:
    """A publish of ``size`` bytes that the broker never acknowledged; ``meanwhile`` runs
    while it is in flight."""
    with contextlib.suppress(TransportError), limiter.quota(participant, size):
        meanwhile()
        raise TransportError("the broker did not acknowledge in time")


# -- token bucket ------------------------------------------------------------


def test_bucket_starts_full_and_allows_the_burst_at_once() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=3, now=0.0)

    waits = [bucket.take(0.0) for _ in range(4)]

    assert waits == [0.0, 0.0, 0.0, 1.0]


def test_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate_per_s=4.0, burst=1, now=0.0)
    assert bucket.take(0.0) == 0.0

    assert bucket.take(0.1) == pytest.approx(0.15)  # 0.4 of a token back; 0.6 to go at 4/s
    assert bucket.take(0.25) == 0.0  # a refused attempt took nothing: the token is whole


def test_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=2, now=0.0)

    waits = [bucket.take(3_600.0) for _ in range(3)]

    assert waits == [0.0, 0.0, pytest.approx(0.1)]


def test_a_clock_going_back_refills_nothing() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=1, now=100.0)
    assert bucket.take(100.0) == 0.0

    assert bucket.take(50.0) == pytest.approx(1.0)
    assert bucket.take(50.5) == pytest.approx(0.5)


# -- the rate through the limiter --------------------------------------------


def test_burst_beyond_the_rate_is_refused_with_retry_after() -> None:
    clock = FakeClock()
    limits = limiter(clock, messages_per_s=0.5, burst=2)
    assert admitted(limits, "minhealth", 2) == 2

    with pytest.raises(RateLimited) as info:
        limits.admit("minhealth")

    assert info.value.retry_after_s == 2  # one token at 0.5/s
    assert info.value.code == "rate-limited"
    assert info.value.reason == "rate"
    assert "minhealth" in info.value.detail


@pytest.mark.parametrize(
    ("rate", "elapsed_s", "retry_after_s"),
    [(0.1, 0.0, 10), (0.1, 3.5, 7), (0.1, 9.9, 1), (0.3, 0.0, 4), (50.0, 0.0, 1)],
    ids=["full-wait", "rounded-up", "at-least-one-under-a-second", "fraction", "fast-rate"],
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(
    rate: float, elapsed_s: float, retry_after_s: int
) -> None:
    clock = FakeClock()
    limits = limiter(clock, messages_per_s=rate, burst=1)
    limits.admit("minhealth")
    clock.advance(elapsed_s)

    with pytest.raises(RateLimited) as info:
        limits.admit("minhealth")

    assert info.value.retry_after_s == retry_after_s


def test_waiting_retry_after_is_enough() -> None:
    clock = FakeClock()
    limits = limiter(clock, messages_per_s=0.3, burst=1)
    limits.admit("minhealth")
    with pytest.raises(RateLimited) as info:
        limits.admit("minhealth")

    clock.advance(info.value.retry_after_s)

    limits.admit("minhealth")


@pytest.mark.parametrize(("rate", "burst"), [(0.5, 1), (1.0, 1), (3.7, 3), (50.0, 50)], ids=str)
def test_default_burst_is_one_seconds_worth_and_at_least_one(rate: float, burst: int) -> None:
    limits = limiter(FakeClock(), messages_per_s=rate)

    assert admitted(limits, "minhealth", burst + 5) == burst


def test_rate_refills_over_time() -> None:
    clock = FakeClock()
    limits = limiter(clock, messages_per_s=2.0, burst=4)
    assert admitted(limits, "minhealth", 10) == 4

    clock.advance(1.0)

    assert admitted(limits, "minhealth", 10) == 2


# -- daily quota ----------------------------------------------------------------


def test_quota_counts_accepted_bytes_and_allows_an_exact_fill() -> None:
    limits = limiter(FakeClock(), bytes_per_day=100)

    fill(limits, "minhealth", 60)
    fill(limits, "minhealth", 40)

    assert limits.used_today("minhealth") == 100


def test_publish_past_the_quota_is_refused_until_midnight() -> None:
    clock = FakeClock(wall=datetime(2026, 11, 26, 23, 0, tzinfo=UTC))
    limits = limiter(clock, bytes_per_day=100)
    fill(limits, "minhealth", 60)

    with pytest.raises(QuotaExceeded) as info, limits.quota("minhealth", 41):
        pytest.fail("the block must not run over the quota")

    assert info.value.retry_after_s == 3600
    assert (info.value.code, info.value.reason) == ("quota-exceeded", "quota")
    assert "100" in info.value.detail
    assert limits.used_today("minhealth") == 60


def test_failed_publish_counts_nothing() -> None:
    limits = limiter(FakeClock(), bytes_per_day=100)

    failed(limits, "minhealth", 80, meanwhile=lambda: None)

    assert limits.used_today("minhealth") == 0
    fill(limits, "minhealth", 100)


def test_bytes_in_flight_are_held_against_the_quota() -> None:
    limits = limiter(FakeClock(), bytes_per_day=100)

    with limits.quota("minhealth", 70):
        with pytest.raises(QuotaExceeded):
            fill(limits, "minhealth", 40)  # would overshoot if the first is accepted
        fill(limits, "minhealth", 30)

    assert limits.used_today("minhealth") == 100


def test_a_released_hold_frees_its_bytes() -> None:
    limits = limiter(FakeClock(), bytes_per_day=100)
    with pytest.raises(ValueError, match="refused"), limits.quota("minhealth", 70):
        raise ValueError("refused by the contract")

    fill(limits, "minhealth", 100)


def test_quota_starts_afresh_each_utc_day() -> None:
    clock = FakeClock(wall=datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC))
    limits = limiter(clock, bytes_per_day=100)
    fill(limits, "minhealth", 100)
    with pytest.raises(QuotaExceeded) as info:
        fill(limits, "minhealth", 1)
    assert info.value.retry_after_s == 1

    clock.advance(1)

    assert limits.used_today("minhealth") == 0
    fill(limits, "minhealth", 100)


def test_bytes_count_on_the_day_the_publish_was_accepted() -> None:
    clock = FakeClock(wall=datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC))
    limits = limiter(clock, bytes_per_day=100)
    with limits.quota("minhealth", 80):
        clock.advance(2)  # the broker acknowledged after midnight

    assert limits.used_today("minhealth") == 80
    with pytest.raises(QuotaExceeded):
        fill(limits, "minhealth", 21)


def test_bytes_in_flight_at_midnight_are_held_against_the_new_day() -> None:
    clock = FakeClock(wall=datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC))
    limits = limiter(clock, bytes_per_day=100)

    def meanwhile() -> None:
        fill(limits, "minhealth", 20)  # accepted yesterday
        clock.advance(2)
        with pytest.raises(QuotaExceeded):  # the 80 in flight may yet count today
            fill(limits, "minhealth", 21)
        fill(limits, "minhealth", 20)  # accepted today

    failed(limits, "minhealth", 80, meanwhile)

    assert limits.used_today("minhealth") == 20
    fill(limits, "minhealth", 80)
    with pytest.raises(QuotaExceeded):
        fill(limits, "minhealth", 1)


def test_the_quota_day_is_the_utc_day_whatever_the_clocks_offset() -> None:
    moscow = timezone(timedelta(hours=3))
    clock = FakeClock(wall=datetime(2026, 11, 27, 1, 0, tzinfo=moscow))  # 22:00 UTC the day before
    limits = limiter(clock, bytes_per_day=100)
    fill(limits, "minhealth", 100)
    clock.advance(3_599)

    with pytest.raises(QuotaExceeded) as info:
        fill(limits, "minhealth", 1)
    assert info.value.retry_after_s == 3_601
    clock.advance(3_601)
    fill(limits, "minhealth", 100)


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(2026, 11, 26, 0, 0, tzinfo=UTC), 86_400),
        (datetime(2026, 11, 26, 12, 0, tzinfo=UTC), 43_200),
        (datetime(2026, 11, 26, 23, 59, 59, 500_000, tzinfo=UTC), 1),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), 3_600),
        (datetime(2026, 11, 27, 1, 0, tzinfo=timezone(timedelta(hours=3))), 7_200),
    ],
    ids=["midnight", "noon", "half-a-second-left", "new-year", "other-offset"],
)
def test_seconds_to_midnight_is_utc_rounded_up_and_at_least_one(
    now: datetime, seconds: int
) -> None:
    assert seconds_to_midnight(now) == seconds


# -- who is limited ----------------------------------------------------------


def test_unlimited_without_limits() -> None:
    clock = FakeClock()
    for limits in (Limiter(limits={}, clock=clock), limiter(clock)):
        assert admitted(limits, "minhealth", 1_000) == 1_000
        fill(limits, "minhealth", 10**12)
        assert limits.used_today("minhealth") is None


def test_each_participant_has_its_own_allowance() -> None:
    both = Limits(messages_per_s=1.0, burst=1, bytes_per_day=100)
    limits = Limiter(limits={"minhealth": both, "socialtreasury": both}, clock=FakeClock())
    limits.admit("minhealth")
    fill(limits, "minhealth", 100)

    limits.admit("socialtreasury")
    fill(limits, "socialtreasury", 100)
    with pytest.raises(RateLimited):
        limits.admit("minhealth")


def test_for_config_gives_own_limits_else_the_default() -> None:
    config = GatewayConfig(
        participants=(
            LocalParticipant(id="minhealth", limits=Limits(messages_per_s=5.0, burst=5)),
            LocalParticipant(id="socialtreasury"),
        ),
        default_limits=Limits(messages_per_s=1.0, burst=2),
    )
    limits = Limiter.for_config(config, clock=FakeClock())

    assert admitted(limits, "minhealth", 10) == 5
    assert admitted(limits, "socialtreasury", 10) == 2
    assert admitted(limits, "metro-medical", 10) == 2  # not hosted here: the default


def test_for_config_without_default_leaves_others_unlimited() -> None:
    config = GatewayConfig(
        participants=(LocalParticipant(id="minhealth", limits=Limits(bytes_per_day=10)),)
    )
    limits = Limiter.for_config(config, clock=FakeClock())

    assert admitted(limits, "socialtreasury", 100) == 100
    with pytest.raises(QuotaExceeded):
        fill(limits, "minhealth", 11)


def test_system_clock_is_monotonic_and_utc() -> None:
    clock = SystemClock()

    assert clock.monotonic() <= clock.monotonic()
    assert clock.utc_now().utcoffset() == timedelta(0)


# -- as HTTP -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RateLimited("over the rate", retry_after_s=17), "rate-limited"),
        (QuotaExceeded("over the quota", retry_after_s=3_600), "quota-exceeded"),
    ],
    ids=["rate", "quota"],
)
async def test_throttling_is_429_with_retry_after(error: Throttled, code: str) -> None:
    response = await respond(error)

    assert status_of(error) == 429
    assert response.status == 429
    assert response.headers["Retry-After"] == str(error.retry_after_s)
    assert body_of(response) == {
        "type": f"urn:gateway:problem:{code}",
        "title": error.title,
        "status": 429,
        "detail": error.detail,
    }
