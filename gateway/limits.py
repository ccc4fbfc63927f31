"""Publish limits per participant: a message rate with a burst, and a daily byte quota.

The rate is a token bucket: it holds up to ``burst`` tokens, refills at
``messages_per_s`` and every publish attempt takes one, accepted or not (the
limit protects the node's work, not only the broker). The quota counts the
payload bytes of publishes the node *accepted* on the current UTC calendar day:
a publish is checked before any work and counted only once it is durable, so
that a refused or failed publish costs nothing and one that would pass the
quota is refused. Bytes of publishes still in flight are held against the quota
meanwhile, so concurrent publishes cannot overshoot it together.

Counters live in memory: a restart refills every bucket and forgets the bytes
counted today. The day's count could later be persisted in ``state_dir`` like
the replay window, should a restart loophole matter.

    limiter = Limiter.for_config(config)
    limiter.admit("minhealth")                  # raises RateLimited
    with limiter.quota("minhealth", len(body)):  # raises QuotaExceeded
        await router.publish(...)               # counted only if this returns
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from gateway.config import GatewayConfig, Limits
from gateway.errors import QuotaExceeded, RateLimited


class Clock(Protocol):
    """The two clocks limits need: one for intervals, one for the calendar day."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (refills the bucket)."""
        ...

    def utc_now(self) -> datetime:
        """The current time, timezone-aware in UTC (the quota's day and its end)."""
        ...


class SystemClock:
    """The process's own clocks: what a node runs on outside tests."""

    def monotonic(self) -> float:
        return time.monotonic()

    def utc_now(self) -> datetime:
        return datetime.now(UTC)


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate_per_s``; starts full."""

    def __init__(self, *, rate_per_s: float, burst: int, now: float) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> float:
        """Take a token and return 0, or return the seconds until one is there."""
        elapsed = max(0.0, now - self._stamp)  # a clock that goes back refills nothing
        self._tokens = min(float(self._burst), self._tokens + elapsed * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate


class DailyQuota:
    """Bytes accepted per UTC day; bytes of publishes in flight are held against it."""

    def __init__(self, *, bytes_per_day: int) -> None:
        self._limit = bytes_per_day
        self._day: date | None = None
        self._used = 0
        self._held = 0

    def used(self, now: datetime) -> int:
        """Bytes accepted on ``now``'s UTC day."""
        self._roll(now)
        return self._used

    def hold(self, size: int, now: datetime) -> None:
        """Hold ``size`` bytes against today's quota, or raise :class:`QuotaExceeded`."""
        self._roll(now)
        if self._used + self._held + size > self._limit:
            raise QuotaExceeded(
                f"{size} more payload bytes would pass today's quota of {self._limit} "
                f"({self._used} accepted so far, UTC day {self._day})",
                retry_after_s=seconds_to_midnight(now),
            )
        self._held += size

    def settle(self, size: int, *, accepted: bool, now: datetime) -> None:
        """Release a hold; accepted bytes count on the UTC day the publish was accepted."""
        self._held -= size
        if accepted:
            self._roll(now)
            self._used += size

    def _roll(self, now: datetime) -> None:
        """A new UTC day starts with nothing used (held bytes are still in flight)."""
        today = _utc_day(now)
        if today != self._day:
            self._day, self._used = today, 0


def _utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def seconds_to_midnight(now: datetime) -> int:
    """Whole seconds from ``now`` to the next UTC midnight, at least 1."""
    now = now.astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))


class _Allowance:
    """One participant's bucket and quota; either is None when unlimited."""

    def __init__(self, limits: Limits, now: float) -> None:
        rate, burst = limits.messages_per_s, limits.burst
        self.bucket: TokenBucket | None = None
        if rate is not None:  # default burst: one second's worth
            burst = max(1, math.floor(rate)) if burst is None else burst
            self.bucket = TokenBucket(rate_per_s=rate, burst=burst, now=now)
        quota = limits.bytes_per_day
        self.quota = None if quota is None else DailyQuota(bytes_per_day=quota)


class Limiter:
    """Every participant's allowance, created on its first publish."""

    def __init__(
        self,
        *,
        limits: Mapping[str, Limits | None],
        default: Limits | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._limits = dict(limits)
        self._default = default
        self._clock = clock or SystemClock()
        self._allowances: dict[str, _Allowance] = {}

    @classmethod
    def for_config(cls, config: GatewayConfig, *, clock: Clock | None = None) -> Limiter:
        """Limits of the hosted participants, ``default_limits`` for any other."""
        own = {p.id: config.limits_of(p.id) for p in config.participants}
        return cls(limits=own, default=config.default_limits, clock=clock)

    def admit(self, participant: str) -> None:
        """Take one message from the participant's rate, or raise :class:`RateLimited`."""
        bucket = self._allowance(participant).bucket
        if bucket is None:
            return
        wait_s = bucket.take(self._clock.monotonic())
        if wait_s > 0:
            raise RateLimited(
                f"'{participant}' is over its publish rate; retry in {wait_s:.2f} s",
                retry_after_s=max(1, math.ceil(wait_s)),
            )

    def has_quota(self, participant: str) -> bool:
        """Whether the participant's accepted bytes are counted (a daily quota is set)."""
        return self._allowance(participant).quota is not None

    @contextlib.contextmanager
    def quota(self, participant: str, size: int) -> Iterator[None]:
        """Hold ``size`` bytes for the block; they count only if it ends without an error."""
        quota = self._allowance(participant).quota
        if quota is None:
            yield
            return
        quota.hold(size, self._clock.utc_now())
        accepted = False
        try:
            yield
            accepted = True
        finally:
            quota.settle(size, accepted=accepted, now=self._clock.utc_now())

    def used_today(self, participant: str) -> int | None:
        """Payload bytes the participant has had accepted today; None without a quota."""
        quota = self._allowance(participant).quota
        return None if quota is None else quota.used(self._clock.utc_now())

    def _allowance(self, participant: str) -> _Allowance:
        allowance = self._allowances.get(participant)
        if allowance is None:
            limits = self._limits.get(participant, self._default) or Limits()
            allowance = _Allowance(limits, self._clock.monotonic())
            self._allowances[participant] = allowance
        return allowance
